"""A model file whose ``make_dataloader()`` gives the host-memory settings: 2 workers, prefetch 4, pinned."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build_model() -> nn.Module:
    return nn.Linear(100, 10)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 100)


def make_dataloader() -> DataLoader:
    data = TensorDataset(torch.randn(64, 100))
    return DataLoader(data, batch_size=8, num_workers=2, prefetch_factor=4, pin_memory=True)

"""A model file without ``example_inputs``."""

from __future__ import annotations

import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(4, 2)


def make_batch(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)

"""The smallest model: one Linear(1, 1). Used only to read a plan's budget (CUDA context) for a GPU."""

from __future__ import annotations

import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(1, 1)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.zeros(batch_size, 1)

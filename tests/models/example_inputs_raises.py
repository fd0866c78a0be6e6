"""``example_inputs`` fails: the batch cannot be built."""

from __future__ import annotations

import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(4, 2)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.load("memadvise-missing-batch.pt")  # <- fails

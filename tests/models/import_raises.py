"""A model file whose import fails: it needs a package that is not installed."""

from __future__ import annotations

import memadvise_absent_dependency  # noqa: F401  # <- fails
import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(4, 2)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)

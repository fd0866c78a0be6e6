"""``build_model`` returns a state dict instead of a module."""

from __future__ import annotations

from typing import Any

import torch


def build_model() -> Any:
    return torch.nn.Linear(4, 2).state_dict()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)

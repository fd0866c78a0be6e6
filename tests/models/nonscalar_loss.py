"""``loss_fn`` returns a vector, not the scalar a backward pass needs."""

from __future__ import annotations

from typing import Any

import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(4, 3)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)


def loss_fn(output: torch.Tensor, inputs: Any) -> torch.Tensor:
    return output.sum(dim=0)

"""``loss_fn`` raises: it reads an attribute the output tensor does not have."""

from __future__ import annotations

from typing import Any

import torch


def build_model() -> torch.nn.Module:
    return torch.nn.Linear(4, 2)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)


def loss_fn(output: Any, inputs: Any) -> torch.Tensor:
    return output.loss  # <- fails

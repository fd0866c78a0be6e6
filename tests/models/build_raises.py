"""``build_model`` fails inside torch, in a function it calls from this file."""

from __future__ import annotations

import torch


def _reshape_weights(layer: torch.nn.Linear) -> None:
    layer.weight.data = layer.weight.data.view(5, 5)  # <- fails


def build_model() -> torch.nn.Module:
    layer = torch.nn.Linear(4, 3)
    _reshape_weights(layer)
    return layer


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)

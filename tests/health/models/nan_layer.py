"""A model whose second layer plants a NaN: the flag must name ``1``, not the layers after it."""

from __future__ import annotations

import torch
from torch import nn


class PlantNaN(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        mask[0, 0] = float("nan")
        return x + mask


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), PlantNaN(), nn.ReLU(), nn.Linear(32, 4))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)

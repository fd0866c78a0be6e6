"""Two factories and no ``build_model``: only ``factories.py:build_small`` / ``:build_wide`` load."""

from __future__ import annotations

import torch
from torch import nn


def build_small() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 5, bias=False), nn.Tanh(), nn.Linear(5, 3, bias=False))


def build_wide() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 64, bias=False), nn.Tanh(), nn.Linear(64, 3, bias=False))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 6)

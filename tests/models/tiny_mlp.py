"""A two-layer perceptron small enough to trace in milliseconds."""

from __future__ import annotations

import torch
from torch import nn


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 8)

"""A model whose middle layer's activations reach about 2e5: beyond fp16's 65504, far inside bf16's range."""

from __future__ import annotations

import torch
from torch import nn


class Amplify(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1e5


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), Amplify(), nn.Linear(32, 4))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)

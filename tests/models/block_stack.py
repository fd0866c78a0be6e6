"""Four residual MLP blocks (16 -> 64 -> 16): each block keeps a 64-wide hidden layer for backward, so
checkpointing blocks saves memory (``estimate --checkpoint auto`` has something to pick)."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(x)))


def build_model() -> nn.Module:
    return nn.Sequential(*[Block() for _ in range(4)])


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)

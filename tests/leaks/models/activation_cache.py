"""A module that caches its activations on ``self`` every forward: batch x 512 float32 per step."""

from __future__ import annotations

import torch
from torch import nn

HIDDEN = 512


class Caching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x)
        self.seen.append(h)  # the leak: every step's activation stays reachable
        return h


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, HIDDEN), Caching(), nn.Linear(HIDDEN, 4))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)

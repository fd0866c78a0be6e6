"""A model that keeps the rows of its hidden state whose sum is positive: how many are kept depends on
floating-point values a fake trace does not have."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (8,)


class Selecting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(32, 256)
        self.out = nn.Linear(256, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x).flatten(0, 1)
        keep = (h.sum(-1) > 0).nonzero().squeeze(1)
        return self.out(h[keep])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Selecting()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 64, 32)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return output.pow(2).mean()

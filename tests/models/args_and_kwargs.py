"""Positional and keyword arguments together: ``example_inputs`` returns ``((x,), {"bias": b})``."""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 6


class Shifted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor, *, bias: torch.Tensor) -> torch.Tensor:  # bias is keyword-only
        return self.body(x) + bias


def build_model() -> nn.Module:
    return Shifted()


def example_inputs(batch_size: int) -> tuple[tuple[torch.Tensor], dict[str, torch.Tensor]]:
    return (torch.randn(batch_size, WIDTH),), {"bias": torch.randn(batch_size, WIDTH)}

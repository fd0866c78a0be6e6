"""A model whose forward raises with a message that spans several lines."""

from __future__ import annotations

import torch
from torch import nn


class Picky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 3:
            detail = f"expected 3 features, got {x.shape[-1]}\nsee the model card for the input format"
            raise ValueError(detail)  # <- fails
        return self.proj(x)


def build_model() -> nn.Module:
    return Picky()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 4)

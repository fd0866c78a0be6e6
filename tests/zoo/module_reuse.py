"""MLP that calls the same nn.Module instance twice in one forward pass.

The shared block's weights exist once, but its activations are saved twice.

Try it: memadvise profile tests/zoo/module_reuse.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
DIM = 256


class ReusedBlockMLP(nn.Module):
    """inp -> shared -> shared -> head, where ``shared`` is a single module object."""

    def __init__(self, dim: int = DIM, classes: int = 10) -> None:
        super().__init__()
        self.inp = nn.Linear(64, dim)
        self.shared = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits; ``self.shared`` runs twice."""
        h = self.shared(self.inp(x))
        h = self.shared(h)
        return self.head(h)


def build_model() -> torch.nn.Module:
    """The MLP with random weights."""
    torch.manual_seed(0)
    return ReusedBlockMLP()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random inputs of shape (batch, 16, 64)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 16, 64)

"""MLP stack with activation checkpointing: one reentrant and one non-reentrant block.

``torch.utils.checkpoint`` drops the block's activations after the forward and
recomputes them during the backward.

Try it: memadvise profile tests/zoo/checkpointed.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

BATCH_SIZES = (2, 4)
DIM = 128


class Block(nn.Module):
    """Pre-norm residual MLP block."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + MLP(LayerNorm(x))."""
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


class CheckpointedMLP(nn.Module):
    """Input projection, a reentrant-checkpointed block, a non-reentrant one, a plain one."""

    def __init__(self, dim: int = DIM, classes: int = 10) -> None:
        super().__init__()
        self.inp = nn.Linear(32, dim)
        self.reentrant = Block(dim)
        self.non_reentrant = Block(dim)
        self.plain = Block(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits; the two middle blocks are checkpointed when gradients are on."""
        h = self.inp(x)
        if torch.is_grad_enabled():
            h = checkpoint(self.reentrant, h, use_reentrant=True)
            h = checkpoint(self.non_reentrant, h, use_reentrant=False)
        else:
            h = self.non_reentrant(self.reentrant(h))
        return self.head(self.plain(h))


def build_model() -> torch.nn.Module:
    """The checkpointed MLP with random weights."""
    torch.manual_seed(0)
    return CheckpointedMLP()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random tokens-as-features input of shape (batch, 64, 32)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 64, 32)

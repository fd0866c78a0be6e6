"""Transformer-style stack with every block wrapped in torch.utils.checkpoint (use_reentrant=False).

Checkpointing keeps only each block's input during the forward and recomputes
the block's activations in the backward: less activation memory, more compute.
Compare with the same model without checkpointing to see the saving.

Try it: memadvise profile sample_models/checkpointed.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

BATCH_SIZES = (2, 4)
SEQ_LEN = 64
DIM = 256


class Block(nn.Module):
    """Pre-norm self-attention + MLP block."""

    def __init__(self, dim: int = DIM, heads: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + Attn(LN(x)), then + MLP(LN(.))."""
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CheckpointedTransformer(nn.Module):
    """Input projection, ``depth`` checkpointed blocks, mean-pool, classifier."""

    def __init__(self, depth: int = 4, dim: int = DIM, classes: int = 10) -> None:
        super().__init__()
        self.inp = nn.Linear(64, dim)
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (batch, classes)."""
        h = self.inp(x)
        for block in self.blocks:
            h = checkpoint(block, h, use_reentrant=False)
        return self.head(h.mean(dim=1))


def build_model() -> torch.nn.Module:
    """Four checkpointed blocks with random weights."""
    torch.manual_seed(0)
    return CheckpointedTransformer()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random feature sequences of shape (batch, SEQ_LEN, 64)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, SEQ_LEN, 64)

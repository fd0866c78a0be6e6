"""A tiny MLP whose ``body`` layer width comes from ``MEMADVISE_TINY_WIDTH`` (default 64).

Setting the variable to 70 widens ``body`` by about 10%; to 48 shrinks it. ``build_small`` is a second
factory with a narrower stem.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from torch import nn


def _mlp(stem: int, width: int) -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            stem=nn.Linear(32, stem),
            act=nn.ReLU(),
            body=nn.Linear(stem, width),
            act2=nn.ReLU(),
            head=nn.Linear(width, 8),
        )
    )


def build_model() -> nn.Module:
    """stem 32→64, body 64→WIDTH, head WIDTH→8."""
    return _mlp(64, int(os.environ.get("MEMADVISE_TINY_WIDTH", "64")))


def build_small() -> nn.Module:
    """stem 32→16, body 16→WIDTH, head WIDTH→8."""
    return _mlp(16, int(os.environ.get("MEMADVISE_TINY_WIDTH", "64")))


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random features of shape (batch, 32)."""
    return torch.randn(batch_size, 32)

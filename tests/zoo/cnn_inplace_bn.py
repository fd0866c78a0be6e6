"""Small CNN of Conv2d + BatchNorm2d + ReLU(inplace=True) blocks on 32x32 images.

In-place activations overwrite the BatchNorm output instead of allocating a new
tensor, which changes what autograd keeps alive.

Try it: memadvise profile tests/zoo/cnn_inplace_bn.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)


def _block(cin: int, cout: int) -> nn.Sequential:
    """Conv -> BatchNorm -> in-place ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def build_model() -> torch.nn.Module:
    """Four conv blocks, two max-pools, global average pool and a 10-way head."""
    torch.manual_seed(0)
    return nn.Sequential(
        _block(3, 16),
        _block(16, 32),
        nn.MaxPool2d(2),
        _block(32, 32),
        nn.MaxPool2d(2),
        _block(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random 3x32x32 images."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 32, 32)

"""Small U-Net: conv encoder, ConvTranspose2d decoder, skip connections joined with torch.cat.

Try it: memadvise profile tests/zoo/unet_skip.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
CLASSES = 3


def _conv(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """Two down-sampling and two up-sampling stages with concatenated skips."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.enc1 = _conv(3, 16)
        self.enc2 = _conv(16, 32)
        self.bottom = _conv(32, 64)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.dec2 = _conv(64, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec1 = _conv(32, 16)
        self.out = nn.Conv2d(16, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-pixel class logits of shape (batch, classes, H, W)."""
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


def build_model() -> torch.nn.Module:
    """The U-Net with random weights."""
    torch.manual_seed(0)
    return UNet()


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random 3x32x32 images."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 32, 32)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross entropy against a mask derived from the image (brightness buckets)."""
    mask = torch.bucketize(inputs.mean(dim=1), torch.tensor([-0.5, 0.5]))
    return nn.functional.cross_entropy(output, mask)

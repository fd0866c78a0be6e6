"""Tiny torchvision VisionTransformer (32x32 images, 8x8 patches, 2 layers, random weights).

Try it: memadvise profile tests/zoo/vit.py --batch-size 4
"""

from __future__ import annotations

import torch
from torchvision.models.vision_transformer import VisionTransformer

BATCH_SIZES = (2, 4)


def build_model() -> torch.nn.Module:
    """ViT with hidden size 64, 2 heads, MLP size 128 and 10 classes."""
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=10,
    )


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random 3x32x32 images."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 32, 32)

"""A small Vision Transformer (torchvision ``VisionTransformer``: 224x224 images, 16x16 patches,
6 layers, hidden 384, 6 heads, 100 classes); its attention is ``nn.MultiheadAttention``."""

from __future__ import annotations

import torch
from torchvision.models.vision_transformer import VisionTransformer

BATCH_SIZES = (8, 16)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=224,
        patch_size=16,
        num_layers=6,
        num_heads=6,
        hidden_dim=384,
        mlp_dim=1536,
        num_classes=100,
    )


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 224, 224)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    target = torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
    return torch.nn.functional.cross_entropy(output, target)

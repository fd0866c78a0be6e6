"""timm EfficientNet-B0 (random weights, 10 classes) on 64x64 images: depthwise and SE convolutions."""

from __future__ import annotations

import timm
import torch

BATCH_SIZES = (2,)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 64, 64)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return torch.nn.functional.cross_entropy(output, labels)

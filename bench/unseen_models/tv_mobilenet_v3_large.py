"""torchvision MobileNetV3-Large (random weights, 10 classes) on 224x224 images."""

from __future__ import annotations

import torch
from torchvision.models import mobilenet_v3_large

BATCH_SIZES = (2,)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mobilenet_v3_large(weights=None, num_classes=10)


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 224, 224)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return torch.nn.functional.cross_entropy(output, labels)

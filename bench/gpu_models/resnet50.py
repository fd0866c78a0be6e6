"""torchvision ResNet-50 on 224x224 images, 1000 classes (cuDNN convolutions on a GPU)."""

from __future__ import annotations

import torch
from torchvision.models import resnet50

BATCH_SIZES = (8, 16)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet50()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 224, 224)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    target = torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
    return torch.nn.functional.cross_entropy(output, target)

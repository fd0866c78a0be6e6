"""torchvision ResNet-18 (random weights, 10 classes) on 64x64 images.

Try it: memadvise profile sample_models/resnet.py --batch-size 4
"""

from __future__ import annotations

import torch
from torchvision.models import resnet18

BATCH_SIZES = (2, 4)


def build_model() -> torch.nn.Module:
    """ResNet-18 with a 10-way classification head."""
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=10)


def image_batch(batch_size: int, size: int = 64) -> torch.Tensor:
    """A batch of random 3 x size x size images."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, size, size)


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random 3x64x64 images."""
    return image_batch(batch_size)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Cross entropy against fixed pseudo-labels."""
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return torch.nn.functional.cross_entropy(output, labels)

"""torchvision's ViT-L/16 with a 10-class head, as fine-tuned on CIFAR-10 (resized to 224x224).

``vit_l_16(num_classes=10)`` has the same modules and shapes as the published script's
``vit_l_16(weights=IMAGENET1K_V1)`` with ``heads.head`` replaced by ``Linear(1024, 10)``; random weights.
The loss is ``F.cross_entropy(logits, targets)`` as in the script.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import vit_l_16

IMAGE = 224


def build_model() -> torch.nn.Module:
    return vit_l_16(weights=None, num_classes=10)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.rand(batch_size, 3, IMAGE, IMAGE)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    targets = torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
    return F.cross_entropy(output, targets)

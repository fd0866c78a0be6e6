"""torchvision ResNet-18 (random weights, 10 classes): sample_models/resnet.py's model on 32x32 images.

Try it: memadvise profile tests/zoo/resnet.py --batch-size 4
"""

from __future__ import annotations

import runpy
from pathlib import Path

import torch
from torchvision.models import ResNet

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[2] / "sample_models" / "resnet.py"))
BATCH_SIZES = (2, 4)
loss_fn = SAMPLE["loss_fn"]


def build_model() -> ResNet:
    """ResNet-18 with a 10-way head; BatchNorm and in-place ReLU included."""
    return SAMPLE["build_model"]()


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random 3x32x32 images."""
    return SAMPLE["image_batch"](batch_size, size=32)

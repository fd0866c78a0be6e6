"""torchvision Faster R-CNN (MobileNetV3-Large 320 FPN, random weights, 3 classes) on 64x64 images.

In training the model takes images and targets and returns its losses."""

from __future__ import annotations

from typing import Any

import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

BATCH_SIZES = (2,)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64,
        rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=32,
    )


def example_inputs(batch_size: int) -> dict[str, Any]:
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 64) for _ in range(batch_size)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [30.0, 20.0, 60.0, 62.0]]),
         "labels": torch.tensor([1, 2])}
        for _ in range(batch_size)
    ]
    return {"images": images, "targets": targets}


def loss_fn(output: Any, inputs: Any) -> torch.Tensor:
    if isinstance(output, dict):
        return sum(output.values())
    return sum(o["boxes"].sum() for o in output)

"""Small MLP classifier: 784 -> 512 -> 256 -> 10 with ReLU and dropout (random weights).

Try it: memadvise profile sample_models/mlp.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4, 32)


def build_model() -> torch.nn.Module:
    """A three-layer MLP for flattened 28x28 images."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def example_inputs(batch_size: int) -> torch.Tensor:
    """A batch of random flattened images, shape (batch, 784)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, 784)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Cross entropy against fixed pseudo-labels."""
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return nn.functional.cross_entropy(output, labels)

"""A ``train_step`` that keeps every step's loss, with its graph, in a list that outlives the step.

The loss is built by ``backward(retain_graph=True)``, so the graph still holds what ``pow`` saved: the
layer's output (batch x 1024 float32) leaks every step, plus the 4-byte loss itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

HIDDEN = 1024
LOSSES: list[torch.Tensor] = []


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(32, HIDDEN))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)


def train_step(model: nn.Module, inputs: torch.Tensor, optimizer: Any) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    out = model(inputs)
    loss = out.pow(2).mean()
    loss.backward(retain_graph=True)
    optimizer.step()
    LOSSES.append(loss)  # the leak: the loss and its graph outlive the step
    return loss

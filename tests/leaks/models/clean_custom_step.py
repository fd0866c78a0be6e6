"""A custom ``train_step`` that mirrors the default step exactly, plus one with clipping and two losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 8))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)


def train_step(model: nn.Module, inputs: torch.Tensor, optimizer: Any) -> None:
    out = model(inputs)
    loss = out.sum()
    loss.backward()
    del out, loss
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_step_clipped(model: nn.Module, inputs: torch.Tensor, optimizer: Any) -> torch.Tensor:
    """Two losses, gradient clipping, and the loss returned detached: a clean HF-style loop."""
    optimizer.zero_grad(set_to_none=True)
    out = model(inputs)
    loss = out.pow(2).mean() + 0.1 * out.abs().mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.detach()

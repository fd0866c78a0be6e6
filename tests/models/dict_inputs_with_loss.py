"""Keyword inputs and a custom ``loss_fn``: the batch is a dict passed as ``model(**inputs)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 7)
        self.head = nn.Linear(7, 1)

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(features))).squeeze(-1)


def build_model() -> nn.Module:
    return Regressor()


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {"features": torch.randn(batch_size, 5), "target": torch.randn(batch_size)}


def loss_fn(output: torch.Tensor, inputs: Any) -> torch.Tensor:
    return torch.nn.functional.mse_loss(output, inputs["target"])

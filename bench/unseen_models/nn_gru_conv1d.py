"""A plain torch.nn audio-style model: depthwise-separable Conv1d front end, 2-layer GRU, classifier."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4,)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Sequential(
            nn.Conv1d(16, 16, 5, padding=2, groups=16), nn.Conv1d(16, 64, 1), nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=1, groups=64), nn.Conv1d(64, 64, 1), nn.ReLU(),
        )
        self.gru = nn.GRU(64, 80, num_layers=2, batch_first=True)
        self.head = nn.Linear(80, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.front(x).transpose(1, 2)
        return self.head(self.gru(h)[0][:, -1])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Net()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 16, 100)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return nn.functional.cross_entropy(output, labels)

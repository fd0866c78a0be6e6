"""Small convolution blocks of the kinds MobileNet, EfficientNet, ConvNeXt and audio front ends use:
depthwise 3x3 and 7x7 filters (one on a channels-last input, as ConvNeXt's blocks hand on), 1x1
squeeze-excitation convolutions on a 1x1 map, and a strided and a depthwise Conv1d."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4,)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return y + x  # channels-last, as in timm: the next block's depthwise input


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 48, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(48, 48, 3, padding=1, groups=48)
        self.se = SqueezeExcite(48)
        self.down = nn.Conv2d(48, 96, 2, stride=2)
        self.block = ConvNeXtBlock(96)
        self.block2 = ConvNeXtBlock(96)
        self.audio = nn.Sequential(nn.Conv1d(96, 64, 4, stride=2), nn.Conv1d(64, 64, 5, padding=2, groups=64))
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block(self.down(self.se(torch.relu(self.dw(self.stem(x)))))))
        return self.head(self.audio(h.flatten(2)).mean(-1))


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Net()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 3, 32, 32)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    labels = torch.arange(output.shape[0], device=output.device) % output.shape[1]
    return nn.functional.cross_entropy(output, labels)

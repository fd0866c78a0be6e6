"""A model whose forward pass hoards memory in a loop, as a forward that never ends would.

Each call keeps 4 MiB blocks (filled, so they are resident) on the module, a little at a time, up to
HOARD_MIB in all; then it returns normally. A memory watchdog must stop it long before that.
MEMADVISE_TEST_HOARD_AT_BATCH (when set) makes it hoard only at that batch size.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

HOARD_MIB = 1024
BLOCK = 4 * 2**20


class Runaway(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.hoard: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        only_at = os.environ.get("MEMADVISE_TEST_HOARD_AT_BATCH")
        if only_at is None or int(only_at) == x.shape[0]:
            while len(self.hoard) * BLOCK < HOARD_MIB * 2**20:
                self.hoard.append(torch.ones(BLOCK // 4))
                time.sleep(0.004)
        return self.fc(x)


def build_model() -> nn.Module:
    return Runaway()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 8)

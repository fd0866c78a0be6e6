"""Wide MLP with a tiny batch: the AdamW step, not the backward, sets the memory peak.

Three Linear(2048, 2048) layers hold ~50 MB of weights; activations at batch 1-2
are tiny, so the peak comes when AdamW creates its two state tensors per
parameter and computes its update temporaries.

Try it: memadvise profile tests/zoo/wide_mlp_optimizer_peak.py --batch-size 1
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (1, 2)
WIDTH = 2048


def build_model() -> torch.nn.Module:
    """Linear(2048, 2048) x3 with ReLUs in between."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(WIDTH, WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
    )


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random feature vectors of shape (batch, 2048)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, WIDTH)

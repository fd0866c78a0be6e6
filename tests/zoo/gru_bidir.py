"""Bidirectional 2-layer nn.GRU (batch_first) sequence classifier.

Try it: memadvise profile tests/zoo/gru_bidir.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
SEQ_LEN = 24
FEATURES = 16


class BiGRUClassifier(nn.Module):
    """GRU over feature sequences, classify from the last time step of both directions."""

    def __init__(self, features: int = FEATURES, hidden: int = 64, classes: int = 5) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (batch, classes)."""
        seq, _ = self.gru(x)
        return self.head(seq[:, -1])


def build_model() -> torch.nn.Module:
    """The classifier with random weights."""
    torch.manual_seed(0)
    return BiGRUClassifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random feature sequences of shape (batch, SEQ_LEN, FEATURES)."""
    torch.manual_seed(0)
    return torch.randn(batch_size, SEQ_LEN, FEATURES)

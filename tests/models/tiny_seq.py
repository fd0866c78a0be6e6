"""A tiny sequence model whose batches take a sequence length (``example_inputs(batch_size, seq_len)``)."""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 64


class TinySeq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.mix = nn.Linear(32, 32)
        self.head = nn.Linear(32, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mix(self.embed(tokens))))


def build_model() -> nn.Module:
    return TinySeq()


def example_inputs(batch_size: int, seq_len: int = 16) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch_size, seq_len))

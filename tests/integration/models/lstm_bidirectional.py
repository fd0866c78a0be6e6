"""A bidirectional two-layer LSTM tagger (batch_first) at hidden size 256: the second layer reads
both directions (input 512), so oneDNN's backward pads both weights' rows (sizes that are multiples of
256); embedding 32, 16 tokens, vocabulary 500."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2,)
VOCAB = 500


class BiLSTMTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.lstm = nn.LSTM(32, 256, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(512, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return BiLSTMTagger()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, 16))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output.flatten(0, 1), inputs.flatten())

"""A plain torch.nn LSTM language model unlike the test set's: 1 layer, hidden 96, vocab 1000, 40 tokens."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4,)
VOCAB = 1000


class LM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 48)
        self.lstm = nn.LSTM(48, 96, num_layers=1, batch_first=True)
        self.head = nn.Linear(96, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return LM()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, 40))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output[:, :-1].reshape(-1, VOCAB), inputs[:, 1:].reshape(-1))

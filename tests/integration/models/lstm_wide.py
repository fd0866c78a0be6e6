"""An LSTM language model wider than the test set's: embedding 64, one LSTM layer of hidden size 512,
40 tokens, vocabulary 2000."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (4,)
VOCAB = 2000


class WideLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 512, batch_first=True)
        self.head = nn.Linear(512, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return WideLSTM()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, 40))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output.flatten(0, 1), inputs.flatten())

"""Recurrent layers PyTorch runs on its native CPU kernel rather than oneDNN's: an LSTM with a
projection (``proj_size``) followed by a GRU, both ``batch_first``; embedding 64, 30 tokens,
vocabulary 1000."""

from __future__ import annotations

import warnings

import torch
from torch import nn

BATCH_SIZES = (4,)
VOCAB = 1000


class NativeRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 256, batch_first=True, proj_size=128)
        self.gru = nn.GRU(128, 256, batch_first=True)
        self.head = nn.Linear(256, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # "LSTM with projections is not supported with oneDNN"
            warnings.simplefilter("ignore", UserWarning)
            hidden = self.lstm(self.embed(tokens))[0]
        return self.head(self.gru(hidden)[0])


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return NativeRNN()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, 30))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output.flatten(0, 1), inputs.flatten())

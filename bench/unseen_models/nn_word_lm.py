"""PyTorch's word_language_model example shape: embedding 200, 2-layer LSTM (hidden 200, dropout 0.2),
35-token sequences, sequence-first, vocabulary 5000 (the example's is 33k)."""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (20,)
VOCAB = 5000
BPTT = 35


class RNNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(VOCAB, 200)
        self.rnn = nn.LSTM(200, 200, 2, dropout=0.2)
        self.decoder = nn.Linear(200, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(output)).view(-1, VOCAB).log_softmax(-1)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return RNNModel()


def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (BPTT + 1, batch_size))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    batch = inputs.shape[1]
    return nn.functional.nll_loss(output[: BPTT * batch], inputs[1:].reshape(-1))

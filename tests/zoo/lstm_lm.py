"""Tiny LSTM language model: embedding, 2-layer nn.LSTM, linear head, cross-entropy loss.

Try it: memadvise profile tests/zoo/lstm_lm.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000


class LSTMLanguageModel(nn.Module):
    """Embedding -> 2-layer LSTM -> vocabulary logits."""

    def __init__(self, vocab: int = VOCAB, emb: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (batch, seq, vocab)."""
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden)


def build_model() -> torch.nn.Module:
    """The LSTM LM with random weights."""
    torch.manual_seed(0)
    return LSTMLanguageModel()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random token ids of shape (batch, SEQ_LEN)."""
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, SEQ_LEN))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy."""
    logits = output[:, :-1].reshape(-1, output.shape[-1])
    return nn.functional.cross_entropy(logits, inputs[:, 1:].reshape(-1))

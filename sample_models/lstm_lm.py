"""LSTM language model: embedding (vocab 8000, dim 128), 2-layer nn.LSTM (hidden 256), linear head.

``loss_fn`` computes next-token cross entropy.

Try it: memadvise profile sample_models/lstm_lm.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
SEQ_LEN = 64
VOCAB = 8000


class LSTMLanguageModel(nn.Module):
    """Embedding -> 2-layer LSTM -> vocabulary logits."""

    def __init__(self, vocab: int = VOCAB, emb: int = 128, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (batch, seq, vocab)."""
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden)


def build_model() -> torch.nn.Module:
    """The LSTM LM with random weights."""
    torch.manual_seed(0)
    return LSTMLanguageModel()


def token_batch(batch_size: int, seq_len: int = SEQ_LEN, vocab: int = VOCAB) -> torch.Tensor:
    """Random token ids of shape (batch, seq_len)."""
    torch.manual_seed(0)
    return torch.randint(0, vocab, (batch_size, seq_len))


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random token ids of shape (batch, SEQ_LEN)."""
    return token_batch(batch_size)


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy: position t predicts token t + 1."""
    logits = output[:, :-1].reshape(-1, output.shape[-1])
    return nn.functional.cross_entropy(logits, inputs[:, 1:].reshape(-1))

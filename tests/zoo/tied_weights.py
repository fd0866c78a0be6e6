"""Small language model whose output projection weight IS the embedding weight.

Tied parameters appear once in ``model.parameters()`` and get a single gradient.

Try it: memadvise profile tests/zoo/tied_weights.py --batch-size 4
"""

from __future__ import annotations

import torch
from torch import nn

BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 2000


class TiedLM(nn.Module):
    """Embedding -> two residual MLP layers -> logits through the shared embedding matrix."""

    def __init__(self, vocab: int = VOCAB, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                for _ in range(2)
            ]
        )
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (batch, seq, vocab)."""
        h = self.embed(tokens)
        for layer in self.layers:
            h = h + layer(h)
        return self.head(h)


def build_model() -> torch.nn.Module:
    """The tied LM with random weights."""
    torch.manual_seed(0)
    return TiedLM()


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random token ids of shape (batch, SEQ_LEN)."""
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, SEQ_LEN))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy."""
    logits = output[:, :-1].reshape(-1, output.shape[-1])
    return nn.functional.cross_entropy(logits, inputs[:, 1:].reshape(-1))

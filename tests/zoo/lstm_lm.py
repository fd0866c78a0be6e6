"""Tiny LSTM language model: sample_models/lstm_lm.py's model with embedding 64, hidden size 128, no
dropout, a vocabulary of 1000 and 32 tokens; next-token cross-entropy loss.

Try it: memadvise profile tests/zoo/lstm_lm.py --batch-size 4
"""

from __future__ import annotations

import runpy
from pathlib import Path

import torch
from torch import nn

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[2] / "sample_models" / "lstm_lm.py"))
BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000
loss_fn = SAMPLE["loss_fn"]


def build_model() -> nn.Module:
    """Embedding -> 2-layer LSTM -> vocabulary logits, random weights."""
    torch.manual_seed(0)
    return SAMPLE["LSTMLanguageModel"](vocab=VOCAB, emb=64, hidden=128, dropout=0.0)


def example_inputs(batch_size: int) -> torch.Tensor:
    """Random token ids of shape (batch, SEQ_LEN)."""
    return SAMPLE["token_batch"](batch_size, SEQ_LEN, vocab=VOCAB)

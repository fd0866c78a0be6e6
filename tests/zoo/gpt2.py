"""Tiny GPT-2 language model: sample_models/gpt2.py's model at 2 layers, n_embd 64, 2 heads, a vocabulary
of 1000 and 32 tokens (random weights, labels = input ids).

Try it: memadvise profile tests/zoo/gpt2.py --batch-size 4
"""

from __future__ import annotations

import runpy
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[2] / "sample_models" / "gpt2.py"))
BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000


def build_model() -> GPT2LMHeadModel:
    """Two-layer GPT-2 with n_embd 64 and tied input/output embeddings."""
    return SAMPLE["build_gpt2"](vocab=VOCAB, positions=64, embd=64, layers=2, heads=2)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels, so ``output.loss`` exists."""
    return SAMPLE["token_batch"](batch_size, seq_len, vocab=VOCAB)

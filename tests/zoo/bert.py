"""Tiny BERT sequence classifier: sample_models/bert.py's model at 2 layers, hidden size 64, 2 heads,
a 3-way head, a vocabulary of 1000 and 32 tokens (random weights, labels included).

Try it: memadvise profile tests/zoo/bert.py --batch-size 4
"""

from __future__ import annotations

import runpy
from pathlib import Path

import torch
from transformers import BertForSequenceClassification

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[2] / "sample_models" / "bert.py"))
BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000
LABELS = 3


def build_model() -> BertForSequenceClassification:
    """Two-layer BERT with hidden size 64 and a 3-way classification head."""
    return SAMPLE["build_bert"](
        vocab=VOCAB, hidden=64, layers=2, heads=2, intermediate=128, positions=64, labels=LABELS
    )


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    """Random token ids, a full attention mask and class labels."""
    return SAMPLE["labelled_batch"](batch_size, SEQ_LEN, vocab=VOCAB, labels=LABELS)

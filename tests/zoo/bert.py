"""Tiny BERT sequence classifier (BertForSequenceClassification, random weights, labels included).

Try it: memadvise profile tests/zoo/bert.py --batch-size 4
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000


def build_model() -> torch.nn.Module:
    """Two-layer BERT with hidden size 64 and a 3-way classification head."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    config.num_labels = 3
    config._attn_implementation = "eager"  # same attention kernels on every backend
    return BertForSequenceClassification(config)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    """Random token ids, a full attention mask and class labels."""
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(1, VOCAB, (batch_size, SEQ_LEN)),
        "attention_mask": torch.ones(batch_size, SEQ_LEN, dtype=torch.long),
        "labels": torch.randint(0, 3, (batch_size,)),
    }

"""Small BERT classifier (BertForSequenceClassification: 4 layers, hidden 256, 4 heads, 128 tokens).

Random weights; class ``labels`` are passed, so the output carries ``.loss``.

Try it: memadvise profile sample_models/bert.py --batch-size 4
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

BATCH_SIZES = (2, 4)
SEQ_LEN = 128
VOCAB = 8000


def build_model() -> torch.nn.Module:
    """BERT with eager attention and a 2-way classification head."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=SEQ_LEN,
        pad_token_id=0,
    )
    config.num_labels = 2
    config._attn_implementation = "eager"  # same attention kernels on every backend
    return BertForSequenceClassification(config)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids, a full attention mask and binary labels."""
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(1, VOCAB, (batch_size, seq_len)),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch_size,)),
    }

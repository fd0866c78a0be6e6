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


def build_bert(
    vocab: int = VOCAB,
    hidden: int = 256,
    layers: int = 4,
    heads: int = 4,
    intermediate: int = 1024,
    positions: int = SEQ_LEN,
    labels: int = 2,
) -> BertForSequenceClassification:
    """BERT with eager attention and a ``labels``-way classification head, of the given sizes (the test
    suite builds a smaller one from it: tests/zoo/bert.py)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=positions,
        pad_token_id=0,
    )
    config.num_labels = labels
    config._attn_implementation = "eager"  # same attention kernels on every backend
    return BertForSequenceClassification(config)


def labelled_batch(
    batch_size: int, seq_len: int = SEQ_LEN, vocab: int = VOCAB, labels: int = 2
) -> dict[str, torch.Tensor]:
    """Random token ids, a full attention mask and class labels."""
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(1, vocab, (batch_size, seq_len)),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, labels, (batch_size,)),
    }


def build_model() -> torch.nn.Module:
    """The BERT above: 4 layers, hidden 256, 4 heads, a 2-way head."""
    return build_bert()


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids, a full attention mask and binary labels."""
    return labelled_batch(batch_size, seq_len)

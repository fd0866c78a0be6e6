"""BERT sequence classifier (6 layers, hidden 512, 8 heads, 512 tokens) with SDPA attention and a
padding mask (a mask rules out the flash kernel; CUDA takes the memory-efficient one)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

SEQ_LEN = 512
VOCAB = 8000
BATCH_SIZES = (4, 8)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        max_position_embeddings=SEQ_LEN,
        pad_token_id=0,
    )
    config.num_labels = 2
    config._attn_implementation = "sdpa"
    return BertForSequenceClassification(config)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    mask[:, seq_len - seq_len // 8 :] = 0  # the last eighth is padding
    return {
        "input_ids": torch.randint(1, VOCAB, (batch_size, seq_len)),
        "attention_mask": mask,
        "labels": torch.randint(0, 2, (batch_size,)),
    }

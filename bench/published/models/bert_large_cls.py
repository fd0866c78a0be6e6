"""bert-large-uncased with a 2-way classification head, as fine-tuned in Hugging Face's single-GPU guide.

Shapes from the public ``bert-large-uncased`` config (vocabulary 30522, hidden 1024, 24 layers, 16 heads,
intermediate 4096, 512 positions), written inline; random weights, nothing downloaded. The guide's dataset
holds ``input_ids`` (random ids in [100, 30000)) and ``labels`` only, 512 tokens per sequence, so the
Trainer passes no attention mask. transformers 4.18-4.21 (the guide's era) had eager attention only.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

SEQ_LEN = 512


def build_model() -> torch.nn.Module:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=512,
        type_vocab_size=2,
    )
    config.num_labels = 2
    config._attn_implementation = "eager"
    return BertForSequenceClassification(config)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.randint(100, 30000, (batch_size, seq_len)),
        "labels": torch.zeros(batch_size, dtype=torch.long),
    }

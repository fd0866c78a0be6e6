"""distilbert-base-uncased with its masked-LM head, as in the transformers docs' SDPA training benchmark.

Shapes from the public ``distilbert-base-uncased`` config (vocabulary 30522, dim 768, 6 layers, 12 heads,
hidden 3072, 512 positions, tied output embedding), written inline; random weights. The benchmark passes
``input_ids`` only and trains on ``logits.sum()`` with no optimizer. ``build_eager`` and ``build_sdpa``
select the attention implementation the benchmark compared (``build_model`` is the eager one).
"""

from __future__ import annotations

import os
import sys

import torch
from transformers import DistilBertConfig, DistilBertForMaskedLM

sys.path.insert(0, os.path.dirname(__file__))
from _benchmark import attention_variants, loss_fn, token_inputs  # noqa: E402,F401

VOCAB = 30522
SEQ_LEN = 256


def _build(attn: str) -> torch.nn.Module:
    config = DistilBertConfig(
        vocab_size=VOCAB,
        dim=768,
        n_layers=6,
        n_heads=12,
        hidden_dim=3072,
        max_position_embeddings=512,
    )
    config._attn_implementation = attn
    return DistilBertForMaskedLM(config)


build_model, build_eager, build_sdpa = attention_variants(_build)
example_inputs = token_inputs(VOCAB, SEQ_LEN)

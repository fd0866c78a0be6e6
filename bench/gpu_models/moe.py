"""Mixture-of-experts decoder (Mixtral-style: 4 layers, hidden 256, 8 experts, top-2 routing, GQA,
256 tokens) with SDPA attention."""

from __future__ import annotations

import os
import sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from _hf import token_batch  # noqa: E402

SEQ_LEN = 256
VOCAB = 8000
BATCH_SIZES = (4, 8)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=SEQ_LEN,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return MixtralForCausalLM(config)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    return token_batch(batch_size, seq_len, VOCAB)

"""Llama-style decoder (8 layers, hidden 512, 8 query heads over 2 key/value heads, SwiGLU, RMSNorm,
rotary embeddings, 512 tokens) with SDPA attention."""

from __future__ import annotations

import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from _hf import token_batch  # noqa: E402

SEQ_LEN = 512
VOCAB = 8000
BATCH_SIZES = (4, 8)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=SEQ_LEN,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    return token_batch(batch_size, seq_len, VOCAB)

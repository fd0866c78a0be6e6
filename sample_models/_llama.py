"""Shared by the Llama-2-shaped samples: a ``LlamaForCausalLM`` of given shapes, and its batch."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SEQ_LEN = 2048
VOCAB = 32000


def build_llama(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> torch.nn.Module:
    """A Llama-2-shaped causal LM with eager attention (materialised attention scores)."""
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=SEQ_LEN,
    )
    cfg._attn_implementation = "eager"  # as in the closed-form accounting of activations
    return LlamaForCausalLM(cfg)


def token_batch(batch_size: int) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels, so the output carries ``.loss``."""
    ids = torch.randint(0, VOCAB, (batch_size, SEQ_LEN))
    return {"input_ids": ids, "labels": ids}

"""Tiny Qwen2-MoE (4 experts, top-2, and a shared expert), 2 layers, random weights."""

from __future__ import annotations

import torch
from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

VOCAB = 512


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = Qwen2MoeConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=256,
        decoder_sparse_step=1,
    )
    config._attn_implementation = "eager"
    return Qwen2MoeForCausalLM(config)


def example_inputs(batch_size: int, seq_len: int = 32) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

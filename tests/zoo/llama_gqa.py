"""Tiny Llama causal LM with grouped-query attention (4 query heads share 2 key/value heads).

Try it: memadvise profile tests/zoo/llama_gqa.py --batch-size 4
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000


def build_model() -> torch.nn.Module:
    """Two-layer Llama, hidden size 64, num_key_value_heads < num_attention_heads."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        use_cache=False,
    )
    config._attn_implementation = "eager"  # same attention kernels on every backend
    return LlamaForCausalLM(config)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels."""
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, SEQ_LEN))
    return {"input_ids": ids, "labels": ids}

"""Tiny Llama causal LM with grouped-query attention, for generation (random weights).

2 layers, hidden size 64, 4 query heads sharing 2 key/value heads, vocabulary 1000, a 32-token
prompt, room for 4096 positions.

Try it: memadvise profile sample_models/llama_tiny.py --mode generate --new-tokens 32 -b 2
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

BATCH_SIZES = (2, 4)
PROMPT_LEN = 32
VOCAB = 1000


def build_llama_tiny(
    vocab: int = VOCAB, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2
) -> LlamaForCausalLM:
    """A Llama-shaped model with sdpa attention; kv_heads < heads is grouped-query attention."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def build_model() -> torch.nn.Module:
    """The tiny Llama above."""
    return build_llama_tiny()


def example_inputs(batch_size: int, seq_len: int = PROMPT_LEN) -> dict[str, torch.Tensor]:
    """A prompt of random token ids (and labels, so training profiles work too)."""
    torch.manual_seed(0)
    ids = torch.randint(3, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

"""EleutherAI/pythia-410m-deduped (GPTNeoXForCausalLM), as in the SDPA training benchmark of the docs.

Shapes from the public ``pythia-410m-deduped`` config (vocabulary 50304, hidden 1024, 24 layers, 16 heads,
intermediate 4096, 2048 positions, rotary on 25% of each head, parallel residual, untied output
embedding), written inline; random weights. The benchmark passes ``input_ids`` only and trains on
``logits.sum()`` with no optimizer. ``build_eager`` and ``build_sdpa`` select the attention.
"""

from __future__ import annotations

import os
import sys

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from _benchmark import attention_variants, loss_fn, token_inputs  # noqa: E402,F401

VOCAB = 50304
SEQ_LEN = 128


def _build(attn: str) -> torch.nn.Module:
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=2048,
        rotary_pct=0.25,
        rotary_emb_base=10000,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = attn
    return GPTNeoXForCausalLM(config)


build_model, build_eager, build_sdpa = attention_variants(_build)
example_inputs = token_inputs(VOCAB, SEQ_LEN)

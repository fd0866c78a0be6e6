"""facebook/opt-350m (OPTForCausalLM), as in the SDPA training benchmark of the transformers docs.

Shapes from the public ``facebook/opt-350m`` config (vocabulary 50272, hidden 1024, 24 layers, 16 heads,
FFN 4096, 2048 positions, word_embed_proj_dim 512 with project_in/project_out, post-layer-norm
``do_layer_norm_before=False``, ReLU, dropout 0.1, tied output embedding), written inline; random
weights. The benchmark passes ``input_ids`` only and trains on ``logits.sum()`` with no optimizer.
``build_eager`` and ``build_sdpa`` select the attention implementation (``build_model`` is eager).
"""

from __future__ import annotations

import os
import sys

import torch
from transformers import OPTConfig, OPTForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from _benchmark import attention_variants, loss_fn, token_inputs  # noqa: E402,F401

VOCAB = 50272
SEQ_LEN = 512


def _build(attn: str) -> torch.nn.Module:
    config = OPTConfig(
        vocab_size=VOCAB,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        ffn_dim=4096,
        max_position_embeddings=2048,
        word_embed_proj_dim=512,
        do_layer_norm_before=False,
        activation_function="relu",
        dropout=0.1,
        attention_dropout=0.0,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    config._attn_implementation = attn
    return OPTForCausalLM(config)


build_model, build_eager, build_sdpa = attention_variants(_build)
example_inputs = token_inputs(VOCAB, SEQ_LEN)

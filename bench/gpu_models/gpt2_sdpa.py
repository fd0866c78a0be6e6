"""GPT-2 (6 layers, n_embd 512, 8 heads, 512 tokens) with transformers' default SDPA attention.

On a CUDA GPU, ``F.scaled_dot_product_attention`` with a causal mask and no dropout picks the flash
kernel for 16-bit inputs and the memory-efficient one for fp32 (by architecture and dtype).
"""

from __future__ import annotations

import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(__file__))
from _hf import token_batch  # noqa: E402

SEQ_LEN = 512
VOCAB = 8000
BATCH_SIZES = (4, 8)


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ_LEN,
        n_embd=512,
        n_layer=6,
        n_head=8,
        bos_token_id=0,
        eos_token_id=0,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
    )
    config._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"
    return model


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    return token_batch(batch_size, seq_len, VOCAB)

"""Llama-2-70B-shaped language model: profile what you cannot run.

LlamaForCausalLM with Llama-2-70B's shapes (hidden 8192, 80 layers, 64 heads sharing 8 key-value
heads, intermediate 28672, vocabulary 32000) on 2048-token sequences, eager attention. Its weights
alone take 275 GB in fp32, so trace it fake — on the meta device, where nothing is allocated:

    memadvise profile sample_models/llama2_70b.py --device meta --batch-size 1
"""

from __future__ import annotations

import torch
from _llama import build_llama, token_batch

FAKE_ONLY = True  # far too large for a real run


def build_model() -> torch.nn.Module:
    return build_llama(hidden=8192, intermediate=28672, layers=80, heads=64, kv_heads=8)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return token_batch(batch_size)

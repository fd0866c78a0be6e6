"""Llama-2-7B-shaped language model: profile what you cannot run.

LlamaForCausalLM with Llama-2-7B's shapes (hidden 4096, 32 layers, 32 heads, intermediate 11008,
vocabulary 32000) on 2048-token sequences, eager attention, random weights. Its weights alone take
27 GB in fp32, so trace it fake — on the meta device, where nothing is allocated:

    memadvise profile sample_models/llama2_7b.py --device meta --batch-size 1

The report follows CUDA's kernels unless ``--target-device cpu`` is given.
"""

from __future__ import annotations

import torch
from _llama import build_llama, token_batch

FAKE_ONLY = True  # far too large for a real run on most machines


def build_model() -> torch.nn.Module:
    return build_llama(hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return token_batch(batch_size)

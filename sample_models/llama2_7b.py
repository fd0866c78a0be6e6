"""Llama-2-7B-shaped language model: profile what you cannot run.

LlamaForCausalLM from a ``LlamaConfig`` with Llama-2-7B's shapes (hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocabulary 32000) and 2048-token sequences, eager attention. Its weights alone
take 27 GB in fp32, so trace it fake — on the meta device, where nothing is allocated:

    memadvise profile sample_models/llama2_7b.py --device meta --batch-size 1

The report follows CUDA's kernels unless ``--target-device cpu`` is given.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

FAKE_ONLY = True  # far too large for a real run on most machines
SEQ_LEN = 2048
VOCAB = 32000


def config() -> LlamaConfig:
    """Llama-2-7B's shapes."""
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=SEQ_LEN,
    )
    cfg._attn_implementation = "eager"  # materialised attention scores, as in the closed-form accounting
    return cfg


def build_model() -> torch.nn.Module:
    """The model, with random weights (or none at all on the meta device)."""
    return LlamaForCausalLM(config())


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels, so the output carries ``.loss``."""
    ids = torch.randint(0, VOCAB, (batch_size, SEQ_LEN))
    return {"input_ids": ids, "labels": ids}

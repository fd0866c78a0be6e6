"""Tiny GPT-2 language model (GPT2LMHeadModel, random weights, labels = input ids).

Try it: memadvise profile tests/zoo/gpt2.py --batch-size 4
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

BATCH_SIZES = (2, 4)
SEQ_LEN = 32
VOCAB = 1000


def build_model() -> torch.nn.Module:
    """Two-layer GPT-2 with n_embd 64 and tied input/output embeddings."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = "eager"  # same attention kernels on every backend
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # the class name does not tell transformers which loss to use
    return model


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels, so ``output.loss`` exists."""
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

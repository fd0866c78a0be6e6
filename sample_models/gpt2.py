"""Small GPT-2 language model (GPT2LMHeadModel: 4 layers, n_embd 256, 4 heads, vocab 8000, 128 tokens).

Random weights; ``labels`` equal the input ids, so the output carries ``.loss``.

Try it: memadvise profile sample_models/gpt2.py --batch-size 4
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

BATCH_SIZES = (2, 4)
SEQ_LEN = 128
VOCAB = 8000


def build_model() -> torch.nn.Module:
    """GPT-2 with eager attention and tied input/output embeddings."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ_LEN,
        n_embd=256,
        n_layer=4,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = "eager"  # same attention kernels on every backend
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # the class name does not tell transformers which loss to use
    return model


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels."""
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

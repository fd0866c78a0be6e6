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


def build_gpt2(
    vocab: int = VOCAB, positions: int = SEQ_LEN, embd: int = 256, layers: int = 4, heads: int = 4
) -> GPT2LMHeadModel:
    """GPT-2 with eager attention and tied input/output embeddings, of the given sizes (the test suite
    builds a smaller one from it: tests/zoo/gpt2.py)."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=positions,
        n_embd=embd,
        n_layer=layers,
        n_head=heads,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = "eager"  # same attention kernels on every backend
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # the class name does not tell transformers which loss to use
    return model


def token_batch(batch_size: int, seq_len: int = SEQ_LEN, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels, so the output carries ``.loss``."""
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}


def build_model() -> torch.nn.Module:
    """The GPT-2 above: 4 layers, n_embd 256, 4 heads, vocabulary 8000, 128 positions."""
    return build_gpt2()


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Random token ids used as both inputs and labels."""
    return token_batch(batch_size, seq_len)

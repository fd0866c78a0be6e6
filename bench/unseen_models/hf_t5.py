"""transformers T5 (tiny config, random weights) with labels: encoder-decoder with relative attention."""

from __future__ import annotations

import torch
from transformers import T5Config, T5ForConditionalGeneration

BATCH_SIZES = (2,)
VOCAB = 512


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                      decoder_start_token_id=0, pad_token_id=0)
    return T5ForConditionalGeneration(config)


def example_inputs(batch_size: int) -> dict:
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(1, VOCAB, (batch_size, 32)),
        "labels": torch.randint(1, VOCAB, (batch_size, 16)),
    }


def loss_fn(output, inputs) -> torch.Tensor:
    return output.loss

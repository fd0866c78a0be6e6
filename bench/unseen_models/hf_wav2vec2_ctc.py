"""transformers Wav2Vec2 for CTC (tiny config, random weights) on 1 s of 16 kHz audio with labels."""

from __future__ import annotations

import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

BATCH_SIZES = (2,)
VOCAB = 32


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, mask_time_prob=0.0, layerdrop=0.0,
    )
    return Wav2Vec2ForCTC(config)


def example_inputs(batch_size: int) -> dict:
    torch.manual_seed(0)
    return {
        "input_values": torch.randn(batch_size, 8000),
        "labels": torch.randint(1, VOCAB, (batch_size, 12)),
    }


def loss_fn(output, inputs) -> torch.Tensor:
    return output.loss

"""facebook/opt-350m (OPTForCausalLM), as in the SDPA training benchmark of the transformers docs.

Shapes from the public ``facebook/opt-350m`` config (vocabulary 50272, hidden 1024, 24 layers, 16 heads,
FFN 4096, 2048 positions, word_embed_proj_dim 512 with project_in/project_out, post-layer-norm
``do_layer_norm_before=False``, ReLU, dropout 0.1, tied output embedding), written inline; random
weights. The benchmark passes ``input_ids`` only and trains on ``logits.sum()`` with no optimizer.
``build_eager`` and ``build_sdpa`` select the attention implementation (``build_model`` is eager).
"""

from __future__ import annotations

import torch
from transformers import OPTConfig, OPTForCausalLM

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


def build_model() -> torch.nn.Module:
    return _build("eager")


def build_eager() -> torch.nn.Module:
    return _build("eager")


def build_sdpa() -> torch.nn.Module:
    return _build("sdpa")


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(VOCAB - 1, (batch_size, seq_len))}


def loss_fn(output, inputs) -> torch.Tensor:  # noqa: ANN001 - a transformers output and the batch
    return output.logits.sum()

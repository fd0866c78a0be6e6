"""distilbert-base-uncased with its masked-LM head, as in the transformers docs' SDPA training benchmark.

Shapes from the public ``distilbert-base-uncased`` config (vocabulary 30522, dim 768, 6 layers, 12 heads,
hidden 3072, 512 positions, tied output embedding), written inline; random weights. The benchmark passes
``input_ids`` only and trains on ``logits.sum()`` with no optimizer. ``build_eager`` and ``build_sdpa``
select the attention implementation the benchmark compared (``build_model`` is the eager one).
"""

from __future__ import annotations

import torch
from transformers import DistilBertConfig, DistilBertForMaskedLM

VOCAB = 30522
SEQ_LEN = 256


def _build(attn: str) -> torch.nn.Module:
    config = DistilBertConfig(
        vocab_size=VOCAB,
        dim=768,
        n_layers=6,
        n_heads=12,
        hidden_dim=3072,
        max_position_embeddings=512,
    )
    config._attn_implementation = attn
    return DistilBertForMaskedLM(config)


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

"""EleutherAI/pythia-410m-deduped (GPTNeoXForCausalLM), as in the SDPA training benchmark of the docs.

Shapes from the public ``pythia-410m-deduped`` config (vocabulary 50304, hidden 1024, 24 layers, 16 heads,
intermediate 4096, 2048 positions, rotary on 25% of each head, parallel residual, untied output
embedding), written inline; random weights. The benchmark passes ``input_ids`` only and trains on
``logits.sum()`` with no optimizer. ``build_eager`` and ``build_sdpa`` select the attention.
"""

from __future__ import annotations

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

VOCAB = 50304
SEQ_LEN = 128


def _build(attn: str) -> torch.nn.Module:
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=2048,
        rotary_pct=0.25,
        rotary_emb_base=10000,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = attn
    return GPTNeoXForCausalLM(config)


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

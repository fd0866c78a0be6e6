"""A Mixtral-style decoder whose experts run as transformers' eager loop (per-expert index tensors): 8
wide experts (most of the memory), top-2, 2 layers, a small vocabulary, and routers forced to a known
routing (a fixed score table per token position, which a fake trace cannot see): ``build_model``
spreads tokens evenly, ``build_worst`` sends every token to experts 0 and 1, ``build_skewed`` gives
expert 0 3/8 of the routed rows."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch
from transformers import MixtralConfig, MixtralForCausalLM

VOCAB = 1024
EXPERTS = 8
TOP_K = 2
TOKENS = 64  # the routing table's period (sequence lengths are multiples of it)
SEQ_LEN = 256
BATCH_SIZES = (32,)


# The forced router of the CPU tests' loop MoE (tests/integration/models/moe_loop.py), at this size.
_LOOP = runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "models" / "moe_loop.py")
)
ForcedRouter = _LOOP["ForcedRouter"]


def routing_table(loads: list[int]) -> torch.Tensor:
    """Scores that route ``loads[e]`` of every TOKENS tokens to expert ``e``."""
    return _LOOP["routing_table"](loads, TOKENS, TOP_K)


def _build(loads: list[int]) -> torch.nn.Module:
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=2048,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        max_position_embeddings=SEQ_LEN,
        experts_implementation="eager",
    )
    config._attn_implementation = "sdpa"
    model = MixtralForCausalLM(config)
    for layer in model.model.layers:
        layer.mlp.gate = ForcedRouter(config.hidden_size, routing_table(loads), TOP_K)
    return model


def build_model() -> torch.nn.Module:
    return _build([TOKENS * TOP_K // EXPERTS] * EXPERTS)


def build_worst() -> torch.nn.Module:
    return _build([TOKENS] * TOP_K + [0] * (EXPERTS - TOP_K))


def build_skewed() -> torch.nn.Module:
    return _build([48] + [80 // 7 + (1 if e < 80 % 7 else 0) for e in range(7)])


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

"""A Mixtral-style decoder whose experts run as transformers' eager loop (per-expert index tensors): 8
wide experts (most of the memory), top-2, 2 layers, a small vocabulary, and routers forced to a known
routing (a fixed score table per token position, which a fake trace cannot see): ``build_model``
spreads tokens evenly, ``build_worst`` sends every token to experts 0 and 1, ``build_skewed`` gives
expert 0 3/8 of the routed rows."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

VOCAB = 1024
EXPERTS = 8
TOP_K = 2
TOKENS = 64  # the routing table's period (sequence lengths are multiples of it)
SEQ_LEN = 256
BATCH_SIZES = (32,)


# The CPU tests' loop MoE (tests/integration/models/moe_loop.py), built at this size.
_LOOP = runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "tests" / "integration" / "models" / "moe_loop.py")
)


def _build(loads: list[int]) -> torch.nn.Module:
    return _LOOP["build_routed"](
        loads,
        vocab=VOCAB,
        hidden=256,
        intermediate=2048,
        layers=2,
        heads=4,
        kv_heads=2,
        top_k=TOP_K,
        tokens=TOKENS,
        positions=SEQ_LEN,
        attention="sdpa",
    )


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

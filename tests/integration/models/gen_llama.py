"""Generation test model: a two-layer Llama with grouped-query attention (4 query heads, 2 key/value
heads), hidden size 64, vocabulary 512 and a 16-token prompt (random weights)."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[3] / "sample_models" / "llama_tiny.py"))
PROMPT_LEN = 16
VOCAB = 512


def build_model() -> torch.nn.Module:
    return SAMPLE["build_llama_tiny"](vocab=VOCAB, hidden=64, layers=2, heads=4, kv_heads=2)


def example_inputs(batch_size: int, seq_len: int = PROMPT_LEN) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"input_ids": torch.randint(3, VOCAB, (batch_size, seq_len))}

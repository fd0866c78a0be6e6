"""Generation test model: a two-layer GPT-2 (multi-head attention), n_embd 64, 2 heads, vocabulary 512,
a 16-token prompt and room for 256 positions (random weights)."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

SAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[3] / "sample_models" / "gpt2.py"))
PROMPT_LEN = 16
VOCAB = 512


def build_model() -> torch.nn.Module:
    return SAMPLE["build_gpt2"](vocab=VOCAB, positions=256, embd=64, layers=2, heads=2)


def example_inputs(batch_size: int, seq_len: int = PROMPT_LEN) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"input_ids": torch.randint(1, VOCAB, (batch_size, seq_len))}

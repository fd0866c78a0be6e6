"""The Llama-style GQA decoder of llama_gqa.py generating from a prompt of PROMPT_LEN random tokens
(``--mode generate``): ``example_inputs`` gives the prompt's token ids only."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

BASE = runpy.run_path(str(Path(__file__).resolve().parent / "llama_gqa.py"))
PROMPT_LEN = 256


def build_model() -> torch.nn.Module:
    return BASE["build_model"]()


def example_inputs(batch_size: int, seq_len: int = PROMPT_LEN) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"input_ids": torch.randint(3, BASE["VOCAB"], (batch_size, seq_len))}

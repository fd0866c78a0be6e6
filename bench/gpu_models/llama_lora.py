"""The Llama-style GQA decoder of llama_gqa.py with PEFT LoRA adapters (rank 16): ``build_lora_qv`` on
``q_proj`` and ``v_proj``, ``build_lora_all`` on every linear layer but the output head
(``all-linear``); ``build_model`` is the base model, for a full fine-tuning profile."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import torch

BASE = runpy.run_path(str(Path(__file__).resolve().parent / "llama_gqa.py"))
RANK = 16
BATCH_SIZES = (8,)


def _lora(targets: Any) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(BASE["build_model"](), LoraConfig(r=RANK, target_modules=targets, lora_dropout=0.0))


def build_model() -> torch.nn.Module:
    return BASE["build_model"]()


def build_lora_qv() -> torch.nn.Module:
    return _lora(["q_proj", "v_proj"])


def build_lora_all() -> torch.nn.Module:
    return _lora("all-linear")


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return BASE["example_inputs"](batch_size)

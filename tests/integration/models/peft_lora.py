"""PEFT LoRA models of the tiny GPT-2 and Llama test models (tests/zoo), built with ``get_peft_model``.

``build_model()`` is the GPT-2 with rank-8 adapters on ``c_attn``; ``build_llama()`` the Llama with
adapters on ``q_proj`` and ``v_proj`` (both zoo models take the same batch: 32 token ids from a
vocabulary of 1000). :func:`lora` applies any ``LoraConfig`` to a built model (the
ground truth's ``transform``).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

ZOO = Path(__file__).resolve().parents[2] / "zoo"
GPT2 = runpy.run_path(str(ZOO / "gpt2.py"))
LLAMA = runpy.run_path(str(ZOO / "llama_gqa.py"))
RANK = 8


def lora(model: torch.nn.Module, targets: Any, dropout: float = 0.0) -> torch.nn.Module:
    """``model`` with rank-8 LoRA adapters on ``targets`` (a list of suffixes or ``"all-linear"``)."""
    gpt2 = type(model).__name__.startswith("GPT2")  # transformers' Conv1D stores weights (in, out)
    config = LoraConfig(r=RANK, target_modules=targets, lora_dropout=dropout, fan_in_fan_out=gpt2)
    return get_peft_model(model, config)


def build_model() -> torch.nn.Module:
    return lora(GPT2["build_model"](), ["c_attn"])


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return GPT2["example_inputs"](batch_size)


def build_llama() -> torch.nn.Module:
    return lora(LLAMA["build_model"](), ["q_proj", "v_proj"])

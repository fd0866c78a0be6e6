"""The SDPA GPT-2 of ``gpt2_sdpa.py`` trained with ``torch.optim.AdamW(fused=True)`` in its own step.

``train_step`` makes the fused optimizer once (kept on the model) and runs the tutorial loop's body;
memadvise finds its phases through the global optimizer hooks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from gpt2_sdpa import BATCH_SIZES, SEQ_LEN, build_model, example_inputs  # noqa: E402,F401


def train_step(model: torch.nn.Module, inputs: Any, optimizer: Any) -> torch.Tensor:
    opt = getattr(model, "_fused_adamw", None)
    if opt is None:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        object.__setattr__(model, "_fused_adamw", opt)
    loss = model(**inputs).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()

"""What the SDPA training benchmark's model files share: the attention variants, the batch, the loss.

The benchmark built each model twice (eager and SDPA attention), fed ``input_ids`` only and trained on
``logits.sum()`` with no optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Builder = Callable[[], torch.nn.Module]


def attention_variants(build: Callable[[str], torch.nn.Module]) -> tuple[Builder, Builder, Builder]:
    """``build_model`` (eager, the default), ``build_eager`` and ``build_sdpa`` from ``build(attn)``."""

    def build_eager() -> torch.nn.Module:
        return build("eager")

    def build_sdpa() -> torch.nn.Module:
        return build("sdpa")

    return build_eager, build_eager, build_sdpa


def token_inputs(vocab: int, default_len: int) -> Callable[..., dict[str, torch.Tensor]]:
    """``example_inputs(batch_size, seq_len=default_len)``: random token ids below ``vocab - 1``."""

    def example_inputs(batch_size: int, seq_len: int = default_len) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.randint(vocab - 1, (batch_size, seq_len))}

    return example_inputs


def loss_fn(output: Any, inputs: Any) -> torch.Tensor:
    """The benchmark's loss: the sum of the logits."""
    return output.logits.sum()

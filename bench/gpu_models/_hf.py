"""Shared helpers of the GPU validation models: token batches for causal language models."""

from __future__ import annotations

import torch


def token_batch(batch_size: int, seq_len: int, vocab: int) -> dict[str, torch.Tensor]:
    """Random token ids used as inputs and labels (the model computes its own shifted loss)."""
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

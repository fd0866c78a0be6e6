"""Batch size: every block's size is affine in the batch, ``size + per_sample * (B - b)``."""

from __future__ import annotations

import numpy as np

from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.model.program import SCALING_TRACED, assumed_per_sample


def scale_batch(ctx: Context, batch_size: int) -> None:
    """Resize the blocks for ``batch_size`` samples per forward pass (must run before other levers)."""
    program = ctx.program
    if program.batch_size < 1:
        raise UsageError("this profile does not record its batch size, so it cannot be scaled to another")
    if batch_size == program.batch_size:
        return
    if program.scaling == SCALING_TRACED and len(program.per_sample) == len(program):
        per_sample = np.asarray(program.per_sample, dtype=np.float64)
        ctx.note(
            f"batch scaling fitted from traces at batch {program.batch_size} and {program.scaling_batch_size}"
        )
    else:
        per_sample = np.array(assumed_per_sample(program))
        ctx.note(
            "batch scaling assumed: activations, temporaries and inputs grow in proportion to the batch "
            "(profile without a second trace, or its traces did not line up)"
        )
    n = len(per_sample)
    ctx.blocks.size[:n] = np.maximum(
        0.0, ctx.blocks.size[:n] + per_sample * (batch_size - program.batch_size)
    )

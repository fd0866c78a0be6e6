"""Data-parallel training over several GPUs: what one GPU holds under DDP, ZeRO-1/2/3 or FSDP.

Every GPU runs its own micro-batch, so activations and temporaries are those of the trace. Model states
follow :func:`memadvise.analyzer.sharding.shard_model_states` (the ZeRO paper's accounting): the sharded parts
of parameters, gradients and optimizer state are divided over the GPUs, block by block. On top:

* **DDP** keeps its gradient buckets, a second copy of every gradient (``gradient_as_bucket_view=False``,
  PyTorch's default), from the first backward pass on;
* **ZeRO-1/2/3 / FSDP** run the optimizer step on each GPU's shard only, so the step's temporaries
  (the multi-tensor ``foreach`` buffers of Adam's update, for instance) shrink with the shard too;
* **ZeRO-3 / FSDP** all-gather each wrapped unit's parameters while it runs, and prefetch the next: the
  largest unit's parameters, twice, are alive through forward and backward. Units are taken to be the
  model's repeated blocks (the largest module holding under half the parameters). This is a formula,
  not a trace of PyTorch's sharding machinery.
"""

from __future__ import annotations

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks
from memadvise.analyzer.context import Context
from memadvise.analyzer.sharding import ShardedStates, Strategy, fsdp_unsharded_peak_bytes, shard_model_states
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode, Phase

SHARDED_CATEGORIES = {
    Strategy.DDP: (),
    Strategy.ZERO1: (Category.OPTIMIZER_STATE,),
    Strategy.ZERO2: (Category.OPTIMIZER_STATE, Category.GRADIENTS),
    Strategy.ZERO3: (Category.OPTIMIZER_STATE, Category.GRADIENTS, Category.PARAMETERS),
    Strategy.FSDP: (Category.OPTIMIZER_STATE, Category.GRADIENTS, Category.PARAMETERS),
}


def shard(ctx: Context, gpus: int, strategy: Strategy, totals: tuple[int, int, int]) -> ShardedStates:
    """Divide the sharded categories' blocks over ``gpus`` and add the strategy's own buffers.

    ``totals`` are the whole model's parameter, gradient and optimizer-state bytes (one GPU's view).
    """
    if ctx.profile.mode != Mode.TRAIN.value:
        raise UsageError("--gpus with a sharding strategy applies to training profiles")
    states = shard_model_states(*totals, gpus=gpus, strategy=strategy)
    blocks = ctx.blocks
    for category in SHARDED_CATEGORIES[strategy]:
        mask = blocks.is_category(category)
        blocks.size = np.where(mask, blocks.size / gpus, blocks.size)
    if Category.OPTIMIZER_STATE in SHARDED_CATEGORIES[strategy]:
        # Each GPU's optimizer steps over its own shard: the step's temporaries are a shard's too.
        in_step = np.zeros(len(blocks), dtype=bool)
        for step in ctx.steps():
            span = ctx.phase_span(Phase.OPTIMIZER, step)
            if span is not None:
                in_step |= (blocks.alloc >= span[0] - 0.5) & (blocks.alloc < span[1])
        mask = in_step & blocks.is_category(Category.TEMPORARIES)
        blocks.size = np.where(mask, blocks.size / gpus, blocks.size)
    rows: list[tuple[float, float, float, int, int]] = []
    steps = ctx.steps()
    if strategy is Strategy.DDP and states.bucket_bytes:
        first = ctx.phase_span(Phase.BACKWARD, steps[0]) if steps else None
        if first is not None:
            rows.append((first[0] - 0.5, np.inf, states.bucket_bytes, CAT[Category.GRADIENTS.value], 0))
    if strategy in (Strategy.ZERO3, Strategy.FSDP) and gpus > 1:
        unit = largest_unit(ctx)
        gathered = fsdp_unsharded_peak_bytes(unit)
        for step in steps:
            forward = ctx.phase_span(Phase.FORWARD, step)
            backward = ctx.phase_span(Phase.BACKWARD, step)
            if forward is not None:
                end = backward[1] if backward is not None else forward[1]
                temporaries = CAT[Category.TEMPORARIES.value]
                rows.append((forward[0] - 0.5, end - 0.5, gathered, temporaries, 0))
        ctx.note(
            f"{strategy.value}: all-gathered parameters of the largest unit and its prefetched next "
            "(by formula)"
        )
    blocks.add(Blocks.from_rows(rows))
    ctx.note(states.note)
    return states


def largest_unit(ctx: Context) -> int:
    """Parameter bytes of the largest module that holds under half of all parameters."""
    params = ctx.program.parameters
    total = sum(p.nbytes for p in params) or 1
    by_module: dict[str, int] = {}
    for p in params:
        parts = p.module.split(".") if p.module else []
        for k in range(len(parts) + 1):
            name = ".".join(parts[:k])
            by_module[name] = by_module.get(name, 0) + p.nbytes
    units = [n for n in by_module.values() if n < total / 2]
    return max(units) if units else total

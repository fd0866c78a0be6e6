"""Offloading to host memory: what a GPU saves, and what host RAM and pinned memory it costs.

Two levels, as DeepSpeed's ZeRO-Offload and PyTorch FSDP's ``CPUOffload`` do them:

* ``optimizer`` (ZeRO-Offload, ``offload_optimizer``): the optimizer state lives in host memory and
  the optimizer step runs on the CPU. The GPU loses every optimizer-state block and the step's
  temporaries. The host holds the state and an fp32 copy of the gradients the CPU step reads; the
  gradients go through a pinned staging buffer of their size (DMA needs page-locked memory).
* ``optimizer+params`` (FSDP ``CPUOffload(offload_params=True)``, ZeRO-Infinity's
  ``offload_param``): parameters and gradients live on the host too. The GPU loses them, but each
  wrapped unit's parameters are copied in while it runs, with the next one prefetched, and its
  gradients exist on the GPU until they are copied out — the largest unit's parameter bytes, three
  times, through forward and backward (the units are the model's repeated blocks, as for ZeRO-3). The
  host holds the state, the parameters and the gradients, all pinned (FSDP pins offloaded parameters).

Everything here edits the block set of the GPU that is estimated (one GPU's share after sharding);
host bytes are that GPU's. Not modelled: the time the copies take, and the CPU's own temporaries during
the step (a few parameter-sized buffers per parameter on the host).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks, replay
from memadvise.analyzer.context import Context
from memadvise.analyzer.distributed import largest_unit
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode, Phase
from memadvise.model.scenario import Offload

UNIT_COPIES = 3  # the running unit's parameters, the prefetched next unit's, the running unit's gradients


@dataclass(frozen=True)
class OffloadReport:
    """What offloading moved, for one GPU: the peak it saves, and the host memory it needs."""

    offload: str
    gpu_saving_bytes: int
    host_bytes: int
    pinned_bytes: int
    moved: dict[str, int]
    note: str


def offload(ctx: Context, what: Offload) -> OffloadReport:
    """Move ``what`` off the GPU in ``ctx``'s blocks; returns the GPU saving and the host cost."""
    if ctx.profile.mode != Mode.TRAIN.value:
        raise UsageError("--offload applies to training profiles (it moves optimizer state to the host)")
    blocks = ctx.blocks
    before = replay(blocks).peak_bytes
    persistent = np.isinf(blocks.free)
    in_step = np.zeros(len(blocks), dtype=bool)
    for step in ctx.steps():
        span = ctx.phase_span(Phase.OPTIMIZER, step)
        if span is not None:
            in_step |= (blocks.alloc >= span[0] - 0.5) & (blocks.alloc < span[1])
    state = blocks.is_category(Category.OPTIMIZER_STATE)
    step_temps = in_step & blocks.is_category(Category.TEMPORARIES)
    params = blocks.is_category(Category.PARAMETERS)
    grads = blocks.is_category(Category.GRADIENTS)
    grad_bytes = _grad_bytes(ctx, grads)
    moved = {
        "optimizer_state": int(np.rint(blocks.size[state & persistent]).sum()),
        "optimizer_step_temporaries": int(np.rint(blocks.size[step_temps]).sum()),
    }
    gone = state | step_temps
    host = moved["optimizer_state"] + grad_bytes
    pinned = grad_bytes
    if what is Offload.OPTIMIZER_PARAMS:
        moved["parameters"] = int(np.rint(blocks.size[params]).sum())
        moved["gradients"] = grad_bytes
        gone |= params | grads
        host = moved["optimizer_state"] + moved["parameters"] + grad_bytes
        pinned = moved["parameters"] + grad_bytes
    blocks.size = np.where(gone, 0.0, blocks.size)
    if what is Offload.OPTIMIZER_PARAMS:
        unit = largest_unit(ctx)
        rows: list[tuple[float, float, float, int, int]] = []
        for step in ctx.steps():
            forward = ctx.phase_span(Phase.FORWARD, step)
            backward = ctx.phase_span(Phase.BACKWARD, step)
            if forward is not None:
                end = backward[1] if backward is not None else forward[1]
                rows.append(
                    (forward[0] - 0.5, end - 0.5, UNIT_COPIES * unit, CAT[Category.TEMPORARIES.value], 0)
                )
        blocks.add(Blocks.from_rows(rows))
    after = replay(blocks).peak_bytes
    note = f"offload {what.value}: " + (
        "optimizer state and step on the host"
        if what is Offload.OPTIMIZER
        else "optimizer state, parameters and gradients on the host; each unit's parameters copied in "
        "while it runs (the largest unit, with its prefetched next and its gradients, by formula)"
    )
    ctx.note(note)
    return OffloadReport(
        offload=what.value,
        gpu_saving_bytes=before - after,
        host_bytes=host,
        pinned_bytes=pinned,
        moved=moved,
        note=note,
    )


def _grad_bytes(ctx: Context, grads: np.ndarray) -> int:
    """Bytes of one step's gradients (the largest any step holds, accumulated ones once)."""
    blocks = ctx.blocks
    best = 0
    steps = ctx.steps() or [0]
    for step in steps:
        span = ctx.phase_span(Phase.BACKWARD, step)
        if span is None:
            continue
        made = grads & (blocks.alloc >= span[0] - 0.5) & (blocks.alloc < span[1])
        held = grads & (blocks.alloc < span[0] - 0.5) & (blocks.free >= span[0])
        best = max(best, int(np.rint(blocks.size[made | held]).sum()))
    return best or int(np.rint(blocks.size[grads & np.isinf(blocks.free)]).sum())

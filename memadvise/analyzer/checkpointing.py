"""Activation checkpointing: which modules' activations are dropped in forward and recomputed in backward.

For a module M run under ``torch.utils.checkpoint`` (non-reentrant), per step:

* **forward** — the tensors M's operators saved for backward are no longer kept; they are freed by the
  end of M's forward call (the cautious reading: in reality most die as soon as the next operator has
  used them). M's inputs stay saved, and its outputs are whatever the rest of the model keeps.
* **backward** — when the first backward node of M runs, M's forward is replayed: every block M
  allocated is allocated again in order just before that moment; the saved ones then live until
  their original frees in backward, the rest (temporaries, recomputed outputs) die within the replay.

A module must run once per step to be checkpointed this way; nested choices keep the outermost. The
recompute cost is M's forward FLOPs (matrix products and convolutions), once per step.
"""

from __future__ import annotations

import numpy as np

from memadvise.analyzer.blocks import Blocks
from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode


def outermost(names: tuple[str, ...]) -> tuple[str, ...]:
    """Drop names nested inside another chosen name."""
    return tuple(n for n in names if not any(n != o and n.startswith(o + ".") for o in names if o))


def check_modules(ctx: Context, names: tuple[str, ...]) -> None:
    if ctx.profile.mode != Mode.TRAIN.value:
        raise UsageError("activation checkpointing applies to training profiles")
    known = set(ctx.program.modules)
    for name in names:
        if name not in known:
            raise UsageError(f"no module named {name!r} ran in this profile (see its layer table for names)")
        calls = [c for c in ctx.program.forward_calls if ctx.program.modules[c[0]] == name and c[1] == 0]
        if len(calls) != 1:
            raise UsageError(
                f"module {name!r} runs {len(calls)} times per step; checkpointing is estimated for modules "
                "that run once per step"
            )


def apply_checkpoint(ctx: Context, names: tuple[str, ...]) -> None:
    """Drop and recompute the activations of each module in ``names`` (see the module docstring)."""
    program = ctx.program
    blocks = ctx.blocks
    index = {m: i for i, m in enumerate(program.modules)}
    activations = blocks.is_category(Category.ACTIVATIONS)
    nodes_table = np.asarray(program.backward_nodes, dtype=np.int64).reshape(-1, 4)
    node_module, node_step, node_start = nodes_table[:, 0], nodes_table[:, 1], nodes_table[:, 2]
    replays: list[Blocks] = []
    for name in outermost(names):
        m = index[name]
        subtree = ctx.under((name,))
        for module, step, start, end in program.forward_calls:
            if module != m:
                continue
            nodes = node_start[(node_step == step) & subtree[node_module]]
            region = (blocks.alloc >= start) & (blocks.alloc < end)
            dropped = region & activations & subtree[blocks.module]
            if not len(nodes):
                continue  # no backward ran through it (e.g. under no_grad): nothing to recompute
            recompute = float(nodes.min())
            rows = np.flatnonzero(region)
            replay = blocks.take(region)
            # Replay M's allocations in order inside (recompute - 1, recompute).
            offset = (blocks.alloc[rows] - start + 1) / (end - start + 2)
            replay.alloc = recompute - 1 + offset
            freed_inside = blocks.free[rows] < end
            replay.free = np.where(
                dropped[rows],
                blocks.free[rows],
                np.where(
                    freed_inside,
                    recompute - 1 + (blocks.free[rows] - start + 1) / (end - start + 2),
                    recompute - 0.01,
                ),
            )
            replays.append(replay)
            blocks.free[dropped] = end - 0.5
    for replay in replays:
        blocks.add(replay)


def recompute_flops(ctx: Context, names: tuple[str, ...]) -> int | None:
    """Extra forward FLOPs per step, or ``None`` when the profile has no FLOP counts."""
    flops = ctx.program.module_flops
    if flops is None:
        return None
    return sum(flops.get(n, 0) for n in outermost(names))


def candidates(ctx: Context) -> list[tuple[str, float, float]]:
    """Modules worth checkpointing: ``(name, activation bytes dropped, recompute cost)`` per candidate.

    A candidate runs once per step, is not the whole model, and its operators save at least 1% of the
    step's activations. The cost is its forward FLOPs, or its activation bytes when FLOPs were not
    counted (then every candidate is equally good per byte).
    """
    program = ctx.program
    blocks = ctx.blocks
    activations = blocks.is_category(Category.ACTIVATIONS)
    total = float(blocks.size[activations & (blocks.alloc >= 0)].sum()) or 1.0
    calls: dict[int, list[tuple[int, int]]] = {}
    for module, step, start, end in program.forward_calls:
        if step == 0:
            calls.setdefault(module, []).append((start, end))
    found = []
    for module, spans in calls.items():
        name = program.modules[module]
        if len(spans) != 1 or name == "" or name.startswith("<"):
            continue
        start, end = spans[0]
        subtree = ctx.under((name,))
        saved = float(
            blocks.size[
                activations & (blocks.alloc >= start) & (blocks.alloc < end) & subtree[blocks.module]
            ].sum()
        )
        if saved < 0.01 * total:
            continue
        flops = (program.module_flops or {}).get(name, 0)
        found.append((name, saved, float(flops) if program.module_flops is not None else saved))
    return found

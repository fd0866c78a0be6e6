"""``estimate(profile, scenario) -> Estimate``: replay a profile's blocks with the scenario's changes.

Levers apply in a fixed order, each editing the same block set: batch size (resizes every block),
precision (nf4: bf16, then QLoRA's 4-bit linear weights), pruning, frozen modules, LoRA or low-rank
factorisation, optimizer, gradient accumulation, checkpointing. The replay then
finds the new peak and what is alive at it. Nothing here runs a model; a saved profile is enough.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from memadvise.analyzer.batch import scale_batch
from memadvise.analyzer.blocks import Blocks, Replay, replay
from memadvise.analyzer.checkpointing import (
    apply_checkpoint,
    candidates,
    check_modules,
    outermost,
    recompute_flops,
)
from memadvise.analyzer.context import Context
from memadvise.analyzer.distributed import shard
from memadvise.analyzer.finetune import accumulate, freeze, traced_weight_casts
from memadvise.analyzer.lora import LoraReport, LowRankReport, adapt, quantize_nf4
from memadvise.analyzer.offload import OffloadReport, offload
from memadvise.analyzer.optimizers import change_optimizer
from memadvise.analyzer.precision import change_precision, is_matmul_layer
from memadvise.analyzer.pruning import PruneReport, prune
from memadvise.analyzer.sharding import ShardedStates, Strategy
from memadvise.errors import UsageError
from memadvise.model.profile import (
    CATEGORIES,
    Category,
    Holder,
    MemoryFigures,
    Mode,
    OptimizerName,
    Phase,
    Profile,
    module_label,
)
from memadvise.model.scenario import Precision, Scenario

CUDA_BLOCK = 512
TOP_HOLDERS = 8
MAX_CANDIDATES = 48  # modules tried by --checkpoint auto, best ratio first


@dataclass(frozen=True)
class Estimate(MemoryFigures):
    """The predicted memory of one scenario, next to the profiled baseline, with the reasons.

    The figures a profile measures (:class:`MemoryFigures`) are predicted here under the same names;
    ``baseline`` is the profile the estimate replayed (not part of :meth:`to_dict`).
    """

    scenario: dict[str, Any]
    scenario_text: str
    effective_batch_size: int
    baseline_peak_bytes: int
    change_bytes: int
    change_ratio: float
    peak_holders: tuple[Holder, ...] = ()
    checkpoint: tuple[str, ...] = ()
    recompute_flops: int | None = None
    recompute_fraction: float | None = None
    pruning: PruneReport | None = None
    sharding: ShardedStates | None = None
    offload: OffloadReport | None = None
    notes: tuple[str, ...] = ()
    why: str = ""
    lora: LoraReport | None = None
    low_rank: LowRankReport | None = None
    baseline: Profile | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, baseline=None))
        del data["baseline"]
        data["peak_holders"] = [asdict(h) for h in self.peak_holders]
        data["checkpoint"] = list(self.checkpoint)
        data["notes"] = list(self.notes)
        return data


@dataclass
class _Applied:
    ctx: Context
    checkpoint: tuple[str, ...] = ()
    pruning: PruneReport | None = None
    optimizer: str = ""
    sharding: ShardedStates | None = None
    offload: OffloadReport | None = None
    lora: LoraReport | None = None
    low_rank: LowRankReport | None = None


def estimate(profile: Profile, scenario: Scenario | None = None, **changes: Any) -> Estimate:
    """Predict ``profile``'s memory under ``scenario`` (or keyword changes: ``batch_size=16`` …).

    >>> estimate(profile, Scenario(batch_size=32, precision=Precision.BF16))   # doctest: +SKIP
    """
    if scenario is None:
        scenario = Scenario(**changes)
    elif changes:
        raise TypeError("pass either a Scenario or keyword changes, not both")
    return estimate_blocks(profile, scenario)[0]


def estimate_blocks(profile: Profile, scenario: Scenario) -> tuple[Estimate, Blocks]:
    """The estimate and the block set it replayed (for the planner's allocator model)."""
    applied = _final_blocks(profile, scenario)
    blocks = applied.ctx.blocks
    return _summarise(profile, scenario, applied, replay(blocks)), blocks


def peak_bytes(profile: Profile, scenario: Scenario) -> int:
    """Only the estimated peak (no breakdown or reasons): what a search needs, faster."""
    return replay(_final_blocks(profile, scenario).ctx.blocks).peak_bytes


def _final_blocks(profile: Profile, scenario: Scenario) -> _Applied:
    if profile.program is None:
        raise UsageError(
            "this profile has no allocation program (saved by an older memadvise); profile the model again"
        )
    applied = _apply(profile, scenario)
    if scenario.auto_checkpoint:
        names = _choose_checkpoint(profile, scenario, applied.ctx)
        applied = _apply(profile, scenario, checkpoint=names)
    if profile.device.startswith("cuda"):
        blocks = applied.ctx.blocks
        blocks.size = np.ceil(blocks.size / CUDA_BLOCK) * CUDA_BLOCK
    return applied


def _apply(profile: Profile, scenario: Scenario, checkpoint: tuple[str, ...] | None = None) -> _Applied:
    program = profile.program
    assert program is not None
    ctx = Context(profile=profile, program=program, blocks=Blocks.of(program))
    layer_types = {layer.name: layer.type for layer in profile.layers}
    applied = _Applied(ctx=ctx, optimizer=profile.optimizer)
    if scenario.batch_size is not None:
        scale_batch(ctx, scenario.batch_size)
    nf4 = scenario.precision is Precision.NF4
    traced_blocks = len(ctx.blocks)  # later rows: a lever's, such as autocast's weight copies
    if scenario.precision is not None:
        matmul = {name for name, kind in layer_types.items() if is_matmul_layer(kind)}
        transposed = {name for name, kind in layer_types.items() if kind == "Conv1D"}
        change_precision(ctx, Precision.BF16 if nf4 else scenario.precision, matmul, transposed, layer_types)
        if nf4:
            quantize_nf4(ctx, scenario, layer_types)
    if scenario.prune is not None:
        applied.pruning = prune(ctx, scenario.prune, layer_types)
    trainable = [p for p in program.parameters if p.trainable]
    casts = (np.arange(len(ctx.blocks)) >= traced_blocks) | traced_weight_casts(ctx, layer_types)
    if scenario.frozen:
        trainable = freeze(ctx, scenario.frozen, layer_types, casts)
    if scenario.lora is not None or scenario.low_rank is not None:
        trainable, applied.lora, applied.low_rank = adapt(ctx, scenario, layer_types, trainable, casts)
    resized = applied.pruning is not None and bool(applied.pruning.new_shapes)
    resized |= scenario.lora is not None or scenario.low_rank is not None
    if scenario.optimizer is not None or scenario.frozen or resized:
        if profile.mode != Mode.TRAIN.value:
            if scenario.optimizer is not None and scenario.optimizer.value != profile.optimizer:
                raise UsageError(
                    f"--optimizer applies to training profiles; this profile's mode is {profile.mode!r}"
                )
        else:
            name = scenario.optimizer or OptimizerName(profile.optimizer)
            _check_optimizer(profile, name)
            change_optimizer(ctx, name, _resized(trainable, applied.pruning))
            applied.optimizer = name.value
    accumulate(ctx, scenario.grad_accum)
    if (scenario.gpus > 1 or scenario.strategy is not None) and profile.fsdp_ranks:
        raise UsageError(
            f"this profile traced one rank of FSDP over {profile.fsdp_ranks} ranks already; "
            "estimate it without --gpus/--strategy"
        )
    if scenario.gpus > 1 or scenario.strategy is not None:
        blocks = ctx.blocks
        state = blocks.is_category(Category.OPTIMIZER_STATE) & np.isinf(blocks.free)
        totals = (
            _total(blocks, blocks.size, Category.PARAMETERS),
            _grads(ctx, blocks.size),
            int(blocks.size[state].sum()),
        )
        applied.sharding = shard(ctx, scenario.gpus, scenario.strategy or Strategy.DDP, totals)
    if scenario.offload is not None:
        applied.offload = offload(ctx, scenario.offload)
    names = (
        checkpoint if checkpoint is not None else (() if scenario.auto_checkpoint else scenario.checkpoint)
    )
    if names:
        check_modules(ctx, names)
        apply_checkpoint(ctx, names)
        applied.checkpoint = outermost(names)
    return applied


def _resized(trainable: list[Any], pruning: PruneReport | None) -> list[Any]:
    if pruning is None:
        return trainable
    return [replace(p, shape=pruning.shape_of(p)) for p in trainable]


def _check_optimizer(profile: Profile, name: OptimizerName) -> None:
    if name is OptimizerName.NONE:
        raise UsageError("optimizer 'none' leaves nothing to estimate; profile in inference mode instead")


def _choose_checkpoint(profile: Profile, scenario: Scenario, base: Context) -> tuple[str, ...]:
    """Greedy: most activation bytes per recompute FLOP first; the prefix with the lowest peak wins,
    and among prefixes within 1% of its saving, the one that recomputes least."""
    if profile.mode != Mode.TRAIN.value:
        raise UsageError("activation checkpointing applies to training profiles")
    found = sorted(candidates(base), key=lambda c: -c[1] / max(c[2], 1.0))
    every = [c[0] for c in found]
    # Containers of two or more candidates (a stack of blocks) add only a larger recompute spike.
    found = [c for c in found if sum(n.startswith(c[0] + ".") for n in every) < 2]
    chosen: list[tuple[str, float]] = []
    results: list[tuple[int, float, tuple[str, ...]]] = [(replay(base.blocks).peak_bytes, 0.0, ())]
    for name, _saved, cost in found[:MAX_CANDIDATES]:
        if any(name.startswith(c + ".") or c.startswith(name + ".") for c, _ in chosen):
            continue
        chosen.append((name, cost))
        names = tuple(c for c, _ in chosen)
        trial = copy.copy(base)
        trial.blocks = copy.deepcopy(base.blocks)
        apply_checkpoint(trial, names)
        results.append((replay(trial.blocks).peak_bytes, sum(c for _, c in chosen), names))
    best = min(r[0] for r in results)
    if best >= results[0][0]:
        return ()  # nothing lowers the peak (it is not where activations live)
    # Within 1% of the largest saving, the set that recomputes least (finer sets first on ties).
    near = [r for r in results if r[0] <= best + 0.01 * (results[0][0] - best)]
    return min(near, key=lambda r: (r[1], -len(r[2])))[2]


def _summarise(profile: Profile, scenario: Scenario, applied: _Applied, result: Replay) -> Estimate:
    ctx = applied.ctx
    blocks = ctx.blocks
    program = ctx.program
    sizes = np.rint(blocks.size)
    at_peak = {c: int(sizes[result.alive & (blocks.category == k)].sum()) for k, c in enumerate(CATEGORIES)}
    holders: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(result.alive):
        key = (CATEGORIES[blocks.category[i]], program.modules[blocks.module[i]])
        holders[key] = holders.get(key, 0) + int(sizes[i])
    top = sorted(holders.items(), key=lambda kv: -kv[1])[:TOP_HOLDERS]
    phase, step = ctx.phase_at(result.time)
    at = np.flatnonzero(blocks.alloc == result.time)
    peak_module = peak_op = ""
    if len(at):
        largest = at[np.argmax(sizes[at])]
        peak_module = program.modules[blocks.module[largest]]
        # A lever's new blocks have op 0: the first name, "" (blocks from before the trace come first).
        if 0 <= blocks.op[largest] < len(program.ops):
            peak_op = program.ops[blocks.op[largest]]
    batch = scenario.batch_size or profile.batch_size
    flops = recompute_flops(ctx, applied.checkpoint) if applied.checkpoint else None
    fraction = (flops / program.forward_flops) if flops is not None and program.forward_flops else None
    base = profile.peak_bytes
    estimate = Estimate(
        model=profile.model,
        scenario=scenario.to_dict(),
        scenario_text=scenario.describe(),
        mode=profile.mode,
        device=profile.device,
        batch_size=batch,
        effective_batch_size=batch * scenario.grad_accum * max(scenario.gpus, profile.fsdp_ranks or 1),
        optimizer=applied.optimizer or profile.optimizer,
        peak_bytes=result.peak_bytes,
        peak_phase=phase,
        peak_step=step,
        peak_op=peak_op,
        peak_module=peak_module,
        peak_breakdown=at_peak,
        param_bytes=_total(blocks, sizes, Category.PARAMETERS),
        buffer_bytes=_total(blocks, sizes, Category.BUFFERS),
        input_bytes=_total(blocks, sizes, Category.INPUTS),
        grad_bytes=_grads(ctx, sizes),
        optimizer_state_bytes=int(
            sizes[blocks.is_category(Category.OPTIMIZER_STATE) & np.isinf(blocks.free)].sum()
        ),
        activation_bytes=_activations(ctx, sizes),
        baseline_peak_bytes=base,
        change_bytes=result.peak_bytes - base,
        change_ratio=(result.peak_bytes / base) if base else 1.0,
        peak_holders=tuple(Holder(category=c, module=m, bytes=n) for (c, m), n in top),
        checkpoint=applied.checkpoint,
        recompute_flops=flops,
        recompute_fraction=fraction,
        pruning=applied.pruning,
        sharding=applied.sharding,
        offload=applied.offload,
        lora=applied.lora,
        low_rank=applied.low_rank,
        notes=tuple(ctx.notes),
        baseline=profile,
    )
    return replace(estimate, why=_why(estimate))


def _total(blocks: Blocks, sizes: np.ndarray, category: Category) -> int:
    return int(sizes[blocks.is_category(category) & (blocks.alloc < 0)].sum())


def _grads(ctx: Context, sizes: np.ndarray) -> int:
    """Gradient bytes of the last step (accumulated ones counted once)."""
    blocks = ctx.blocks
    steps = ctx.steps()
    span = ctx.phase_span(Phase.FORWARD, steps[-1]) if steps else None
    grads = blocks.is_category(Category.GRADIENTS)
    if span is not None:
        grads &= blocks.alloc >= span[0] - 0.5
        held = grads & (blocks.alloc < span[0])
        if held.any():
            return int(sizes[held].sum())
    return int(sizes[grads].sum())


def _activations(ctx: Context, sizes: np.ndarray) -> int:
    """Saved activations alive when the last step's forward pass ends."""
    steps = ctx.steps()
    span = ctx.phase_span(Phase.FORWARD, steps[-1]) if steps else None
    if span is None:
        return 0
    t = span[1] - 0.5
    blocks = ctx.blocks
    alive = (blocks.alloc <= t) & (blocks.free > t) & blocks.is_category(Category.ACTIVATIONS)
    return int(sizes[alive].sum())


def _why(e: Estimate) -> str:
    """One sentence: which category dominates the peak, and which modules hold most of it."""
    if not e.peak_bytes:
        return ""
    category, nbytes = max(e.peak_breakdown.items(), key=lambda kv: kv[1])
    mods = [h.module for h in e.peak_holders if h.category == category][:3]
    share = nbytes / e.peak_bytes
    types = {layer.name: layer.type for layer in e.baseline.layers} if e.baseline is not None else {}
    where = f" (mostly {', '.join(_named(m, types) for m in mods)})" if mods else ""
    what = category.replace("_", " ")
    verb = "is" if category == "optimizer_state" else "are"
    return f"peak in {e.peak_phase} of step {e.peak_step + 1}: {what} {verb} {share:.0%} of it{where}"


def _named(module: str, types: dict[str, str]) -> str:
    """A module as a sentence names it: ``(model)`` for the root, and with its type when its own name is a
    number (``0 (Linear)``: children of ``nn.Sequential`` or ``nn.ModuleList``)."""
    label = module_label(module)
    if module.rpartition(".")[2].isdigit() and module in types:
        return f"{label} ({types[module]})"
    return label

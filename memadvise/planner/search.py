"""The planner's search: configurations that fit a budget, ranked for a goal.

For every combination of the free levers — precision, checkpointing (none or memadvise's ``auto`` set),
optimizer (the profiled one, and 8-bit AdamW for Adam-style training on a GPU) — the largest
micro-batch that fits is found by bisection on the analyzer's estimate (peaks grow with the batch).
A minimum effective batch is reached with gradient accumulation when the micro-batch cannot reach it.
Pinned levers (``--precision fp32``, ``--checkpoint none``, ``--batch-size 8`` …) are not searched.
The best options are then replayed through the caching-allocator model, and must fit with their
reserved memory (unless the budget is exact tensor maths, ``--reserve 0``).

Pure 16-bit training (no fp32 master weights) is ranked after every fitting option that keeps them.
A precision the profile was not traced in is estimated by rules (see :mod:`memadvise.analyzer.precision`);
such options keep a 3% safety margin below the budget.
Goals: ``max-batch`` (largest effective batch, then the least recompute), ``min-memory`` (lowest peak
at the asked or profiled batch), ``fastest`` (a throughput proxy: micro-batch, minus recompute — a
forward pass is about a third of a step — with 16-bit matrix products counted twice as fast on GPUs
with bf16/fp16 tensor cores).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from enum import Enum

from memadvise.analyzer import AUTO, Estimate, Precision, Scenario, estimate
from memadvise.analyzer.estimate import estimate_blocks, peak_bytes
from memadvise.errors import MemadviseError, UsageError
from memadvise.model.profile import Mode, OptimizerName, Profile
from memadvise.model.scenario import Lora, parse_strategy
from memadvise.planner.budget import Budget, budget_for
from memadvise.planner.gpus import load_catalog
from memadvise.planner.hardware import RamAdvice, ram_for
from memadvise.planner.reserved import Reservation, allocator_settings, reserved

MAX_BATCH = 1 << 20
FINALISTS = 6
APPROXIMATION_MARGIN = 0.03
EXACT_PRECISIONS = {Precision.INT8, Precision.INT4}  # weight bytes are exact


class Goal(str, Enum):
    MAX_BATCH = "max-batch"
    MIN_MEMORY = "min-memory"
    FASTEST = "fastest"


@dataclass(frozen=True)
class Option:
    """One configuration that fits (or the closest that does not), with its predicted memory."""

    batch_size: int
    grad_accum: int
    effective_batch_size: int
    precision: str
    checkpoint: tuple[str, ...]
    optimizer: str
    predicted_peak_bytes: int
    reserved_bytes: int
    budget_bytes: int
    headroom_bytes: int
    recompute_fraction: float
    fits: bool
    caveats: tuple[str, ...] = ()
    flags: str = ""
    code: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The options for one model on one budget, best first; ``ram`` is the system RAM to pair with the
    GPUs (all ``gpus`` of them together)."""

    budget: Budget
    goal: str
    mode: str
    gpus: int
    strategy: str
    options: tuple[Option, ...] = ()
    suggestions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    scenarios_evaluated: int = 0
    model: str = ""
    ram: RamAdvice | None = None

    @property
    def recommendation(self) -> Option | None:
        return self.options[0] if self.options and self.options[0].fits else None


@dataclass(frozen=True)
class Pins:
    """Levers the user fixed; ``None``/empty means the search chooses."""

    batch_size: int | None = None
    min_batch: int | None = None
    precision: Precision | None = None
    checkpoint: tuple[str, ...] | None = None
    optimizer: OptimizerName | None = None
    grad_accum: int | None = None
    gpus: int = 1
    strategy: str | None = None
    lora: Lora | None = None  # LoRA adapters on a frozen base, in every option


def fsdp_trace_ranks(pins: Pins, fake_cpu: bool) -> int | None:
    """How many ranks of the real FSDP2 to trace one rank of, instead of the ZeRO-3 formula: with several
    GPUs under ``fsdp`` or ``zero3`` and a fake trace on CPU kernels (``--fake --target-device cpu``),
    ``pins.gpus``; otherwise ``None`` (the formula applies to a plain trace)."""
    if pins.gpus > 1 and (pins.strategy or "").lower() in ("fsdp", "zero3") and fake_cpu:
        return pins.gpus
    return None


@dataclass
class _Counter:
    n: int = 0


@dataclass
class _Search:
    profile: Profile
    budget: Budget
    pins: Pins
    counter: _Counter = field(default_factory=_Counter)

    def peak(self, scenario: Scenario) -> int:
        self.counter.n += 1
        return peak_bytes(self.profile, scenario)

    def limit(self, scenario: Scenario) -> float:
        """The budget a scenario's estimate must stay under: precision changes estimated from another
        precision's trace (rules, not a trace) keep a safety margin."""
        approximate = scenario.precision is not None and scenario.precision not in EXACT_PRECISIONS
        return self.budget.usable_bytes * (1 - APPROXIMATION_MARGIN if approximate else 1)

    def fits(self, scenario: Scenario) -> bool:
        return self.peak(scenario) <= self.limit(scenario)

    def largest_batch(self, base: Scenario, low: int = 1) -> int:
        """Largest micro-batch (>= low) that fits, or 0 when not even ``low`` does."""
        if not self.fits(replace(base, batch_size=low)):
            return 0
        high = low
        while high < MAX_BATCH and self.fits(replace(base, batch_size=high * 2)):
            high *= 2
        lo, hi = high, min(high * 2, MAX_BATCH + 1)  # lo fits, hi does not (or is past the cap)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.fits(replace(base, batch_size=mid)):
                lo = mid
            else:
                hi = mid
        return lo


def _precisions(profile: Profile, budget: Budget, pins: Pins) -> list[Precision]:
    if pins.precision is not None:
        return [pins.precision]
    if profile.precision != "fp32":
        return [Precision(profile.precision)]
    if profile.mode == Mode.INFERENCE.value:
        return [
            Precision.FP32,
            Precision.BF16 if budget.bf16 else Precision.FP16,
            Precision.INT8,
            Precision.INT4,
        ]
    half = Precision.BF16_MIXED if budget.bf16 else Precision.FP16_MIXED
    options = [Precision.FP32, half]
    if budget.bf16:
        options.append(Precision.BF16)
    return options


def _optimizers(profile: Profile, budget: Budget, pins: Pins) -> list[OptimizerName | None]:
    if profile.mode != Mode.TRAIN.value:
        return [None]
    if pins.optimizer is not None:
        return [pins.optimizer]
    found: list[OptimizerName | None] = [None]
    on_gpu = profile.device.startswith("cuda") or budget.gpu is not None
    if profile.optimizer in (OptimizerName.ADAM.value, OptimizerName.ADAMW.value) and on_gpu:
        found.append(OptimizerName.ADAMW_8BIT)
    return found


def _checkpoints(profile: Profile, pins: Pins) -> list[tuple[str, ...]]:
    if profile.mode != Mode.TRAIN.value:
        return [()]
    if pins.checkpoint is not None:
        return [pins.checkpoint]
    return [(), (AUTO,)]


def search(
    profile: Profile, budget: Budget, pins: Pins, goal: Goal = Goal.MAX_BATCH, *, suggest: bool = True
) -> Plan:
    """Every free-lever combination with its best batch, ranked for ``goal``; the top ones checked
    against the caching-allocator model."""
    ram = ram_for(budget.total_bytes * pins.gpus, profile)
    strategy = parse_strategy(pins.strategy) if pins.strategy else None
    if pins.gpus > 1 and strategy is None:
        strategy = parse_strategy("ddp")
    if profile.fsdp_ranks:
        # The trace is already one rank of FSDP: plan that rank, nothing more to shard.
        if pins.gpus not in (1, profile.fsdp_ranks):
            raise UsageError(
                f"this profile traced FSDP over {profile.fsdp_ranks} ranks; plan it with --gpus 1"
            )
        pins = replace(pins, gpus=1, strategy=None)
        strategy = None
    runner = _Search(profile, budget, pins)
    options: list[Option] = []
    auto = _auto_set(runner) if (AUTO,) in _checkpoints(profile, pins) else ()
    for precision, checkpoint, optimizer in itertools.product(
        _precisions(profile, budget, pins), _checkpoints(profile, pins), _optimizers(profile, budget, pins)
    ):
        base = Scenario(
            batch_size=pins.batch_size or profile.batch_size,
            precision=None if precision.value == profile.precision else precision,
            optimizer=None if optimizer is not None and optimizer.value == profile.optimizer else optimizer,
            grad_accum=pins.grad_accum or 1,
            gpus=pins.gpus,
            strategy=strategy,
            lora=pins.lora,
        )
        if checkpoint == (AUTO,):
            if not auto:
                continue  # nothing worth checkpointing: the same as no checkpointing
            checkpoint = auto
        try:
            option = _best(runner, base, checkpoint, goal)
        except UsageError:
            continue  # a lever this profile cannot take (e.g. no modules worth checkpointing)
        if option is not None:
            options.append(option)
    ranked = _rank(options, goal, budget)
    checked = _rank(_check_reserved(runner, ranked[:FINALISTS], budget), goal, budget)
    fitting = [o for o in checked if o.fits]
    others = [o for o in checked if not o.fits]
    suggestions: tuple[str, ...] = ()
    if not fitting and suggest:
        suggestions = _what_would_fit(profile, budget, pins, others)
    notes = []
    conf = allocator_settings().describe()
    if conf and not budget.exact:
        notes.append(f"reserved memory follows PYTORCH_CUDA_ALLOC_CONF={conf} from the environment")
    if not profile.device.startswith("cuda") and not budget.exact:
        notes.append(
            f"the profile was traced on {profile.device}: its attention kernels, autocast and optimizer "
            "temporaries are the CPU's, not the GPU's (on an H200, estimates from CPU profiles missed by "
            "up to 98% for SDPA attention) — profile with --fake --gpu NAME, or on the GPU, for this plan"
        )
    return Plan(
        budget=budget,
        goal=goal.value,
        mode=profile.mode,
        gpus=profile.fsdp_ranks or pins.gpus,
        strategy=("fsdp (traced)" if profile.fsdp_ranks else strategy.value if strategy else "none"),
        options=tuple(fitting + others),
        suggestions=suggestions,
        notes=tuple(notes),
        scenarios_evaluated=runner.counter.n,
        model=profile.model,
        ram=ram,
    )


def _best(runner: _Search, base: Scenario, checkpoint: tuple[str, ...], goal: Goal) -> Option | None:
    """This combination at the batch the goal asks for (and the accumulation a minimum batch needs)."""
    pins = runner.pins
    base = replace(base, checkpoint=checkpoint)
    per_step = max(1, pins.gpus)
    if pins.batch_size is not None:
        accum = pins.grad_accum or 1
        if pins.min_batch and pins.grad_accum is None:
            accum = math.ceil(pins.min_batch / (pins.batch_size * per_step))
        return _option(runner, replace(base, batch_size=pins.batch_size, grad_accum=accum))
    largest = runner.largest_batch(replace(base, grad_accum=pins.grad_accum or 1))
    if largest == 0:
        return _option(runner, replace(base, batch_size=1, grad_accum=pins.grad_accum or 1))
    wanted = pins.min_batch
    if wanted is None:
        batch = largest if goal is not Goal.MIN_MEMORY else min(largest, runner.profile.batch_size)
        return _option(runner, replace(base, batch_size=batch, grad_accum=pins.grad_accum or 1))
    if pins.grad_accum is not None:
        return _option(runner, replace(base, batch_size=largest, grad_accum=pins.grad_accum))
    if largest * per_step >= wanted:
        batch = largest if goal is not Goal.MIN_MEMORY else math.ceil(wanted / per_step)
        return _option(runner, replace(base, batch_size=batch))
    accum = math.ceil(wanted / (largest * per_step))
    batch = largest
    while batch > 1 and not runner.fits(replace(base, batch_size=batch, grad_accum=accum)):
        batch -= 1
        accum = math.ceil(wanted / (batch * per_step))
    return _option(runner, replace(base, batch_size=batch, grad_accum=accum))


_AUTO_SETS: dict[tuple[int, int], tuple[Profile, tuple[str, ...]]] = {}


def _auto_set(runner: _Search) -> tuple[str, ...]:
    """memadvise's checkpoint choice at the profiled batch and precision, used for every combination
    (which modules pay off depends on where activations live, not much on their width); it does not
    depend on the budget, so it is kept per profile for plans of several GPUs."""
    key = (id(runner.profile), runner.pins.gpus)
    cached = _AUTO_SETS.get(key)
    if cached is not None and cached[0] is runner.profile:
        return cached[1]
    probe = estimate(runner.profile, Scenario(checkpoint=(AUTO,), gpus=runner.pins.gpus))
    runner.counter.n += 1
    if len(_AUTO_SETS) >= 8:
        _AUTO_SETS.pop(next(iter(_AUTO_SETS)))
    _AUTO_SETS[key] = (runner.profile, probe.checkpoint)
    return probe.checkpoint


def _option(runner: _Search, scenario: Scenario, result: Estimate | None = None) -> Option:
    """The option of ``scenario`` (from its estimate ``result`` when already made)."""
    if result is None:
        result = estimate(runner.profile, scenario)
        runner.counter.n += 1
    budget = runner.budget
    return Option(
        batch_size=result.batch_size,
        grad_accum=scenario.grad_accum,
        effective_batch_size=result.effective_batch_size,
        precision=(scenario.precision.value if scenario.precision else runner.profile.precision),
        checkpoint=result.checkpoint,
        optimizer=result.optimizer,
        predicted_peak_bytes=result.peak_bytes,
        reserved_bytes=result.peak_bytes,
        budget_bytes=budget.usable_bytes,
        headroom_bytes=budget.usable_bytes - result.peak_bytes,
        recompute_fraction=result.recompute_fraction or 0.0,
        fits=result.peak_bytes <= runner.limit(scenario),
        caveats=_caveats(result, scenario),
        flags=_flags(result, scenario),
        code=_code(result, scenario),
    )


PURE_16BIT = {"bf16", "fp16"}
PRECISION_RANK = {"bf16-mixed": 0, "fp32": 1, "fp16-mixed": 2, "bf16": 3, "fp16": 4, "int8": 5, "int4": 6}


def _speed(option: Option, budget: Budget) -> float:
    fast = 2.0 if option.precision != "fp32" and (budget.gpu is None or budget.gpu.bf16) else 1.0
    return option.batch_size * fast / (1 + option.recompute_fraction / 3)


def _rank(options: list[Option], goal: Goal, budget: Budget) -> list[Option]:
    def tie(o: Option) -> tuple[float, int, int]:
        return (o.recompute_fraction, PRECISION_RANK.get(o.precision, 9), o.optimizer != "adamw-8bit")

    fitting = [o for o in options if o.fits]
    closest = sorted((o for o in options if not o.fits), key=lambda o: (o.predicted_peak_bytes, *tie(o)))

    def key(o: Option) -> tuple[float, ...]:
        # Pure 16-bit training (no fp32 master weights) only leads when nothing else fits.
        pure = float(o.precision in PURE_16BIT)
        if goal is Goal.MIN_MEMORY:
            return (pure, o.predicted_peak_bytes, *tie(o))
        if goal is Goal.FASTEST:
            return (pure, -_speed(o, budget), *tie(o))
        return (pure, -o.effective_batch_size, -o.batch_size, *tie(o))

    return sorted(fitting, key=key) + closest


def _check_reserved(runner: _Search, options: list[Option], budget: Budget) -> list[Option]:
    """Replay the finalists through the caching-allocator model; shrink the batch until reserved fits."""
    if budget.exact:
        return options
    checked = []
    for option in options:
        if not option.fits:
            checked.append(option)
            continue
        scenario, result, taken = _reserved_fit(runner, option)
        fitted = _option(runner, scenario, result)
        checked.append(
            replace(
                fitted,
                reserved_bytes=taken.reserved_bytes,
                headroom_bytes=budget.usable_bytes - taken.reserved_bytes,
                fits=taken.reserved_bytes <= runner.limit(scenario),
                caveats=fitted.caveats + _near_limit(taken.reserved_bytes, taken.fragmentation, budget),
            )
        )
    return checked


def _reserved_fit(runner: _Search, option: Option) -> tuple[Scenario, Estimate, Reservation]:
    """The option's scenario at the largest batch (at most its own) whose reserved memory fits,
    found by bisection; batch 1 (or a pinned batch) when none does. With its estimate."""

    def check(batch: int) -> tuple[Scenario, Estimate, Reservation]:
        scenario = _scenario_of(option, runner.pins, batch)
        runner.counter.n += 1
        result, blocks = estimate_blocks(runner.profile, scenario)
        return scenario, result, reserved(blocks)

    best = check(option.batch_size)
    if best[2].reserved_bytes <= runner.limit(best[0]) or runner.pins.batch_size:
        return best
    lo, hi = 0, option.batch_size  # hi does not fit; lo fits (0: none known)
    found = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = check(mid)
        if trial[2].reserved_bytes <= runner.limit(trial[0]):
            lo, found = mid, trial
        else:
            hi = mid
    return found if found is not None else check(1)


def _scenario_of(option: Option, pins: Pins, batch: int) -> Scenario:
    strategy = parse_strategy(pins.strategy) if pins.strategy else None
    return Scenario(
        batch_size=batch,
        precision=Precision(option.precision),
        checkpoint=option.checkpoint,
        optimizer=OptimizerName(option.optimizer) if option.optimizer != "none" else None,
        grad_accum=option.grad_accum,
        gpus=pins.gpus,
        strategy=strategy if strategy or pins.gpus == 1 else parse_strategy("ddp"),
        lora=pins.lora,
    )


def _near_limit(reserved_bytes: int, fragmentation: float, budget: Budget) -> tuple[str, ...]:
    if reserved_bytes <= 0.9 * budget.usable_bytes:
        return ()
    advice = "within 10% of the budget: set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
    if fragmentation > 0.1:
        advice += f" (the allocator model predicts {fragmentation:.0%} of reserved memory unused)"
    return (advice,)


def _caveats(result: Estimate, scenario: Scenario) -> tuple[str, ...]:
    found = []
    if scenario.precision is Precision.BF16:
        found.append("pure bf16 keeps no fp32 master weights: small updates can be lost in long runs")
    if scenario.precision in (Precision.FP16_MIXED, Precision.FP16):
        found.append("fp16 needs loss scaling (torch.amp.GradScaler)")
    if scenario.optimizer is OptimizerName.ADAMW_8BIT:
        found.append("needs bitsandbytes on a CUDA GPU")
    if result.checkpoint and result.recompute_fraction:
        found.append(f"recomputes {result.recompute_fraction:.0%} of the forward pass")
    if scenario.grad_accum > 1:
        found.append(f"{scenario.grad_accum} micro-batches per optimizer step")
    found.extend(n for n in result.notes if "overflow" in n or "underflow" in n)
    return tuple(found)


def _flags(result: Estimate, scenario: Scenario) -> str:
    parts = [f"--batch-size {result.batch_size}"]
    if scenario.precision is not None:
        parts.append(f"--precision {scenario.precision.value}")
    parts.append(f"--checkpoint {','.join(result.checkpoint) if result.checkpoint else 'none'}")
    parts.append(f"--optimizer {result.optimizer}")
    if scenario.grad_accum > 1:
        parts.append(f"--grad-accum {scenario.grad_accum}")
    if scenario.lora is not None:
        parts.append(f"--lora {scenario.lora.rank} --lora-targets {','.join(scenario.lora.targets)}")
    return " ".join(parts)


def _code(result: Estimate, scenario: Scenario) -> tuple[str, ...]:
    lines = []
    if scenario.lora is not None:
        targets = scenario.lora.targets
        names = repr(targets[0]) if targets == ("all-linear",) else repr(list(targets))
        config = f"peft.LoraConfig(r={scenario.lora.rank}, target_modules={names})"
        lines.append(f"model = peft.get_peft_model(model, {config})")
    if scenario.precision in (Precision.BF16_MIXED, Precision.FP16_MIXED):
        dtype = "bfloat16" if scenario.precision is Precision.BF16_MIXED else "float16"
        lines.append(f'with torch.autocast("cuda", dtype=torch.{dtype}): loss = loss_fn(model(x), y)')
    if scenario.precision in (Precision.BF16, Precision.FP16):
        lines.append(f"model.to(torch.{'bfloat16' if scenario.precision is Precision.BF16 else 'float16'})")
    if result.checkpoint:
        lines.append(
            "wrap the forward of "
            + ", ".join(result.checkpoint)
            + " in torch.utils.checkpoint.checkpoint(..., use_reentrant=False)"
        )
    if scenario.optimizer is OptimizerName.ADAMW_8BIT:
        lines.append("optimizer = bitsandbytes.optim.AdamW8bit(model.parameters(), lr=...)")
    if scenario.grad_accum > 1:
        lines.append(f"call optimizer.step() every {scenario.grad_accum} backward passes")
    return tuple(lines)


def _what_would_fit(profile: Profile, budget: Budget, pins: Pins, closest: list[Option]) -> tuple[str, ...]:
    """When nothing fits: the smallest catalog GPU that would, and how many GPUs with ZeRO-3 would."""
    lines = []
    smallest = Pins(
        batch_size=pins.batch_size or 1,
        precision=pins.precision,
        checkpoint=pins.checkpoint,
        optimizer=pins.optimizer,
        gpus=pins.gpus,
        strategy=pins.strategy,
        lora=pins.lora,
    )
    need = min((o.predicted_peak_bytes for o in closest), default=0)
    for gpu in sorted(load_catalog(), key=lambda g: g.memory_bytes):
        candidate = budget_for(gpu, budget.reserve_bytes if budget.exact else None)
        if candidate.usable_bytes < need:
            continue
        plan = search(profile, candidate, smallest, Goal.MIN_MEMORY, suggest=False)
        if plan.recommendation is not None:
            lines.append(f"smallest catalog GPU that fits: {gpu.name} ({plan.recommendation.flags})")
            break
    if profile.mode == Mode.TRAIN.value and pins.gpus == 1:
        for n in (2, 4, 8, 16, 32, 64):
            sharded = replace(smallest, gpus=n, strategy="zero3")
            try:
                plan = search(profile, budget, sharded, Goal.MIN_MEMORY, suggest=False)
            except MemadviseError:
                break
            if plan.recommendation is not None:
                lines.append(
                    f"or {n} of these GPUs with ZeRO-3/FSDP ({plan.recommendation.flags} --gpus {n})"
                )
                break
    if not lines:
        lines.append("nothing in the catalog fits this model at batch 1 on one GPU")
    return tuple(lines)

"""The planner's search: configurations that fit a budget, ranked for a goal.

For every combination of the free levers — precision, checkpointing (none or memadvise's ``auto`` set),
optimizer (the profiled one, and 8-bit AdamW for Adam-style training on a GPU) — the largest
micro-batch that fits is found on the analyzer's estimate (peaks grow with the batch, almost in
proportion: see :meth:`_Search.largest_batch`), up to a cap (``BATCH_CAP``) past which memory no longer
limits the batch. A minimum effective batch is reached with gradient accumulation when the
micro-batch cannot reach it. Pinned levers (``--precision fp32``, ``--checkpoint none``,
``--batch-size 8`` …) are not searched, but checked as ``estimate`` checks them. The best options are
then replayed through the caching-allocator model with the budget as its capacity (it releases its
cache and retries there, as PyTorch does), and must fit in that replay (unless the budget is exact
tensor maths, ``--reserve 0``); ``--list-gpus`` replays only as many as it takes to know each card's
best. Estimates and replays are shared between the plans of one profile.

Ties go to what the user runs today: no recompute, the profiled precision, the profiled optimizer.
Pure 16-bit training (no fp32 master weights) is ranked after every fitting option that keeps them.
A precision the profile was not traced in is estimated by rules (see :mod:`memadvise.analyzer.precision`);
such options keep a 3% safety margin below the budget.
Goals: ``max-batch`` (largest effective batch, then the least recompute), ``min-memory`` (lowest peak
at the asked or profiled batch), ``fastest`` (a throughput proxy: micro-batch, minus recompute — a
forward pass is about a third of a step — with 16-bit matrix products counted twice as fast on GPUs
with bf16/fp16 tensor cores); ``cheapest`` is for :func:`memadvise.planner.ranking.rank_gpus` (each
card's plan is a max-batch plan).
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
from memadvise.model.scenario import Lora, Offload, Strategy, parse_strategy
from memadvise.planner.budget import Budget, budget_for
from memadvise.planner.gpus import load_catalog
from memadvise.planner.hardware import RamAdvice, ram_for
from memadvise.planner.reserved import Reservation, allocator_settings, reserved

BATCH_CAP = 4096  # the search stops here (or at 64 x the profiled batch, if larger): memory no
BATCH_CAP_FACTOR = 64  # longer limits the batch, and an absurd figure would only look precise
FINALISTS = 6
RESERVED_GRID = 64  # the reserved check steps down by about 1/64 of the batch (a power of two)
APPROXIMATION_MARGIN = 0.03
EXACT_PRECISIONS = {Precision.INT8, Precision.INT4}  # weight bytes are exact
# Where an option's reserved figure comes from (``Option.reserved_source``).
REPLAYED = "allocator model"
NOT_REPLAYED = "not replayed"
EXACT_BUDGET = "exact budget (--reserve 0): tensor bytes only"


class Goal(str, Enum):
    MAX_BATCH = "max-batch"
    MIN_MEMORY = "min-memory"
    FASTEST = "fastest"
    CHEAPEST = "cheapest"  # --list-gpus: the cards that fit, by price per hour


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
    reserved_bytes: int | None
    budget_bytes: int
    headroom_bytes: int
    recompute_fraction: float
    fits: bool
    caveats: tuple[str, ...] = ()
    flags: str = ""
    code: tuple[str, ...] = ()
    reserved_source: str = NOT_REPLAYED
    batch_capped: bool = False  # memory allows at least this batch: the search stopped at its cap
    offload_host_bytes: int = 0  # host RAM one GPU's offloaded state takes (--offload)
    offload_pinned_bytes: int = 0  # of which page-locked
    scenario: Scenario | None = field(default=None, compare=False, repr=False)

    @property
    def allocated_bytes(self) -> int:
        """The analyzer's peak of live tensor bytes (``torch.cuda.max_memory_allocated()``)."""
        return self.predicted_peak_bytes


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
    source: str = ""  # what `memadvise estimate` takes before the flags to replay this plan's profile
    setup: str = ""  # a command to run first (profiling a model file), "" for a saved profile

    def estimate_command(self, option: Option) -> str:
        """The shell command that gives ``option``'s figure: ``memadvise estimate`` on the profile (after
        the profiling command, for a model file); PROFILE where the plan does not know its source."""
        command = f"memadvise estimate {self.source or 'PROFILE'} {option.flags}"
        return f"{self.setup} && {command}" if self.setup else command

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
    offload: Offload | None = None
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
        key = (id(self.profile), scenario)
        cached = _PEAKS.get(key)
        if cached is not None and cached[0] is self.profile:
            return cached[1]
        self.counter.n += 1
        value = peak_bytes(self.profile, scenario)
        if len(_PEAKS) >= PEAK_CACHE:
            _PEAKS.pop(next(iter(_PEAKS)))
        _PEAKS[key] = (self.profile, value)
        return value

    def limit(self, scenario: Scenario) -> float:
        """The budget a scenario's estimate must stay under: precision changes estimated from another
        precision's trace (rules, not a trace) keep a safety margin."""
        approximate = scenario.precision is not None and scenario.precision not in EXACT_PRECISIONS
        return self.budget.usable_bytes * (1 - APPROXIMATION_MARGIN if approximate else 1)

    def fits(self, scenario: Scenario) -> bool:
        return self.peak(scenario) <= self.limit(scenario)

    @property
    def cap(self) -> int:
        """The largest batch the search tries (see ``BATCH_CAP``)."""
        return max(BATCH_CAP, BATCH_CAP_FACTOR * self.profile.batch_size)

    def largest_batch(self, base: Scenario, low: int = 1) -> int:
        """Largest micro-batch (>= low, <= :attr:`cap`) that fits, or 0 when not even ``low`` does.

        The peak grows with the batch, almost in proportion (every block is a fixed part plus a part
        per sample), so the search interpolates between a batch that fits and one that does not
        (regula falsi) and checks each guess's neighbour: two or three estimates usually settle it,
        where a bisection takes twenty. The bracket shrinks on every step, so it ends like one."""
        limit = self.limit(replace(base, batch_size=low))
        p_lo = self.peak(replace(base, batch_size=low))
        if p_lo > limit:
            return 0
        cap = self.cap
        p_hi = self.peak(replace(base, batch_size=cap))
        if p_hi <= limit:
            return cap
        lo, hi = low, cap  # lo fits, hi does not
        while hi - lo > 1:
            slope = (p_hi - p_lo) / (hi - lo)
            guess = lo + int((limit - p_lo) / slope) if slope > 0 else (lo + hi) // 2
            guess = min(max(guess, lo + 1), hi - 1)
            p = self.peak(replace(base, batch_size=guess))
            if p <= limit:
                lo, p_lo = guess, p
                if hi - lo > 1:  # the neighbour above decides it, when the guess was right
                    p = self.peak(replace(base, batch_size=lo + 1))
                    if p > limit:
                        return lo
                    lo, p_lo = lo + 1, p
            else:
                hi, p_hi = guess, p
                if hi - lo > 1:
                    p = self.peak(replace(base, batch_size=hi - 1))
                    if p <= limit:
                        return hi - 1
                    hi, p_hi = hi - 1, p
        return lo


PEAK_CACHE = 4096
_PEAKS: dict[tuple[int, Scenario], tuple[Profile, int]] = {}
"""Peaks by scenario, shared by the plans of one profile on several budgets (``--list-gpus``)."""


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
    profile: Profile,
    budget: Budget,
    pins: Pins,
    goal: Goal = Goal.MAX_BATCH,
    *,
    suggest: bool = True,
    finalists: int = FINALISTS,
    source: str = "",
    setup: str = "",
) -> Plan:
    """Every free-lever combination with its best batch, ranked for ``goal``; the top ``finalists``
    checked against the caching-allocator model (0: only as many as it takes to know the best one —
    the others keep ``reserved_bytes=None``). ``source`` is what ``memadvise estimate`` takes before
    an option's flags to replay this profile (its path), for the commands the plan prints."""
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
    _check_pins(runner, strategy)
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
            offload=pins.offload,
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
    if finalists:
        checked = _rank(_check_reserved(runner, ranked[:finalists], budget), goal, budget)
    else:
        checked = _rank(_check_until_best(runner, ranked, goal, budget), goal, budget)
    fitting = [o for o in checked if o.fits]
    others = [o for o in checked if not o.fits]
    if pins.offload is not None:
        held = fitting[0] if fitting else (others[0] if others else None)
        if held is not None:
            n = max(1, pins.gpus)
            ram = ram_for(
                budget.total_bytes * pins.gpus,
                profile,
                held.offload_host_bytes * n,
                held.offload_pinned_bytes * n,
            )
    suggestions: tuple[str, ...] = ()
    if not fitting and suggest:
        suggestions = _what_would_fit(profile, budget, pins, others, source, setup)
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
        source=source,
        setup=setup,
    )


def _check_pins(runner: _Search, strategy: Strategy | None) -> None:
    """The pinned levers as ``estimate`` would check them: a module name that is not in the model, an
    optimizer for an inference profile… are the user's mistakes, not options that do not fit."""
    pins, profile = runner.pins, runner.profile
    if (
        pins.checkpoint in (None, (), (AUTO,))
        and pins.optimizer is None
        and pins.precision is None
        and pins.offload is None
    ):
        return
    if pins.checkpoint and pins.checkpoint != (AUTO,) and profile.mode != Mode.TRAIN.value:
        raise UsageError("activation checkpointing applies to training profiles")
    precision = (
        pins.precision if pins.precision is not None and pins.precision.value != profile.precision else None
    )
    runner.counter.n += 1
    peak_bytes(
        profile,
        Scenario(
            precision=precision,
            checkpoint=() if pins.checkpoint in (None, (AUTO,)) else pins.checkpoint,
            optimizer=pins.optimizer,
            gpus=pins.gpus,
            strategy=strategy,
            offload=pins.offload,
        ),
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
        reserved_bytes=None,
        reserved_source=EXACT_BUDGET if budget.exact else NOT_REPLAYED,
        scenario=scenario,
        budget_bytes=budget.usable_bytes,
        headroom_bytes=budget.usable_bytes - result.peak_bytes,
        recompute_fraction=result.recompute_fraction or 0.0,
        fits=result.peak_bytes <= runner.limit(scenario),
        batch_capped=runner.pins.batch_size is None and result.batch_size >= runner.cap,
        offload_host_bytes=result.offload.host_bytes if result.offload else 0,
        offload_pinned_bytes=result.offload.pinned_bytes if result.offload else 0,
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
    def tie(o: Option) -> tuple[float, int, int, int]:
        # On a tie, what the user runs today wins: no recompute, the profiled precision, the profiled
        # optimizer (a change the plan proposes has to buy something).
        changed = o.scenario
        return (
            o.recompute_fraction,
            int(changed is not None and changed.precision is not None),
            PRECISION_RANK.get(o.precision, 9),
            int(changed is not None and changed.optimizer is not None),
        )

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


def _check_reserved(
    runner: _Search, options: list[Option], budget: Budget, hint: int | None = None
) -> list[Option]:
    """Replay the finalists through the caching-allocator model; shrink the batch until reserved fits
    (``hint``: a batch to try first, see :func:`_reserved_fit`)."""
    if budget.exact:
        return options
    checked = []
    for option in options:
        if not option.fits:
            checked.append(option)
            continue
        scenario, result, taken = _reserved_fit(runner, option, hint)
        fitted = _option(runner, scenario, result)
        checked.append(
            replace(
                fitted,
                reserved_bytes=taken.reserved_bytes,
                reserved_source=REPLAYED,
                headroom_bytes=budget.usable_bytes - taken.reserved_bytes,
                fits=not taken.out_of_memory and fitted.fits,
                caveats=fitted.caveats + _near_limit(taken.reserved_bytes, taken.fragmentation, budget),
            )
        )
    return checked


def _check_until_best(runner: _Search, ranked: list[Option], goal: Goal, budget: Budget) -> list[Option]:
    """Replay options in rank order until the best replayed one still ranks ahead of every option not
    replayed (a replay can only lower an option), and return them all."""
    done: list[Option] = []
    pending = list(ranked)
    while pending and pending[0].fits:
        hint = _rank(done, goal, budget)[0].batch_size if done else None
        done.extend(_check_reserved(runner, [pending.pop(0)], budget, hint))
        leader = _rank(done, goal, budget)[0]
        if leader.fits and (not pending or _rank([pending[0], leader], goal, budget)[0] is leader):
            break
    return done + pending


def _reserved_fit(
    runner: _Search, option: Option, hint: int | None = None
) -> tuple[Scenario, Estimate, Reservation]:
    """The option's scenario at the largest batch (at most its own) whose allocator replay fits, with
    its estimate; batch 1 (or a pinned batch) when none does.

    Whether a replay fits is not monotone in the batch near the limit (the same GPT-2 replay fails at
    2,940 and fits at 2,960, as segments happen to line up), so a search can only find a local edge.
    To make options of about the same memory meet on the same edge, batches are taken on a grid of
    round numbers — multiples of the largest power of two up to 1/64 of the allocated maximum, under
    1.6% apart — and the edge is bisected on that grid between the allocated maximum (which did not
    fit) and a grid point below it that fits (found by halving). ``hint``, a grid point where another
    option's edge was found, is tried first: when it fits and the next grid point does not, it is this
    option's edge too."""
    assert option.scenario is not None
    base = option.scenario

    def check(batch: int) -> tuple[Scenario, Estimate, Reservation]:
        scenario = replace(base, batch_size=batch)
        key = (id(runner.profile), scenario, int(runner.limit(scenario)))
        cached = _REPLAYS.get(key)
        if cached is not None and cached[0] is runner.profile:
            return cached[1]
        runner.counter.n += 1
        result, blocks = estimate_blocks(runner.profile, scenario)
        # The allocator may reserve up to the budget; past it, it releases its cache and retries.
        found = scenario, result, reserved(blocks, capacity=key[2])
        if len(_REPLAYS) >= REPLAY_CACHE:
            _REPLAYS.pop(next(iter(_REPLAYS)))
        _REPLAYS[key] = (runner.profile, found)
        return found

    best = check(option.batch_size)
    if not best[2].out_of_memory or runner.pins.batch_size or option.batch_size == 1:
        return best
    grid = 1 << max(0, (option.batch_size // RESERVED_GRID).bit_length() - 1)
    hi = -(-option.batch_size // grid)  # grid index that does not fit
    if hint is not None and hint % grid == 0 and 1 <= hint // grid < hi:
        near = check(hint)
        if not near[2].out_of_memory:
            if hint // grid + 1 == hi or check(hint + grid)[2].out_of_memory:
                return near
    lo = hi - 1
    found = None
    while lo >= 1:
        trial = check(lo * grid)
        if not trial[2].out_of_memory:
            found = trial
            break
        hi, lo = lo, max(lo - 2 * (hi - lo), 0) if lo > 1 else 0
    if found is None:
        return check(1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = check(mid * grid)
        if trial[2].out_of_memory:
            hi = mid
        else:
            lo, found = mid, trial
    return found


REPLAY_CACHE = 512
_REPLAYS: dict[tuple[int, Scenario, int], tuple[Profile, tuple[Scenario, Estimate, Reservation]]] = {}
"""Allocator replays by scenario and capacity: cards with the same budget share them."""


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
    if scenario.optimizer is not None:  # the profiled optimizer is the traced one, not a formula's
        parts.append(f"--optimizer {scenario.optimizer.value}")
    if scenario.grad_accum > 1:
        parts.append(f"--grad-accum {scenario.grad_accum}")
    if scenario.gpus > 1 or scenario.strategy is not None:
        parts.append(f"--gpus {scenario.gpus}")
        if scenario.strategy is not None:
            parts.append(f"--strategy {scenario.strategy.value}")
    if scenario.offload is not None:
        parts.append(f"--offload {scenario.offload.value}")
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


def _what_would_fit(
    profile: Profile, budget: Budget, pins: Pins, closest: list[Option], source: str, setup: str
) -> tuple[str, ...]:
    """When nothing fits: the smallest catalog GPU that would, and how many GPUs with ZeRO-3 would,
    each with the ``memadvise estimate`` command of its figure."""
    lines = []
    command = f"memadvise estimate {source or 'PROFILE'}"
    if setup:
        command = f"{setup} && {command}"
    smallest = replace(pins, batch_size=pins.batch_size or 1, min_batch=None, grad_accum=None)
    need = min((o.predicted_peak_bytes for o in closest), default=0)
    for gpu in sorted(load_catalog(), key=lambda g: g.memory_bytes):
        candidate = budget_for(gpu, budget.reserve_bytes if budget.exact else None)
        if candidate.usable_bytes < need:
            continue
        plan = search(profile, candidate, smallest, Goal.MIN_MEMORY, suggest=False)
        if plan.recommendation is not None:
            lines.append(
                f"smallest catalog GPU that fits: {gpu.name} ({command} {plan.recommendation.flags})"
            )
            break
    if profile.mode == Mode.TRAIN.value and pins.gpus == 1:
        for n in (2, 4, 8, 16, 32, 64):
            sharded = replace(smallest, gpus=n, strategy="zero3")
            try:
                plan = search(profile, budget, sharded, Goal.MIN_MEMORY, suggest=False)
            except MemadviseError:
                break
            if plan.recommendation is not None:
                lines.append(f"or {n} of these GPUs with ZeRO-3/FSDP ({command} {plan.recommendation.flags})")
                break
    if not lines:
        lines.append("nothing in the catalog fits this model at batch 1 on one GPU")
    return tuple(lines)

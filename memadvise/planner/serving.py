"""Serving plans: how many sequences generate at once on one GPU, or how long a context fits.

From a generation profile (``memadvise profile --mode generate``) and a GPU budget, the search asks
:func:`memadvise.analyzer.kv_cache.estimate_generation` for the peak of each candidate and keeps the
largest that fits: the number of concurrent sequences for a prompt and a number of new tokens (the
peak grows with the batch), or, with a batch given, the longest context (prompt + new tokens).
Weights are stored in bf16, int8 or int4 (int8: one scale per output channel, not counted; int4:
groups of 128 weights with a 16-bit scale and zero point, 0.53 bytes per weight). Nothing here imports
torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from memadvise.analyzer.kv_cache import GenerationEstimate, GenerationScenario, estimate_generation
from memadvise.errors import UsageError
from memadvise.model.profile import Profile
from memadvise.planner.budget import Budget

WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5 + 4 / 128}
MAX_BATCH = 1 << 20
MAX_CONTEXT = 1 << 24


@dataclass(frozen=True)
class ServingPlan:
    """The answer of one serving search (``max_batch`` or ``max_context``; the other is the input)."""

    model: str
    gpu: str
    usable_bytes: int
    weights: str
    kv_itemsize: int
    cache: str
    prompt_len: int
    new_tokens: int
    batch_size: int
    max_batch: int | None
    max_context: int | None
    peak_bytes: int
    peak_phase: str
    weights_bytes: int
    kv_cache_bytes: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


def _largest(fits: Any, low: int, high: int) -> int:
    """The largest ``n`` in ``[low, high]`` with ``fits(n)`` (``fits`` monotone), ``low - 1`` if none."""
    if not fits(low):
        return low - 1
    n = low
    while n * 2 <= high and fits(n * 2):
        n *= 2
    lo, hi = n, min(high, n * 2)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_serving(
    profile: Profile,
    budget: Budget,
    *,
    prompt_len: int | None = None,
    new_tokens: int | None = None,
    batch_size: int | None = None,
    weights: str = "bf16",
    kv_dtype: str | None = None,
    cache: str | None = None,
) -> ServingPlan:
    """The most concurrent sequences that fit ``budget`` (or, with ``batch_size``, the longest context)."""
    gen = profile.generation
    if gen is None:
        raise UsageError(
            "plan --mode generate needs a generation profile or a model file with transformers' generate()"
        )
    if weights not in WEIGHT_BYTES:
        raise UsageError(f"unknown weights format {weights!r}; use bf16, int8 or int4")
    kv = kv_dtype or ("fp16" if weights == "fp16" else "bf16")
    prompt = prompt_len or gen.prompt_len
    new = new_tokens or gen.new_tokens
    usable = budget.usable_bytes

    def scenario(batch: int, prompt_: int, new_: int) -> GenerationScenario:
        return GenerationScenario(
            batch_size=batch,
            prompt_len=prompt_,
            new_tokens=new_,
            kv_dtype=kv,
            cache=cache,
            weights_itemsize=WEIGHT_BYTES[weights],
        )

    def at(batch: int, prompt_: int, new_: int) -> GenerationEstimate:
        return estimate_generation(gen, profile.batch_size, scenario(batch, prompt_, new_))

    notes = [
        f"weights in {weights} ({WEIGHT_BYTES[weights]:.3g} bytes per weight; buffers counted alike), "
        f"KV cache in {kv}",
        f"activations as traced ({profile.device}, {profile.precision}); tensor bytes, without the caching "
        "allocator's rounding and fragmentation",
        budget.describe(),
    ]
    max_batch: int | None = None
    max_context: int | None = None
    if batch_size is None:
        max_batch = max(0, _largest(lambda b: at(b, prompt, new).peak_bytes <= usable, 1, MAX_BATCH))
        batch = max(max_batch, 1)
        best = at(batch, prompt, new)
    else:
        batch = batch_size
        if at(batch, prompt, 1).peak_bytes > usable:
            max_context = 0
            best = at(batch, prompt, 1)
        else:
            limit = MAX_CONTEXT
            if gen.layout.max_positions:
                limit = max(1, gen.layout.max_positions - prompt)
                notes.append(
                    f"context capped at the model's max_position_embeddings ({gen.layout.max_positions})"
                )
            extra = _largest(lambda n: at(batch, prompt, n).peak_bytes <= usable, 1, limit)
            max_context = prompt + extra
            best = at(batch, prompt, extra)
            new = extra
    return ServingPlan(
        model=profile.model,
        gpu=budget.name,
        usable_bytes=usable,
        weights=weights,
        kv_itemsize=best.kv_itemsize,
        cache=best.cache,
        prompt_len=prompt,
        new_tokens=new,
        batch_size=batch,
        max_batch=max_batch,
        max_context=max_context,
        peak_bytes=best.peak_bytes,
        peak_phase=best.peak_phase,
        weights_bytes=best.weights_bytes,
        kv_cache_bytes=best.kv_cache_bytes,
        notes=tuple(notes) + best.notes,
    )

"""What-ifs for generation: another batch, prompt, number of new tokens, KV cache dtype or cache kind.

A generation profile (``memadvise profile --mode generate``) holds, per forward pass, the live bytes at
its start, its highest live bytes and the KV cache bytes after it (:class:`~memadvise.model.generation.
Generation`). The estimate splits the peak of a new scenario into parts that scale differently:

* weights (parameters and buffers): constant;
* the batch (token ids): by batch × prompt length;
* the KV cache: by formula, 2 · layers · kv_heads · head_dim · tokens · batch · itemsize, with sliding-window
  layers capped at their window and an MLA model's latent cache (``kv_lora_rank + qk_rope_head_dim``
  values per token and layer, assumed);
* the prefill's transient memory (hidden states, MLP, attention, the logits of the last position in
  fp32): the highest rise of the prefill above its start, less the cache it wrote, linear in the batch
  (fitted from the profile's second trace at twice the batch when it has one) and in the prompt length
  (flash/SDPA attention; eager attention's prompt² scores are not extrapolated and a note says so);
* the decode steps' memory beside weights and cache (the step's transients, the token ids and attention
  mask so far): fitted per batch as ``u + v · context`` over the traced decode steps (least squares),
  then linear in the batch between the two traced batches.

The peak is the larger of the prefill's and the last decode step's. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from memadvise.analyzer.estimate import Estimate
from memadvise.errors import UsageError
from memadvise.model.generation import Generation, KVLayout
from memadvise.model.profile import Holder, Profile

KV_DTYPES = {"fp8": 1, "int8": 1, "bf16": 2, "fp16": 2, "fp32": 4}
CACHES = ("dynamic", "static")


def kv_itemsize(name: str | None, default: int) -> int:
    """The item size of a KV cache dtype name (``None``: ``default``, the traced one)."""
    if name is None:
        return default
    if name not in KV_DTYPES:
        raise UsageError(f"unknown KV cache dtype {name!r}; use one of {', '.join(KV_DTYPES)}")
    return KV_DTYPES[name]


def kv_bytes(layout: KVLayout, batch: int, tokens: int, itemsize: int) -> int:
    """Bytes of a cache holding ``tokens`` tokens of ``batch`` sequences; sliding-window layers hold at
    most their window."""
    full_layers = layout.layers - layout.sliding_layers
    total = layout.per_token_values(full_layers) * tokens
    if layout.sliding_layers and layout.sliding_window:
        total += layout.per_token_values(layout.sliding_layers) * min(tokens, layout.sliding_window)
    return total * batch * itemsize


@dataclass(frozen=True)
class GenerationScenario:
    """What changes: ``None`` keeps the traced value."""

    batch_size: int | None = None
    prompt_len: int | None = None
    new_tokens: int | None = None
    kv_dtype: str | None = None
    cache: str | None = None
    weights_itemsize: float | None = None  # bytes per weight (int4: 0.5), None: as traced

    def __post_init__(self) -> None:
        for name in ("batch_size", "prompt_len", "new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
        if self.cache is not None and self.cache not in CACHES:
            raise UsageError(f"unknown cache {self.cache!r}; use dynamic or static")


@dataclass(frozen=True)
class GenerationEstimate:
    """The predicted peak of one generation scenario and its parts (bytes)."""

    batch_size: int
    prompt_len: int
    new_tokens: int
    cache: str
    kv_itemsize: int
    peak_bytes: int
    peak_phase: str
    prefill_peak_bytes: int
    decode_peak_bytes: int
    weights_bytes: int
    input_bytes: int
    kv_cache_bytes: int
    prefill_transient_bytes: int
    decode_other_bytes: int
    notes: tuple[str, ...] = ()


def _fit_line(xs: list[int], ys: list[int]) -> tuple[float, float]:
    """Least-squares ``(u, v)`` of ``y = u + v·x`` (a constant when all ``x`` are equal)."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n < 2 or sxx == 0:
        return float(max(ys)), 0.0
    v = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - v * mx, v


def _decode_fit(
    start0: int, starts: tuple[int, ...], peaks: tuple[int, ...], kv: tuple[int, ...], ctx: tuple[int, ...]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Lines ``(u, v)`` in the context length of the decode steps' memory beside weights and cache:
    what stays alive between steps (``start_k - start_0 - kv_(k-1)``: token ids, attention mask) and
    each step's rise above its start (``peak_k - start_k``)."""
    xs: list[int] = []
    kept: list[int] = []
    rises: list[int] = []
    for k in range(1, min(len(peaks), len(starts), len(kv), len(ctx))):
        xs.append(ctx[k])
        kept.append(starts[k] - start0 - kv[k - 1])
        rises.append(peaks[k] - starts[k])
    return _fit_line(xs, kept), _fit_line(xs, rises)


def estimate_generation(
    gen: Generation, traced_batch: int, scenario: GenerationScenario
) -> GenerationEstimate:
    """The peak of a generation under ``scenario``, extrapolated from the traced ``gen``."""
    if not gen.step_peak or not gen.step_start:
        raise UsageError(
            "this generation profile has no per-step figures; profile it again with --mode generate"
        )
    b0, p0 = max(traced_batch, 1), max(gen.prompt_len, 1)
    batch = scenario.batch_size or b0
    prompt = scenario.prompt_len or gen.prompt_len
    new = scenario.new_tokens or gen.new_tokens
    cache = scenario.cache or gen.cache
    item = kv_itemsize(scenario.kv_dtype, gen.kv_itemsize)
    notes: list[str] = []
    layout = gen.layout

    weights = gen.weights_bytes
    if scenario.weights_itemsize is not None and gen.weights_itemsize:
        weights = int(weights * scenario.weights_itemsize / gen.weights_itemsize)
    start0 = gen.step_start[0]
    inputs = max(0, start0 - gen.weights_bytes)
    inputs_new = int(inputs * batch * prompt / (b0 * p0))

    # Prefill: its rise above the start, less the cache it wrote, per sequence (two batches: a line).
    def prefill_transient(peaks: tuple[int, ...], starts: tuple[int, ...], kvs: tuple[int, ...]) -> int:
        # a static cache is allocated inside the prefill range too (generate's set-up): subtract it alike
        return max(0, peaks[0] - starts[0] - kvs[0])

    t1 = prefill_transient(gen.step_peak, gen.step_start, gen.step_kv)
    if gen.second_batch and gen.second_step_peak:
        t2 = prefill_transient(gen.second_step_peak, gen.second_step_start, gen.second_step_kv)
        slope = (t2 - t1) / (gen.second_batch - b0)
        intercept = t1 - slope * b0
        prefill_t = max(0.0, intercept + slope * batch)
        notes.append(f"batch scaling fitted from traces at batch {b0} and {gen.second_batch}")
    else:
        prefill_t = t1 * batch / b0
        notes.append(f"transient memory assumed proportional to the batch (one trace, batch {b0})")
    if prompt != gen.prompt_len:
        # Eager attention materialises one layer's scores, batch · heads · prompt² values in the model's
        # dtype, twice at its peak (the masked scores and their softmax): that part grows with prompt²,
        # the rest (hidden states, MLP, the last position's logits) linearly.
        eager = layout.attn_implementation == "eager"
        scores = 2 * layout.heads * gen.weights_itemsize if eager else 0
        quadratic = min(prefill_t, scores * batch * p0 * p0)
        prefill_t = (prefill_t - quadratic) * prompt / p0 + quadratic * (prompt / p0) ** 2
        notes.append(
            "prefill transients scaled linearly with the prompt length"
            + ("; eager attention's scores (2 x batch x heads x prompt²) quadratically" if eager else "")
        )

    # Decode: beside weights, batch and cache, per context length; between the batches, a line. A
    # dynamic cache's step also holds, for a moment, one layer's keys both before and after they grow:
    # the rise is at least one layer's key tensor at the new length.
    kept1, rise1 = _decode_fit(start0, gen.step_start, gen.step_peak, gen.step_kv, gen.step_ctx)
    last_ctx = prompt + new - 1
    if gen.second_batch and gen.second_step_peak:
        second_ctx = gen.step_ctx[: len(gen.second_step_peak)]
        kept2, rise2 = _decode_fit(
            gen.second_step_start[0],
            gen.second_step_start,
            gen.second_step_peak,
            gen.second_step_kv,
            second_ctx,
        )
        frac = (batch - b0) / (gen.second_batch - b0)

        def at(one: tuple[float, float], two: tuple[float, float]) -> float:
            return (one[0] + one[1] * last_ctx) * (1 - frac) + (two[0] + two[1] * last_ctx) * frac

        kept, rise = at(kept1, kept2), at(rise1, rise2)
    else:
        kept = (kept1[0] + kept1[1] * last_ctx) * batch / b0
        rise = (rise1[0] + rise1[1] * last_ctx) * batch / b0
    if cache == "dynamic" and layout.attention != "MLA" and layout.layers:
        rise = max(rise, kv_bytes(layout, batch, last_ctx, item) / (2 * layout.layers))
    decode_other = max(0.0, kept) + max(0.0, rise) if new > 1 else 0.0

    traced_kv_item = gen.kv_itemsize or item
    if cache == "static":
        kv_prefill = kv_bytes(layout, batch, prompt + new - 1, item)  # transformers: max_length - 1
        kv_decode = kv_prefill
        if gen.cache == "dynamic":
            notes.append(
                "static cache: the whole cache is allocated before the prefill; decode transients as "
                "traced with a dynamic cache (its concatenation copies: an upper bound)"
            )
    else:
        kv_prefill = kv_bytes(layout, batch, prompt, item)
        kv_decode = kv_bytes(layout, batch, max(prompt, prompt + new - 2), item)
    if item != traced_kv_item:
        notes.append(
            f"KV cache stored at {item} byte(s) per value (traced: {traced_kv_item})"
            + ("; quantisation scales and dequantisation buffers are not counted" if item == 1 else "")
        )
    if layout.attention == "MLA":
        notes.append(
            "MLA: a latent cache of kv_lora_rank + qk_rope_head_dim values per token and layer is "
            "assumed (as vLLM/SGLang store it; transformers caches full keys and values)"
        )
    if layout.sliding_layers and layout.sliding_window:
        notes.append(
            f"{layout.sliding_layers} of {layout.layers} layers keep at most "
            f"{layout.sliding_window} tokens (sliding window)"
        )
    if layout.max_positions and prompt + new > layout.max_positions:
        notes.append(
            f"{prompt + new} tokens exceed the model's max_position_embeddings ({layout.max_positions})"
        )
    prefill_peak = int(weights + inputs_new + kv_prefill + prefill_t)
    decode_peak = int(weights + inputs_new + kv_decode + decode_other) if new > 1 else 0
    phase = "prefill" if prefill_peak >= decode_peak else "decode"
    return GenerationEstimate(
        batch_size=batch,
        prompt_len=prompt,
        new_tokens=new,
        cache=cache,
        kv_itemsize=item,
        peak_bytes=max(prefill_peak, decode_peak),
        peak_phase=phase,
        prefill_peak_bytes=prefill_peak,
        decode_peak_bytes=decode_peak,
        weights_bytes=weights,
        input_bytes=inputs_new,
        kv_cache_bytes=kv_bytes(layout, batch, prompt + new, item),
        prefill_transient_bytes=int(prefill_t),
        decode_other_bytes=int(decode_other),
        notes=tuple(notes),
    )


def generation_estimate(profile: Profile, scenario: GenerationScenario) -> Estimate:
    """A generation profile's what-if as an :class:`Estimate` (the report every estimate gets): the peak,
    its phase (prefill or decode), weights, batch, KV cache and transients at the peak."""
    gen = profile.generation
    if gen is None:
        raise UsageError(
            "--new-tokens, --prompt-len, --kv-dtype and --cache need a generation profile "
            "(memadvise profile MODEL --mode generate --new-tokens N --format json -o FILE.json)"
        )
    est = estimate_generation(gen, profile.batch_size, scenario)
    at_prefill = est.peak_phase == "prefill"
    kv_at_peak = est.peak_bytes - est.weights_bytes - est.input_bytes
    kv_at_peak -= est.prefill_transient_bytes if at_prefill else est.decode_other_bytes
    breakdown = {
        "parameters": est.weights_bytes,
        "inputs": est.input_bytes,
        "kv_cache": kv_at_peak,
        "temporaries": est.prefill_transient_bytes if at_prefill else est.decode_other_bytes,
    }
    text = (
        f"batch {est.batch_size} · prompt {est.prompt_len} · {est.new_tokens} new tokens · "
        f"{est.cache} cache · KV {est.kv_itemsize} byte(s)/value"
    )
    why = (
        f"prefill peak {est.prefill_peak_bytes:,} B, last decode step {est.decode_peak_bytes:,} B; "
        f"KV cache for {est.prompt_len + est.new_tokens} tokens {est.kv_cache_bytes:,} B"
    )
    change = est.peak_bytes - profile.peak_bytes
    return Estimate(
        model=profile.model,
        batch_size=est.batch_size,
        mode=profile.mode,
        device=profile.device,
        optimizer=profile.optimizer,
        peak_bytes=est.peak_bytes,
        peak_phase=est.peak_phase,
        peak_step=0,
        peak_op="",
        peak_module="",
        peak_breakdown=breakdown,
        param_bytes=est.weights_bytes,
        buffer_bytes=0,
        input_bytes=est.input_bytes,
        grad_bytes=0,
        optimizer_state_bytes=0,
        activation_bytes=0,
        scenario={
            "batch_size": est.batch_size,
            "prompt_len": est.prompt_len,
            "new_tokens": est.new_tokens,
            "kv_itemsize": est.kv_itemsize,
            "cache": est.cache,
            "kv_cache_bytes": est.kv_cache_bytes,
            "prefill_peak_bytes": est.prefill_peak_bytes,
            "decode_peak_bytes": est.decode_peak_bytes,
        },
        scenario_text=text,
        effective_batch_size=est.batch_size,
        baseline_peak_bytes=profile.peak_bytes,
        change_bytes=change,
        change_ratio=est.peak_bytes / profile.peak_bytes if profile.peak_bytes else 0.0,
        peak_holders=tuple(
            Holder(category=c, module="", bytes=b)
            for c, b in sorted(breakdown.items(), key=lambda kv: -kv[1])
            if b
        ),
        notes=est.notes,
        why=why,
        baseline=profile,
    )

"""Tracing generation: greedy decoding with a KV cache, as inference servers run it.

What runs (inside the tracer's recording, under ``torch.no_grad()`` with the model in eval mode)::

    model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=False)

for a model with transformers' ``GenerationMixin`` (``labels`` in the batch are dropped), or the
model file's own ``generate(model, inputs, new_tokens)`` when it defines one. The first forward pass
of the model is the ``prefill`` phase (the prompt, and the generation set-up before it); every later
one starts a ``decode`` phase. ``min_new_tokens=N`` keeps an end-of-sequence token from stopping
early, so exactly N tokens are generated.

The KV cache: its layout (layers, key/value heads, head size, sliding window, MLA) is read from the
model's config, and the storage of the cache object's tensors is read after every forward pass (the
growth per decode step). Transformers' dynamic cache grows by concatenation, so after the last forward
pass it holds ``prompt + N - 1`` tokens: the last generated token is never fed back.

Fake traces (meta tensors) cannot see token values: transformers' end-of-generation check reads them.
During a fake generation that check is answered by counting: exactly N tokens are generated (as
``min_new_tokens=N`` makes a real run do). Other reads of token values are answered by the fake
recorder's stated assumptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from memadvise.capture.allocations import Events
from memadvise.errors import UsageError
from memadvise.model.generation import Generation, KVLayout
from memadvise.model.profile import Phase

CACHES = ("dynamic", "static")
GenerateFn = Callable[[torch.nn.Module, Any, int], Any]
PhaseContext = Callable[[Phase, int], AbstractContextManager[Any]]
KeyFn = Callable[[torch.Tensor], "tuple[int, int] | None"]


@dataclass(frozen=True)
class GenerateSettings:
    """How to generate: ``new_tokens`` tokens, with a ``dynamic`` or ``static`` cache, by the model's
    ``generate`` or by ``generate_fn(model, inputs, new_tokens)`` (a model file's own)."""

    new_tokens: int
    cache: str = "dynamic"
    generate_fn: GenerateFn | None = None

    def __post_init__(self) -> None:
        if self.new_tokens < 1:
            raise UsageError(f"--new-tokens must be at least 1, not {self.new_tokens}")
        if self.cache not in CACHES:
            raise UsageError(f"unknown cache {self.cache!r}; use dynamic or static")


@dataclass
class GenerationRun:
    """What one traced generation saw: the context length of each forward pass and the storage of the
    KV cache after it, and the last cache's token count."""

    step_ctx: list[int] = field(default_factory=list)
    step_kv: list[int] = field(default_factory=list)
    prompt_len: int = 0
    kv_tokens: int = 0
    kv_itemsize: int = 0


def _config_value(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def text_config(model: torch.nn.Module) -> Any:
    """The decoder's config (``text_config`` of multimodal models), or ``None`` without one."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    get_text = getattr(config, "get_text_config", None)
    return get_text(decoder=True) if callable(get_text) else config


def kv_layout(model: torch.nn.Module) -> KVLayout | None:
    """The KV cache layout from a transformers config (``None`` when the model has no such config)."""
    config = text_config(model)
    if config is None:
        return None
    layers = _config_value(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _config_value(config, "num_attention_heads", "n_head")
    hidden = _config_value(config, "hidden_size", "n_embd", "d_model")
    if not isinstance(layers, int) or not isinstance(heads, int) or heads < 1:
        return None
    kv_heads = _config_value(config, "num_key_value_heads", "n_kv_heads") or heads
    if getattr(config, "multi_query", False):  # GPT-BigCode style
        kv_heads = 1
    head_dim = _config_value(config, "head_dim") or (hidden // heads if isinstance(hidden, int) else 0)
    kv_lora_rank = int(_config_value(config, "kv_lora_rank") or 0)
    rope_dim = int(_config_value(config, "qk_rope_head_dim") or 0)
    if kv_lora_rank:
        attention = "MLA"
    elif kv_heads == heads:
        attention = "MHA"
    elif kv_heads == 1:
        attention = "MQA"
    else:
        attention = "GQA"
    window = _config_value(config, "sliding_window")
    if getattr(config, "use_sliding_window", True) is False:
        window = None
    layer_types = getattr(config, "layer_types", None)
    if window and isinstance(layer_types, (list, tuple)):
        sliding = sum(1 for t in layer_types if "sliding" in str(t))
    else:
        sliding = layers if window else 0
    return KVLayout(
        layers=layers,
        heads=heads,
        kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        attention=attention,
        sliding_window=int(window) if window and sliding else None,
        sliding_layers=sliding if window else 0,
        kv_lora_rank=kv_lora_rank,
        rope_head_dim=rope_dim,
        vocab=int(_config_value(config, "vocab_size") or 0),
        hidden=int(hidden or 0),
        max_positions=_config_value(config, "max_position_embeddings", "n_positions"),
        attn_implementation=str(getattr(config, "_attn_implementation", "") or ""),
    )


def generation_inputs(inputs: Any) -> dict[str, Any]:
    """The keyword arguments of ``generate`` from a model file's batch: ``labels`` dropped, a bare
    tensor taken as ``input_ids``."""
    if isinstance(inputs, torch.Tensor):
        return {"input_ids": inputs}
    if isinstance(inputs, dict):
        return {k: v for k, v in inputs.items() if k != "labels"}
    raise UsageError(
        "--mode generate needs example_inputs() to return input_ids (a tensor or a dict with input_ids), "
        "or a generate(model, inputs, new_tokens) function in the model file"
    )


def prompt_length(inputs: Any) -> int:
    """The prompt's length in tokens: the last dimension of ``input_ids``."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else inputs
    if isinstance(ids, torch.Tensor) and ids.dim() >= 1:
        return int(ids.shape[-1])
    return 0


def prompt_batch(inputs: Any) -> int:
    """The number of prompts: the first dimension of ``input_ids`` (1 without one)."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else inputs
    if isinstance(ids, torch.Tensor) and ids.dim() >= 2:
        return int(ids.shape[0])
    return 1


def _cache_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors a cache object holds (layers' keys and values, nested lists and tuples)."""
    if depth > 4 or value is None:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _cache_tensors(v, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _cache_tensors(v, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, (torch.nn.Module, type)):
        for v in vars(value).values():
            yield from _cache_tensors(v, depth + 1)


def cache_of(output: Any) -> Any:
    """The KV cache a forward pass returned (``past_key_values``), or ``None``."""
    for name in ("cache", "past_key_values"):  # transformers 5 names it cache
        if isinstance(output, dict) and output.get(name) is not None:
            return output.get(name)
        if not isinstance(output, dict) and getattr(output, name, None) is not None:
            return getattr(output, name)
    return None


def cache_storage(cache: Any, key: KeyFn) -> tuple[int, int, int]:
    """(bytes of the distinct storages the cache holds, tokens cached by its first layer, the item size
    of its first tensor)."""
    seen: set[int] = set()
    total = 0
    tokens = 0
    itemsize = 0
    for t in _cache_tensors(cache):
        k = key(t)
        if k is None or k[0] in seen:
            continue
        seen.add(k[0])
        total += k[1]
        if not tokens and t.dim() >= 3 and t.is_floating_point():
            tokens = int(t.shape[-2])
            itemsize = t.element_size()
    return total, tokens, itemsize


@contextmanager
def _counted_stop(model: torch.nn.Module, new_tokens: int) -> Iterator[None]:
    """During a fake generation: transformers' loop check answered by counting the tokens (the
    instance attribute shadows the method and is removed afterwards)."""
    original = getattr(type(model), "_has_unfinished_sequences", None)
    if original is None:
        yield
        return
    rounds = [0]

    def has_unfinished(*args: Any, **kwargs: Any) -> bool:
        rounds[0] += 1
        return rounds[0] <= new_tokens

    object.__setattr__(model, "_has_unfinished_sequences", has_unfinished)
    try:
        yield
    finally:
        object.__delattr__(model, "_has_unfinished_sequences")


def run_generation(
    model: torch.nn.Module,
    inputs: Any,
    settings: GenerateSettings,
    *,
    phase: PhaseContext,
    key: KeyFn,
    fake: bool,
    note: Callable[[str], None] | None = None,
) -> GenerationRun:
    """Generate ``settings.new_tokens`` tokens greedily, with a prefill phase and a decode phase per
    later forward pass; returns the context length and cache bytes after each forward pass."""
    run = GenerationRun(prompt_len=prompt_length(inputs))
    current: list[AbstractContextManager[Any]] = []

    def switch(to: Phase) -> None:
        if current:
            current.pop().__exit__(None, None, None)
        ctx = phase(to, 0)
        ctx.__enter__()
        current.append(ctx)

    def pre_hook(module: torch.nn.Module, args: Any) -> None:
        if run.step_ctx:
            switch(Phase.DECODE)

    def post_hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        cached, tokens, itemsize = cache_storage(cache_of(output), key)
        run.step_ctx.append(run.prompt_len + len(run.step_ctx))
        run.step_kv.append(cached)
        run.kv_tokens = tokens
        run.kv_itemsize = itemsize or run.kv_itemsize

    model.eval()
    handles = [model.register_forward_pre_hook(pre_hook), model.register_forward_hook(post_hook)]
    try:
        with torch.no_grad():
            switch(Phase.PREFILL)
            if settings.generate_fn is not None:
                out = settings.generate_fn(model, inputs, settings.new_tokens)
            else:
                generate = getattr(model, "generate", None)
                if not callable(generate):
                    raise UsageError(
                        "--mode generate needs a model with transformers' generate() "
                        "(GenerationMixin) or a generate(model, inputs, new_tokens) function "
                        "in the model file"
                    )
                options: dict[str, Any] = {
                    "max_new_tokens": settings.new_tokens,
                    "min_new_tokens": settings.new_tokens,
                    "do_sample": False,
                }
                if settings.cache == "static":
                    options["cache_implementation"] = "static"
                stop = _counted_stop(model, settings.new_tokens) if fake else _nothing()
                quiet = _quiet_transformers() if fake else _nothing()
                if fake and note is not None:
                    note(
                        f"generation ends after exactly {settings.new_tokens} tokens: transformers' "
                        "stop check answered by counting (its reads of token values do not decide it)"
                    )
                with stop, quiet:
                    out = generate(**generation_inputs(inputs), **options)
            del out
    finally:
        for handle in handles:
            handle.remove()
        if current:
            current.pop().__exit__(None, None, None)
    return run


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings off during a fake generation: they are about the assumed token values
    (padding side, end-of-sequence ids), not the user's inputs."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def step_figures(events: Events, start_bytes: int) -> tuple[list[int], list[int]]:
    """(live bytes at the start, highest live bytes) of every prefill and decode range, in order.

    Live bytes are ``start_bytes`` (what was alive when recording began) plus the running sum of the
    allocator events.
    """
    ranges = sorted(
        (r for r in events.phase_ranges if r[0] in (Phase.PREFILL.value, Phase.DECODE.value)),
        key=lambda r: r[2],
    )
    starts: list[int] = []
    peaks: list[int] = []
    live = start_bytes
    i = 0
    n = len(events.time)
    for _, _, begin, end in ranges:
        while i < n and events.time[i] < begin:
            live += events.size[i]
            i += 1
        first = live
        top = live
        while i < n and events.time[i] <= end:
            live += events.size[i]
            top = max(top, live)
            i += 1
        starts.append(first)
        peaks.append(top)
    return starts, peaks


def kv_formula_bytes(layout: KVLayout, batch: int, tokens: int, itemsize: int) -> int:
    """Dense cache bytes: 2 · layers · kv_heads · head_dim · tokens · batch · itemsize (MLA: the latent
    per token instead of keys and values)."""
    return layout.per_token_values() * tokens * batch * itemsize


def build_generation(
    run: GenerationRun,
    settings: GenerateSettings,
    layout: KVLayout,
    *,
    batch_size: int,
    kv_itemsize: int,
    weights_bytes: int,
    weights_itemsize: int,
    starts: list[int],
    peaks: list[int],
) -> Generation:
    """The profile's generation record from a traced run."""
    source = "generate(model, inputs, new_tokens)" if settings.generate_fn else "model.generate"
    return Generation(
        prompt_len=run.prompt_len,
        new_tokens=settings.new_tokens,
        cache=settings.cache,
        source=source,
        layout=layout,
        kv_itemsize=kv_itemsize,
        kv_cache_bytes=kv_formula_bytes(
            layout, batch_size, run.prompt_len + settings.new_tokens, kv_itemsize
        ),
        kv_traced_bytes=run.step_kv[-1] if run.step_kv else 0,
        kv_traced_tokens=run.kv_tokens,
        weights_bytes=weights_bytes,
        weights_itemsize=weights_itemsize,
        step_ctx=tuple(run.step_ctx),
        step_start=tuple(starts),
        step_peak=tuple(peaks),
        step_kv=tuple(run.step_kv),
    )

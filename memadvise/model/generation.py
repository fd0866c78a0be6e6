"""What a traced generation (``memadvise profile --mode generate``) found beyond the peak.

The KV cache layout is read from the model's config at trace time (layers, key/value heads, head size,
sliding window) and the per-forward figures come from the allocator events of the trace, so that
``memadvise estimate`` and ``memadvise plan --mode generate`` can extrapolate from a saved profile
without torch. All sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class KVLayout:
    """How a model caches keys and values, read from its config.

    ``attention`` is MHA (kv_heads == heads), GQA (1 < kv_heads < heads), MQA (kv_heads == 1) or MLA
    (a latent cache: ``kv_lora_rank`` + ``rope_head_dim`` values per token and layer, shared by keys and
    values). ``sliding_layers`` of the ``layers`` keep at most ``sliding_window`` tokens.
    """

    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    attention: str = "MHA"
    sliding_window: int | None = None
    sliding_layers: int = 0
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    vocab: int = 0
    hidden: int = 0
    max_positions: int | None = None
    attn_implementation: str = ""

    def per_token_values(self, layer_count: int | None = None) -> int:
        """Cached values per token over ``layer_count`` layers (default all): keys and values."""
        n = self.layers if layer_count is None else layer_count
        if self.attention == "MLA":
            return n * (self.kv_lora_rank + self.rope_head_dim)
        return 2 * n * self.kv_heads * self.head_dim


@dataclass(frozen=True)
class Generation:
    """A traced greedy generation: its sizes, cache and what each forward pass held.

    ``kv_cache_bytes`` is the dense cache for ``prompt_len + new_tokens`` tokens by formula
    (2 · layers · kv_heads · head_dim · tokens · batch · itemsize); ``kv_traced_bytes`` the storage of the
    cache object's tensors after the last forward pass, which holds ``kv_traced_tokens`` tokens (a
    dynamic cache never stores the last generated token: it is not fed back). The step columns hold
    one entry per forward pass (the prefill first): the context length it ran at, the live bytes when it
    started, its highest live bytes, and the cache bytes after it. ``weights_bytes`` are parameters
    and buffers. ``second_*`` are the same figures of a second trace at ``second_batch`` (0: none),
    used to fit how the non-cache memory scales with the batch.
    """

    prompt_len: int
    new_tokens: int
    cache: str
    source: str
    layout: KVLayout
    kv_itemsize: int
    kv_cache_bytes: int
    kv_traced_bytes: int
    kv_traced_tokens: int
    weights_bytes: int
    weights_itemsize: int
    step_ctx: tuple[int, ...] = ()
    step_start: tuple[int, ...] = ()
    step_peak: tuple[int, ...] = ()
    step_kv: tuple[int, ...] = ()
    second_batch: int = 0
    second_step_start: tuple[int, ...] = ()
    second_step_peak: tuple[int, ...] = ()
    second_step_kv: tuple[int, ...] = ()
    expert_load: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> Generation | None:
        """The generation part of a profile file (``None`` when the profile has none)."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError("generation must be an object")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["layout"] = KVLayout(**data["layout"])
        for name in known:
            if name.startswith(("step_", "second_step_")) and name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

"""The generation part of a terminal report: KV cache size and layout, and its growth per decode step."""

from __future__ import annotations

from rich.text import Text

from memadvise.model.profile import Profile
from memadvise.model.units import format_bytes

GROWTH_POINTS = 8


def generation_section(profile: Profile) -> Text:
    """KV cache, where the peak fell, and the cache's growth over the decode steps (a few samples)."""
    gen = profile.generation
    text = Text()
    if gen is None:
        return text
    lay = gen.layout
    text.append("Generation ", style="bold")
    text.append(
        f"{gen.new_tokens} new tokens after a {gen.prompt_len}-token prompt "
        f"({gen.source}, {gen.cache} cache); "
        f"peak in {profile.peak_phase}\n"
    )
    text.append("KV cache ", style="bold")
    text.append(
        f"{format_bytes(gen.kv_cache_bytes)} for {gen.prompt_len + gen.new_tokens} tokens by formula "
        f"(2 x {lay.layers} layers x {lay.kv_heads} kv heads x {lay.head_dim} x tokens x batch "
        f"{profile.batch_size} x {gen.kv_itemsize} bytes; {lay.attention}"
        + (
            f", sliding window {lay.sliding_window} on {lay.sliding_layers} layers"
            if lay.sliding_window
            else ""
        )
        + f"); traced cache after the last forward: {format_bytes(gen.kv_traced_bytes)} "
        f"for {gen.kv_traced_tokens} tokens\n"
    )
    n = len(gen.step_kv)
    if n:
        picks = sorted({round(i * (n - 1) / (GROWTH_POINTS - 1)) for i in range(GROWTH_POINTS)})
        growth = ", ".join(
            f"{'prefill' if i == 0 else f'step {i}'} {format_bytes(gen.step_kv[i])}"
            f" (peak {format_bytes(gen.step_peak[i])})"
            for i in picks
            if i < len(gen.step_peak)
        )
        text.append("KV cache growth ", style="bold")
        text.append(growth)
    return text

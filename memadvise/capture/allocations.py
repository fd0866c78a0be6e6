"""From allocator events to a ``Profile``: blocks, categories, the peak, per-layer figures, timeline.

The profiler's event tree nests every allocation/free event under the operators and ranges that were
open when it happened. This module walks that tree once, turns matching allocate/free pairs into
*blocks* (one device allocation each), gives each block a category (gradient, optimizer state,
activation or temporary) and an owning module, then replays the events in order to get live bytes by
category at every moment. Memory that existed before the trace (parameters, buffers, inputs) enters as
the baseline, and leaves it where the allocator reports its free or, on CPU, whose allocator reports
none, where the recorder saw its storage destroyed (:func:`release_baseline`).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memadvise.model.profile import CATEGORIES, Category, Holder, LayerStats, Phase, Profile, Timeline
from memadvise.model.program import Program, build_program

OUTSIDE = {
    Phase.SETUP.value: "<setup>",
    Phase.FORWARD.value: "<loss>",
    Phase.BACKWARD.value: "<autograd>",
    Phase.OPTIMIZER.value: "<optimizer>",
    Phase.PREFILL.value: "<generate>",  # generate's own work between forward passes
    Phase.DECODE.value: "<generate>",
}
MAX_TIMELINE_POINTS = 2000


def _step_dict() -> defaultdict[int, dict[int, Any]]:
    return defaultdict(dict)


def _step_counter() -> defaultdict[int, Counter[str]]:
    return defaultdict(Counter)


@dataclass
class Capture:
    """What the tracer's hooks saw, per step: storages by data pointer, and module call figures."""

    saved: defaultdict[int, dict[int, str]] = field(default_factory=_step_dict)
    grads: defaultdict[int, dict[int, tuple[str, int]]] = field(default_factory=_step_dict)
    optimizer_state: defaultdict[int, dict[int, tuple[str, int]]] = field(default_factory=_step_dict)
    calls: defaultdict[int, Counter[str]] = field(default_factory=_step_counter)
    output_bytes: defaultdict[int, Counter[str]] = field(default_factory=_step_counter)
    dtypes: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (category, step, ptr)


@dataclass(frozen=True)
class BaselineBlock:
    """A storage alive before the trace started."""

    ptr: int
    nbytes: int
    category: str
    module: str
    dtype: str = ""


@dataclass
class Events:
    """Allocation events in time order, with their context, and the ranges found in the tree."""

    time: list[int] = field(default_factory=list)
    ptr: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    module: list[str | None] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    op: list[str] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    module_ranges: list[tuple[str, int, int]] = field(default_factory=list)
    phase_ranges: list[tuple[str, int, int, int]] = field(default_factory=list)
    node_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    seq_module: dict[int, str] = field(default_factory=dict)
    # A watched storage being destroyed (CPU): (time, data pointer, watch token, module, seq, op, group)
    releases: list[tuple[int, int, int, str | None, int, str, int]] = field(default_factory=list)


@dataclass
class _Blocks:
    """Allocate/free pairs: for each event the block it opens or closes (-1: a free of unknown memory)."""

    of_event: list[int]
    alloc: list[int]
    free: list[int]  # -1 while never freed
    size: list[int]
    by_ptr: dict[int, list[int]]


def pair_blocks(ev: Events) -> _Blocks:
    open_at: dict[int, int] = {}
    blocks = _Blocks(of_event=[], alloc=[], free=[], size=[], by_ptr=defaultdict(list))
    for i, (ptr, size) in enumerate(zip(ev.ptr, ev.size, strict=True)):
        if size > 0:
            b = len(blocks.alloc)
            if ptr in open_at:  # a free we never saw: close the old block here
                blocks.free[open_at[ptr]] = i
            open_at[ptr] = b
            blocks.alloc.append(i)
            blocks.free.append(-1)
            blocks.size.append(size)
            blocks.by_ptr[ptr].append(b)
            blocks.of_event.append(b)
        else:
            b = open_at.pop(ptr, -1)
            if b >= 0:
                blocks.free[b] = i
            blocks.of_event.append(b)
    return blocks


def _alive_at(blocks: _Blocks, b: int, position: int) -> bool:
    """Was block ``b`` alive just before event ``position`` (after events[:position])?"""
    free = blocks.free[b]
    return blocks.alloc[b] < position and (free < 0 or free >= position)


def _find_alive(blocks: _Blocks, ptr: int, position: int) -> int:
    for b in blocks.by_ptr.get(ptr, ()):
        if _alive_at(blocks, b, position):
            return b
    return -1


def event_context(ev: Events) -> tuple[list[str], list[int], list[str]]:
    """Phase, step and owning module of every event.

    The phase and step come from the phase range containing the event; the module is the innermost
    module range, else the module of the forward operator (for backward events), else a placeholder
    such as ``<loss>`` or ``<optimizer>``.
    """
    starts = [r[2] for r in ev.phase_ranges]
    phase_of: list[str] = []
    step_of: list[int] = []
    for t in ev.time:
        k = bisect.bisect_right(starts, t) - 1
        if k >= 0 and t <= ev.phase_ranges[k][3]:
            phase_of.append(ev.phase_ranges[k][0])
            step_of.append(ev.phase_ranges[k][1])
        else:
            phase_of.append(Phase.SETUP.value)
            step_of.append(ev.phase_ranges[k][1] if k >= 0 else 0)
    module_of: list[str] = []
    for i in range(len(ev.time)):
        mod = ev.module[i]
        if mod is None and ev.seq[i] >= 0:
            mod = ev.seq_module.get(ev.seq[i])
        module_of.append(OUTSIDE.get(phase_of[i], "<other>") if mod is None else mod)
    return phase_of, step_of, module_of


def first_steps(ev: Events, steps: int) -> Events:
    """The events of the first ``steps`` steps only: everything before the next step's first phase, or
    when no step follows, up to the end of the last phase (the tutorial loop's last output and loss are
    released after it, when the loop ends; a longer run would release them in the next forward)."""
    later = [start for _, step, start, _ in ev.phase_ranges if step >= steps]
    if later:
        cut = min(later)
    elif ev.phase_ranges:
        cut = max(end for *_, end in ev.phase_ranges) + 1
        if not ev.time or ev.time[-1] < cut:
            return ev
    else:
        return ev
    n = bisect.bisect_left(ev.time, cut)
    return Events(
        time=ev.time[:n],
        ptr=ev.ptr[:n],
        size=ev.size[:n],
        module=ev.module[:n],
        seq=ev.seq[:n],
        op=ev.op[:n],
        group=ev.group[:n],
        module_ranges=[r for r in ev.module_ranges if r[1] < cut],
        phase_ranges=[r for r in ev.phase_ranges if r[2] < cut],
        node_ranges=[r for r in ev.node_ranges if r[1] < cut],
        seq_module=dict(ev.seq_module),
        releases=[r for r in ev.releases if r[0] < cut],
    )


def made_before(ev: Events, watched: dict[int, int | None]) -> set[int]:
    """Which storages of ``watched`` (data pointer → the recorder's watch token, ``None`` when it
    was not watched) were made before the recording began.

    Those with no recorded allocation at their address before the storage was destroyed (or before the
    end, when it was not, or was not watched): while a storage lived, nothing else could be allocated
    at its address.
    """
    end = {token: t for t, _, token, *_ in reversed(ev.releases)}
    first_alloc: dict[int, int] = {}
    for t, ptr, size in zip(ev.time, ev.ptr, ev.size, strict=True):
        if size > 0 and ptr in watched:
            first_alloc.setdefault(ptr, t)
    made: set[int] = set()
    for ptr, token in watched.items():
        ended = end.get(token) if token is not None else None
        if ptr not in first_alloc or (ended is not None and first_alloc[ptr] >= ended):
            made.add(ptr)
    return made


def release_baseline(ev: Events, baseline: list[BaselineBlock]) -> Events:
    """``ev`` with a free event for every baseline block whose storage was seen destroyed
    (``ev.releases``) where the allocator reported no free, placed where the storage was destroyed.

    A release counts for a baseline block at its address when no recorded allocation there is still
    open: that release is the baseline storage's own (just before the allocator frees its memory).
    """
    if not ev.releases or not baseline:
        return ev
    base = {b.ptr: b for b in baseline}
    open_blocks: set[int] = set()
    inserts: list[tuple[int, int, int, str | None, int, str, int]] = []  # (position, time, ptr, …)
    done: set[int] = set()
    r = 0
    n = len(ev.time)
    for i in range(n + 1):
        # releases before event i (a release at the same time as an event goes after it)
        while r < len(ev.releases) and (i == n or ev.releases[r][0] < ev.time[i]):
            t, ptr, _, module, seq, label, group = ev.releases[r]
            r += 1
            if ptr in base and ptr not in done and ptr not in open_blocks:
                done.add(ptr)
                inserts.append((i, t, ptr, module, seq, label, group))
        if i == n:
            break
        if ev.size[i] > 0:
            open_blocks.add(ev.ptr[i])
        else:
            open_blocks.discard(ev.ptr[i])
            done.add(ev.ptr[i])  # a free the allocator reported (memory of an earlier profiled session)
    if not inserts:
        return ev
    out = Events(
        module_ranges=ev.module_ranges,
        phase_ranges=ev.phase_ranges,
        node_ranges=ev.node_ranges,
        seq_module=ev.seq_module,
        releases=ev.releases,
    )
    k = 0
    for i in range(n + 1):
        while k < len(inserts) and inserts[k][0] == i:
            _, t, ptr, module, seq, label, group = inserts[k]
            k += 1
            out.time.append(t)
            out.ptr.append(ptr)
            out.size.append(-base[ptr].nbytes)
            out.module.append(module)
            out.seq.append(seq)
            out.op.append(label)
            out.group.append(group)
        if i == n:
            break
        out.time.append(ev.time[i])
        out.ptr.append(ev.ptr[i])
        out.size.append(ev.size[i])
        out.module.append(ev.module[i])
        out.seq.append(ev.seq[i])
        out.op.append(ev.op[i])
        out.group.append(ev.group[i])
    return out


def build_profile(
    ev: Events,
    *,
    capture: Capture,
    baseline: list[BaselineBlock],
    layers: list[tuple[str, str]],
    meta: dict[str, Any],
) -> Profile:
    """Turn the time-ordered allocation events and the hooks' capture into the frozen ``Profile``."""
    blocks = pair_blocks(ev)
    n_events = len(ev.time)

    phase_of, step_of, module_of = event_context(ev)
    phase_end: dict[tuple[str, int], int] = {}
    phase_ends: defaultdict[tuple[str, int], list[int]] = defaultdict(list)
    for phase, step, _, end in ev.phase_ranges:  # a custom step may enter a phase several times
        position = bisect.bisect_right(ev.time, end)
        phase_end.setdefault((phase, step), position)
        phase_ends[(phase, step)].append(position)

    # Category and module of every block.
    n_blocks = len(blocks.alloc)
    block_cat = [Category.TEMPORARIES.value] * n_blocks
    block_mod = [module_of[a] for a in blocks.alloc]
    rules = (
        (capture.grads, Phase.BACKWARD, Category.GRADIENTS),
        (capture.optimizer_state, Phase.OPTIMIZER, Category.OPTIMIZER_STATE),
        (capture.saved, Phase.FORWARD, Category.ACTIVATIONS),
    )
    block_dtype = [""] * n_blocks
    assigned: set[int] = set()
    for by_step, phase, category in rules:
        for step, ptrs in by_step.items():
            positions = phase_ends.get((phase.value, step))
            if not positions:
                continue
            for ptr, info in ptrs.items():
                b = -1
                for position in positions:
                    b = _find_alive(blocks, ptr, position)
                    if b >= 0:
                        break
                if b >= 0 and b not in assigned:
                    assigned.add(b)
                    block_cat[b] = category.value
                    block_mod[b] = str(info[0] if isinstance(info, tuple) else info)
                    block_dtype[b] = capture.dtypes.get((category.value, step, ptr), "")

    # Replay: live bytes per category after every event.
    cat_index = {c: k for k, c in enumerate(CATEGORIES)}
    live = [0] * len(CATEGORIES)
    base_by_ptr = {b.ptr: b for b in baseline}
    for blk in baseline:
        live[cat_index[blk.category]] += blk.nbytes
    base_freed: dict[int, int] = {}
    event_cat: list[int] = []
    event_delta: list[int] = []
    for i in range(n_events):
        b = blocks.of_event[i]
        if b >= 0:
            event_cat.append(cat_index[block_cat[b]])
            event_delta.append(ev.size[i])
        else:  # a free of memory allocated before the trace (reported by the CUDA allocator, or put in
            # by release_baseline where the CPU allocator reports none)
            base = base_by_ptr.get(ev.ptr[i])
            if base is not None and base.ptr not in base_freed:
                base_freed[base.ptr] = i
                event_cat.append(cat_index[base.category])
                event_delta.append(-base.nbytes)
            else:
                event_cat.append(0)
                event_delta.append(0)
    base_total = sum(live)
    totals = (
        np.cumsum(np.asarray(event_delta, dtype=np.int64)) + base_total if n_events else np.zeros(0, np.int64)
    )
    peak_idx = int(np.argmax(totals)) if n_events else -1
    peak_bytes = int(totals[peak_idx]) if n_events and totals[peak_idx] > base_total else base_total
    if n_events and totals[peak_idx] <= base_total:
        peak_idx = -1

    # Second replay: category columns at timeline samples and at the peak.
    samples: list[tuple[int, list[int]]] = []
    breakdown = list(live)
    current = list(live)
    for i in range(n_events):
        current[event_cat[i]] += event_delta[i]
        if i == peak_idx:
            breakdown = list(current)
            samples.append((i, list(current)))
        last_of_group = i + 1 == n_events or ev.group[i + 1] != ev.group[i] or ev.op[i + 1] != ev.op[i]
        if last_of_group and i != peak_idx:
            samples.append((i, list(current)))
    timeline = _timeline(samples, ev, phase_of, step_of, module_of, peak_idx)

    # Who holds the peak.
    holders: Counter[tuple[str, str]] = Counter()
    for blk in baseline:
        if blk.ptr not in base_freed:
            holders[(blk.category, blk.module)] += blk.nbytes
    if peak_idx >= 0:
        for b in range(n_blocks):
            if _alive_at(blocks, b, peak_idx + 1):
                holders[(block_cat[b], block_mod[b])] += blocks.size[b]
    peak_holders = tuple(
        Holder(category=c, module=m, bytes=n)
        for (c, m), n in sorted(holders.items(), key=lambda kv: -kv[1])
        if n
    )

    last = meta["steps"] - 1
    layer_rows = _layers(
        layers, ev, blocks, block_cat, block_mod, capture, baseline, totals, base_total, phase_end, last
    )
    activation_bytes = _activation_total(blocks, block_cat, phase_end.get((Phase.FORWARD.value, last)))
    end_alive = sum(
        blocks.size[b]
        for b in range(n_blocks)
        if blocks.free[b] < 0 and block_cat[b] != Category.OPTIMIZER_STATE.value
    )
    base_sum: Counter[str] = Counter()
    for blk in baseline:
        base_sum[blk.category] += blk.nbytes
    return Profile(
        model=meta["model"],
        batch_size=meta["batch_size"],
        mode=meta["mode"],
        device=meta["device"],
        optimizer=meta["optimizer"],
        peak_bytes=peak_bytes,
        peak_phase=phase_of[peak_idx] if peak_idx >= 0 else Phase.SETUP.value,
        peak_step=step_of[peak_idx] if peak_idx >= 0 else 0,
        peak_op=ev.op[peak_idx] if peak_idx >= 0 else "",
        peak_module=module_of[peak_idx] if peak_idx >= 0 else "",
        peak_breakdown={c: breakdown[k] for k, c in enumerate(CATEGORIES)},
        param_bytes=base_sum[Category.PARAMETERS.value],
        buffer_bytes=base_sum[Category.BUFFERS.value],
        input_bytes=base_sum[Category.INPUTS.value],
        grad_bytes=sum(n for _, n in capture.grads.get(last, {}).values()),
        optimizer_state_bytes=sum(n for _, n in capture.optimizer_state.get(last, {}).values()),
        activation_bytes=activation_bytes,
        steps=meta["steps"],
        layers=tuple(layer_rows),
        peak_holders=peak_holders,
        timeline=timeline,
        untracked_bytes=end_alive,
        torch_version=meta["torch_version"],
        created=meta["created"],
        trace=meta.get("trace", "real"),
        precision=meta.get("precision", "fp32"),
        train_loop=meta.get("train_loop", ""),
        assumptions=tuple(meta.get("assumptions", ())),
        program=_program(ev, blocks, block_cat, block_mod, block_dtype, baseline, base_freed, meta),
    )


def _program(
    ev: Events,
    blocks: _Blocks,
    block_cat: list[str],
    block_mod: list[str],
    block_dtype: list[str],
    baseline: list[BaselineBlock],
    base_freed: dict[int, int],
    meta: dict[str, Any],
) -> Program:
    rows = [(-1, base_freed.get(b.ptr, -1), b.nbytes, b.category, b.module, b.dtype) for b in baseline]
    rows += [
        (blocks.alloc[b], blocks.free[b], blocks.size[b], block_cat[b], block_mod[b], block_dtype[b])
        for b in range(len(blocks.alloc))
    ]
    return build_program(
        times=ev.time,
        ops=ev.op,
        blocks=rows,
        phase_ranges=ev.phase_ranges,
        module_ranges=ev.module_ranges,
        node_ranges=ev.node_ranges,
        seq_module=ev.seq_module,
        batch_size=meta["batch_size"],
    )


def _activation_total(blocks: _Blocks, block_cat: list[str], position: int | None) -> int:
    if position is None:
        return 0
    return sum(
        blocks.size[b]
        for b in range(len(block_cat))
        if block_cat[b] == Category.ACTIVATIONS.value and _alive_at(blocks, b, position)
    )


def _rise(times: list[int], totals: np.ndarray, base_total: int, start: int, end: int) -> int:
    """Highest live total during [start, end] above the level just before ``start``."""
    i0, i1 = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
    if i1 <= i0:
        return 0
    before = int(totals[i0 - 1]) if i0 > 0 else base_total
    return max(0, int(totals[i0:i1].max()) - before)


def _layers(
    layers: list[tuple[str, str]],
    ev: Events,
    blocks: _Blocks,
    block_cat: list[str],
    block_mod: list[str],
    capture: Capture,
    baseline: list[BaselineBlock],
    totals: np.ndarray,
    base_total: int,
    phase_end: dict[tuple[str, int], int],
    last: int,
) -> list[LayerStats]:
    params: Counter[str] = Counter()
    buffers: Counter[str] = Counter()
    for blk in baseline:
        if blk.category == Category.PARAMETERS.value:
            params[blk.module] += blk.nbytes
        elif blk.category == Category.BUFFERS.value:
            buffers[blk.module] += blk.nbytes
    grads: Counter[str] = Counter()
    for mod, n in capture.grads.get(last, {}).values():
        grads[mod] += n
    states: Counter[str] = Counter()
    for mod, n in capture.optimizer_state.get(last, {}).values():
        states[mod] += n
    acts: Counter[str] = Counter()
    position = phase_end.get((Phase.FORWARD.value, last))
    if position is not None:
        for b, cat in enumerate(block_cat):
            if cat == Category.ACTIVATIONS.value and _alive_at(blocks, b, position):
                acts[block_mod[b]] += blocks.size[b]
    fwd_temp: Counter[str] = Counter()
    for mod, start, end in ev.module_ranges:
        fwd_temp[mod] = max(fwd_temp[mod], _rise(ev.time, totals, base_total, start, end))
    bwd_temp: Counter[str] = Counter()
    for seq, start, end in ev.node_ranges:
        node_mod = ev.seq_module.get(seq)
        if node_mod is not None:
            bwd_temp[node_mod] = max(bwd_temp[node_mod], _rise(ev.time, totals, base_total, start, end))
    calls = capture.calls.get(last, Counter())
    outputs = capture.output_bytes.get(last, Counter())
    return [
        LayerStats(
            name=name,
            type=type_name,
            calls=calls[name],
            param_bytes=params[name],
            buffer_bytes=buffers[name],
            grad_bytes=grads[name],
            optimizer_state_bytes=states[name],
            activation_bytes=acts[name],
            output_bytes=outputs[name],
            forward_temp_bytes=fwd_temp[name],
            backward_temp_bytes=bwd_temp[name],
        )
        for name, type_name in layers
    ]


def _timeline(
    samples: list[tuple[int, list[int]]],
    ev: Events,
    phase_of: list[str],
    step_of: list[int],
    module_of: list[str],
    peak_idx: int,
) -> Timeline:
    """Keep at most MAX_TIMELINE_POINTS samples: the highest of each stretch, and always the peak."""
    if len(samples) > MAX_TIMELINE_POINTS:
        width = len(samples) / (MAX_TIMELINE_POINTS - 1)
        kept: list[tuple[int, list[int]]] = []
        start = 0
        while start < len(samples):
            stop = max(start + 1, int(round((len(kept) + 1) * width)))
            chunk = samples[start:stop]
            peak_here = [s for s in chunk if s[0] == peak_idx]
            kept.append(peak_here[0] if peak_here else max(chunk, key=lambda s: sum(s[1])))
            start = stop
        samples = kept
    index = tuple(i for i, _ in samples)
    return Timeline(
        index=index,
        step=tuple(step_of[i] for i in index),
        phase=tuple(phase_of[i] for i in index),
        op=tuple(ev.op[i] for i in index),
        module=tuple(module_of[i] for i in index),
        bytes={c: tuple(s[1][k] for s in samples) for k, c in enumerate(CATEGORIES)},
    )

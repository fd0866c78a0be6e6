"""Shared shaping of a profile's timeline for pictures: phase segments, the peak sample, downsampling.

Pure functions over :class:`~memadvise.model.profile.Timeline`; the terminal chart and the HTML report
both use them, so the two pictures agree on where the peak is and where each phase starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from memadvise.model.profile import Timeline

PHASE_SHORT = {"setup": "setup", "forward": "fwd", "backward": "bwd", "optimizer": "opt"}

# Stacking order of the pictures, bottom to top: what lives all step long first, what comes and goes last.
STACK_ORDER: tuple[str, ...] = (
    "parameters",
    "buffers",
    "inputs",
    "optimizer_state",
    "gradients",
    "activations",
    "temporaries",
)


@dataclass(frozen=True)
class Segment:
    """A run of consecutive timeline samples in one phase of one step: positions ``[start, stop)``."""

    step: int
    phase: str
    start: int
    stop: int

    @property
    def label(self) -> str:
        """``fwd 1``: the phase, short, and the step counting from 1."""
        return f"{PHASE_SHORT.get(self.phase, self.phase)} {self.step + 1}"


def phase_segments(timeline: Timeline) -> list[Segment]:
    """Consecutive samples grouped by (step, phase), in trace order."""
    segments: list[Segment] = []
    start = 0
    n = len(timeline)
    for i in range(1, n + 1):
        if i == n or (timeline.step[i], timeline.phase[i]) != (timeline.step[start], timeline.phase[start]):
            segments.append(Segment(timeline.step[start], timeline.phase[start], start, i))
            start = i
    return segments


def stack_categories(timeline: Timeline) -> list[str]:
    """Categories with any live bytes in the timeline, in stacking order (unknown ones last)."""
    known = [c for c in STACK_ORDER if c in timeline.bytes]
    extra = [c for c in timeline.bytes if c not in STACK_ORDER]
    return [c for c in known + extra if any(timeline.bytes[c])]


def peak_sample(timeline: Timeline) -> int | None:
    """Position of the first sample with the highest total (the profile's peak when it is in the trace)."""
    totals = timeline.totals()
    if not totals:
        return None
    best = max(totals)
    return totals.index(best)


def downsample(timeline: Timeline, max_points: int) -> list[int]:
    """Sample positions to draw: at most ``max_points``, the highest of each stretch, the peak always kept.

    The first and last samples are kept too, so the picture spans the whole trace.
    """
    n = len(timeline)
    if n <= max_points:
        return list(range(n))
    if max_points < 3:
        raise ValueError("max_points must be at least 3")
    totals = timeline.totals()
    peak = peak_sample(timeline)
    inner = max_points - 2
    width = (n - 2) / inner
    kept = [0]
    for k in range(inner):
        lo = 1 + int(round(k * width))
        hi = max(lo + 1, 1 + int(round((k + 1) * width)))
        hi = min(hi, n - 1)
        if lo >= hi:
            continue
        if peak is not None and lo <= peak < hi:
            kept.append(peak)
        else:
            kept.append(max(range(lo, hi), key=lambda i: totals[i]))
    kept.append(n - 1)
    return sorted(set(kept))


def column_maxima(timeline: Timeline, columns: int) -> tuple[list[int], list[str], int | None]:
    """The trace squeezed into ``columns``: per column the highest total and the phase there.

    Columns split the operator index range evenly; a column without samples repeats the level before it
    (memory stays where the last operator left it). Returns ``(heights, phases, peak_column)``.
    """
    n = len(timeline)
    if n == 0 or columns <= 0:
        return [], [], None
    totals = timeline.totals()
    first, last = timeline.index[0], timeline.index[-1]
    span = max(1, last - first + 1)
    heights: list[int | None] = [None] * columns
    phases: list[str | None] = [None] * columns
    peak = peak_sample(timeline)
    peak_column = None
    for i in range(n):
        col = min(columns - 1, (timeline.index[i] - first) * columns // span)
        current = heights[col]
        if current is None or totals[i] > current:
            heights[col] = totals[i]
            phases[col] = timeline.phase[i]
        if i == peak:
            peak_column = col
    filled_h: list[int] = []
    filled_p: list[str] = []
    for h, p in zip(heights, phases, strict=True):
        filled_h.append(h if h is not None else (filled_h[-1] if filled_h else 0))
        filled_p.append(p if p is not None else (filled_p[-1] if filled_p else ""))
    return filled_h, filled_p, peak_column


__all__ = [
    "PHASE_SHORT",
    "STACK_ORDER",
    "Segment",
    "column_maxima",
    "downsample",
    "peak_sample",
    "phase_segments",
    "stack_categories",
]

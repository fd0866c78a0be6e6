"""Leaks: memory a training step leaves behind, found from the allocation events of K >= 3 steps.

A block (one allocation) *survives* when it was allocated during step ``k`` and is still alive at the
end of the last traced step. Step 0 is left out: it creates what a training loop keeps for good
(optimizer state, lazily built caches). The last step is left out too: what it allocates may be freed
by the next step (a module keeping ``self.last = x`` replaces it every step, which is no leak). What
survives from steps ``1 .. K-2`` is a leak; its bytes are divided by ``K - 2`` and grouped by the
module and operator that allocated them.

``live_after_step`` is the live total (baseline included) at the end of every step, for the report.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass

from memadvise.capture.allocations import BaselineBlock, Events, event_context, pair_blocks
from memadvise.model.profile import Leak

MIN_LEAK_STEPS = 3


@dataclass(frozen=True)
class LeakScan:
    """What the scan found: the live total after each step and the leaks, largest first."""

    live_after_step: tuple[int, ...]
    leaks: tuple[Leak, ...]

    @property
    def bytes_per_step(self) -> int:
        return sum(leak.bytes_per_step for leak in self.leaks)


def step_ends(ev: Events, steps: int) -> list[int]:
    """Event position (count of events) at the end of each step's last phase range."""
    last_end: dict[int, int] = {}
    for _, step, _, end in ev.phase_ranges:
        last_end[step] = max(end, last_end.get(step, end))
    ends = []
    for step in range(steps):
        found = last_end.get(step)
        ends.append(bisect.bisect_right(ev.time, found) if found is not None else len(ev.time))
    return ends


def scan_leaks(ev: Events, steps: int, baseline: list[BaselineBlock]) -> LeakScan:
    """Find the blocks that survive from one step to the end of every later step (see module docstring)."""
    blocks = pair_blocks(ev)
    _, step_of, module_of = event_context(ev)
    ends = step_ends(ev, steps)
    live = sum(b.nbytes for b in baseline)
    base = {b.ptr: b.nbytes for b in baseline}
    live_after: list[int] = []
    position = 0
    for end in ends:
        for i in range(position, end):
            if blocks.of_event[i] >= 0:
                live += ev.size[i]
            elif ev.ptr[i] in base:  # a baseline storage freed (once)
                live -= base.pop(ev.ptr[i])
        position = max(position, end)
        live_after.append(live)
    if steps < MIN_LEAK_STEPS:
        return LeakScan(tuple(live_after), ())
    last_end = ends[-1]
    counted = steps - 2
    by_origin: Counter[tuple[str, str]] = Counter()
    count: Counter[tuple[str, str]] = Counter()
    for b, alloc in enumerate(blocks.alloc):
        if not 1 <= step_of[alloc] <= steps - 2 or alloc >= ends[step_of[alloc]]:
            continue
        free = blocks.free[b]
        if free < 0 or free >= last_end:
            origin = (module_of[alloc], ev.op[alloc])
            by_origin[origin] += blocks.size[b]
            count[origin] += 1
    leaks = tuple(
        Leak(
            bytes_per_step=round(n / counted),
            module=module,
            op=op,
            tensors_per_step=count[(module, op)] / counted,
        )
        for (module, op), n in sorted(by_origin.items(), key=lambda kv: -kv[1])
        if round(n / counted) > 0
    )
    return LeakScan(tuple(live_after), leaks)

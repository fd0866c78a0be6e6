"""Reserved memory: an estimate's allocations replayed through the model of PyTorch's caching allocator.

The analyzer's blocks (allocation and free times, sizes) are turned into the allocator's request
sequence; :func:`memadvise.planner.cuda_allocator.simulate` rounds each request to 512 bytes, serves
small ones from 2 MiB segments and large ones from 20 MiB (or rounded) segments, splits and caches
blocks, and reports the reserved peak — what ``torch.cuda.max_memory_reserved()`` would show, and what
``nvidia-smi`` shows on top of the context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memadvise.analyzer.blocks import Blocks
from memadvise.planner.cuda_allocator import simulate


@dataclass(frozen=True)
class Reservation:
    allocated_bytes: int
    reserved_bytes: int
    fragmentation: float


def reserved(blocks: Blocks, *, expandable_segments: bool = False) -> Reservation:
    """The caching allocator's allocated and reserved peaks for these blocks."""
    sizes = np.rint(blocks.size).astype(np.int64)
    keep = sizes > 0
    ids = np.flatnonzero(keep)
    times = np.concatenate([blocks.alloc[ids], blocks.free[ids]])
    which = np.concatenate([ids, ids])
    deltas = np.concatenate([sizes[ids], -sizes[ids]])
    finite = np.isfinite(times)
    order = np.lexsort((deltas[finite] < 0, times[finite]))
    events = zip(which[finite][order].tolist(), deltas[finite][order].tolist(), strict=True)
    result = simulate(events, expandable_segments=expandable_segments)
    return Reservation(
        allocated_bytes=result.peak_allocated,
        reserved_bytes=result.peak_reserved,
        fragmentation=result.fragmentation,
    )

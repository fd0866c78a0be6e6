"""Reserved memory: an estimate's allocations replayed through the model of PyTorch's caching allocator.

The analyzer's blocks (allocation and free times, sizes) are turned into the allocator's request
sequence; :func:`memadvise.planner.cuda_allocator.simulate` rounds each request to 512 bytes, serves
small ones from 2 MiB segments and large ones from 20 MiB (or rounded) segments, splits and caches
blocks, and reports the reserved peak — what ``torch.cuda.max_memory_reserved()`` would show, and what
``nvidia-smi`` shows on top of the context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from memadvise.analyzer.blocks import Blocks
from memadvise.planner.cuda_allocator import SimulatedOutOfMemory, simulate


@dataclass(frozen=True)
class Reservation:
    """The allocator model's peaks. With a capacity, ``out_of_memory`` says the replay failed even after
    the allocator released its cached segments (as PyTorch does before raising); ``reserved_bytes`` is
    then what it held at the failure plus the segment it could not get."""

    allocated_bytes: int
    reserved_bytes: int
    fragmentation: float
    out_of_memory: bool = False


@dataclass(frozen=True)
class AllocatorSettings:
    """The settings of ``PYTORCH_CUDA_ALLOC_CONF`` the allocator model follows."""

    expandable_segments: bool = False
    max_split_size: int | None = None  # bytes

    def describe(self) -> str:
        parts = ["expandable_segments:True"] if self.expandable_segments else []
        if self.max_split_size is not None:
            parts.append(f"max_split_size_mb:{self.max_split_size // 2**20}")
        return ",".join(parts)


def allocator_settings(conf: str | None = None) -> AllocatorSettings:
    """``PYTORCH_CUDA_ALLOC_CONF`` (``conf``, else the environment's) as the model's settings.

    ``expandable_segments`` and ``max_split_size_mb`` are followed; other keys (for instance
    ``garbage_collection_threshold``, ``roundup_power2_divisions``) are not modelled and are ignored.
    A malformed value is ignored as PyTorch would reject it before any allocation."""
    text = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "") if conf is None else conf
    expandable, split = False, None
    for item in text.split(","):
        key, _, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if key == "expandable_segments":
            expandable = value.lower() == "true"
        elif key == "max_split_size_mb" and value.isdigit():
            split = int(value) * 2**20
    return AllocatorSettings(expandable, split)


def reserved(
    blocks: Blocks,
    *,
    expandable_segments: bool | None = None,
    settings: AllocatorSettings | None = None,
    capacity: int | None = None,
) -> Reservation:
    """The caching allocator's allocated and reserved peaks for these blocks, under ``settings``
    (default: ``PYTORCH_CUDA_ALLOC_CONF`` from the environment; ``expandable_segments`` overrides).

    With ``capacity`` (the bytes the allocator may reserve), a request that would pass it first makes
    the model give back cached segments with no live block and retry, as PyTorch's allocator does
    (``release_cached_blocks``) before it raises out of memory; a replay that still fails is returned
    with ``out_of_memory`` set."""
    settings = settings if settings is not None else allocator_settings()
    if expandable_segments is not None:
        settings = AllocatorSettings(expandable_segments, settings.max_split_size)
    sizes = np.rint(blocks.size).astype(np.int64)
    keep = sizes > 0
    ids = np.flatnonzero(keep)
    times = np.concatenate([blocks.alloc[ids], blocks.free[ids]])
    which = np.concatenate([ids, ids])
    deltas = np.concatenate([sizes[ids], -sizes[ids]])
    finite = np.isfinite(times)
    order = np.lexsort((deltas[finite] < 0, times[finite]))
    events = zip(which[finite][order].tolist(), deltas[finite][order].tolist(), strict=True)
    try:
        result = simulate(
            events,
            expandable_segments=settings.expandable_segments,
            max_split_size=settings.max_split_size,
            capacity=capacity,
        )
    except SimulatedOutOfMemory as oom:
        return Reservation(
            allocated_bytes=oom.allocated + oom.requested,
            reserved_bytes=oom.reserved + oom.requested,
            fragmentation=0.0,
            out_of_memory=True,
        )
    fragmentation = result.fragmentation
    if capacity is not None and result.peak_reserved:
        # Released and refilled caches make the moment reserved memory peaked say little; the share of
        # the peak reservation the allocated peak leaves unused is what a user can act on.
        fragmentation = max(0.0, 1 - result.peak_allocated / result.peak_reserved)
    return Reservation(
        allocated_bytes=result.peak_allocated,
        reserved_bytes=result.peak_reserved,
        fragmentation=fragmentation,
    )

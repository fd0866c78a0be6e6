"""A model of PyTorch's CUDA caching allocator: from a sequence of allocations and frees to reserved memory.

What ``torch.cuda.max_memory_allocated()`` reports is the sum of live blocks; what decides whether a run
fits on a card is ``max_memory_reserved()``: the segments the allocator obtained from ``cudaMalloc`` and
keeps cached. The gap between the two is fragmentation, and it follows from a handful of rules in
``c10/cuda/CUDACachingAllocator.cpp``. This module replays allocation events under those rules, without
torch and without a GPU. Each rule below carries the name of the constant or function in PyTorch.

Rules modelled
--------------
* **Rounding** (``round_size``, ``kMinBlockSize`` = 512): a request is rounded up to a multiple of
  512 bytes (at least 512).
* **Two pools** (``get_pool``, ``kSmallSize`` = 1 MiB): rounded requests of at most 1 MiB use the small
  pool, larger ones the large pool. Blocks never move between pools.
* **Segment sizes** (``get_allocation_size``): when no cached block fits, a small request gets a new
  2 MiB segment (``kSmallBuffer``); a large request under 10 MiB (``kMinLargeAlloc``) a 20 MiB segment
  (``kLargeBuffer``); a request of 10 MiB or more a segment of its own size rounded up to 2 MiB
  (``kRoundLarge``).
* **Best fit** (``get_free_block``): the smallest free block of the pool that is large enough (ties: the
  lowest address), over all cached segments.
* **Splitting** (``should_split``): the block found is split, and the rest returned to the pool, when the
  remainder is at least 512 bytes in the small pool, or more than 1 MiB (``kSmallSize``) in the large
  pool. Otherwise the whole block is handed out — and counted as allocated, as PyTorch's
  ``allocated_bytes`` counts it.
* **Coalescing** (``free_block`` / ``try_merge_blocks``): a freed block merges with free neighbours of
  the same segment.
* **Caching**: segments are never given back, except by ``empty_cache()`` (``release_cached_blocks``:
  every cached segment with no live block) or when memory runs out (see ``capacity``).
* **max_split_size** (``PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb``): blocks of that size or more are
  not split for requests under it, and serve a request of that size or more only when they are less
  than 20 MiB (``kLargeBuffer``) larger than it. PyTorch raises values under 20 MiB to 20 MiB; so does
  this model.
* **Out of memory** (``malloc``): with a ``capacity``, a new segment that would exceed it first makes the
  allocator free cached oversize blocks (``release_available_cached_blocks``, only with
  ``max_split_size``), then every cached segment with no live block (``release_cached_blocks``), then
  fail — :class:`SimulatedOutOfMemory`.
* **Expandable segments** (``expandable_segments:True``, ``ExpandableSegment``): each pool has one
  segment of virtual address space whose physical memory is mapped at its end on demand, in pages of
  2 MiB (``kSmallBuffer``) for the small pool and 20 MiB (``kLargeBuffer``) for the large pool — the
  source says "we use 2MiB pages for our small pool and 20MiB pages for our large pool". A request first
  takes the best-fitting free block that is not the free end of the segment; failing that, it extends
  the free end, mapping just enough pages. Any remainder of at least 512 bytes is split off, in both
  pools. Reserved memory is then about the high-water mark of the segment's used address range, rounded
  up to a page.

Left out
--------
Multiple streams (blocks are reused only on their stream: one stream is assumed), ``record_stream``
and cross-stream events, CUDA-graph private pools, ``roundup_power2_divisions``,
``garbage_collection_threshold``, ``per_process_memory_fraction``, free-memory callbacks, and, with
expandable segments, the unmapping of free pages inside a segment under memory pressure (only free pages
at the end are unmapped). Memory outside the allocator (CUDA context, NCCL, cuDNN's own buffers) is not
part of this model either; :mod:`memadvise.planner.gpus` estimates the context.

Cost: the free blocks of each pool sit in a list sorted by (size, address), searched with ``bisect``;
one event is O(log n) plus a list insertion (a memmove), so 100 000 events replay in well under a second.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from memadvise.errors import MemadviseError

MiB = 2**20

MIN_BLOCK_SIZE = 512  # kMinBlockSize: every request is rounded to a multiple of this
SMALL_SIZE = 1 * MiB  # kSmallSize: the largest request of the small pool
SMALL_BUFFER = 2 * MiB  # kSmallBuffer: segment size of the small pool (and its expandable page size)
LARGE_BUFFER = 20 * MiB  # kLargeBuffer: segment for large requests under kMinLargeAlloc
MIN_LARGE_ALLOC = 10 * MiB  # kMinLargeAlloc: from here on a request gets a segment of its own size
ROUND_LARGE = 2 * MiB  # kRoundLarge: the rounding of such segments

_EXPANDABLE_SPAN = 2**50  # virtual address space given to one expandable segment (never exhausted here)


class SimulatedOutOfMemory(MemadviseError):
    """The simulated allocator could not find room for a request within ``capacity``."""

    def __init__(self, requested: int, allocated: int, reserved: int, capacity: int) -> None:
        self.requested = requested
        self.allocated = allocated
        self.reserved = reserved
        self.capacity = capacity
        super().__init__(
            f"simulated CUDA out of memory: a request of {requested} bytes does not fit "
            f"({allocated} bytes allocated, {reserved} reserved, capacity {capacity})"
        )


@dataclass(frozen=True)
class AllocatorResult:
    """What a replay found (bytes).

    ``peak_allocated``: highest sum of live blocks (requests rounded to 512 B, or the whole cached block
    when it was handed out unsplit), as ``torch.cuda.max_memory_allocated()`` counts it.
    ``peak_reserved``: highest memory held in segments, as ``torch.cuda.max_memory_reserved()``.
    ``final_reserved``: reserved after the last event. ``segments``: number of segments when reserved
    first reached its peak (with expandable segments: the number of expandable segments, at most one per
    pool). ``fragmentation``: ``1 - allocated / reserved`` while reserved was at its peak, taking the
    highest allocated seen at that reserved level — the share of the peak reservation no live block
    ever used (0.0 when nothing was reserved).
    """

    peak_allocated: int
    peak_reserved: int
    final_reserved: int
    segments: int
    fragmentation: float


def round_request(size: int) -> int:
    """``round_size``: a request rounded up to a multiple of ``kMinBlockSize`` (512 B), at least 512 B."""
    if size < MIN_BLOCK_SIZE:
        return MIN_BLOCK_SIZE
    return -(-size // MIN_BLOCK_SIZE) * MIN_BLOCK_SIZE


def segment_size(size: int) -> int:
    """``get_allocation_size``: the segment ``cudaMalloc``'d for a request of ``size`` bytes when no
    cached block fits: 2 MiB (``kSmallBuffer``) for requests up to 1 MiB (``kSmallSize``), 20 MiB
    (``kLargeBuffer``) under 10 MiB (``kMinLargeAlloc``), else the request rounded up to 2 MiB
    (``kRoundLarge``). ``size`` is rounded with :func:`round_request` first."""
    size = round_request(size)
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


class _Segment:
    """One cudaMalloc'd segment, or one expandable segment (``mapped`` bytes of it backed by memory)."""

    __slots__ = ("base", "mapped", "last", "page")

    def __init__(self, base: int, mapped: int, page: int) -> None:
        self.base = base
        self.mapped = mapped  # bytes of physical memory behind the segment
        self.last: _Block | None = None  # the block at the highest address
        self.page = page  # mapping granularity (expandable segments only)


class _Block:
    __slots__ = ("addr", "size", "prev", "next", "allocated", "segment", "small")

    def __init__(self, addr: int, size: int, segment: _Segment, small: bool) -> None:
        self.addr = addr
        self.size = size
        self.prev: _Block | None = None
        self.next: _Block | None = None
        self.allocated = False
        self.segment = segment
        self.small = small


class _Pool:
    """The free blocks of one pool, sorted by (size, address) as PyTorch's ``BlockComparatorSize``."""

    __slots__ = ("small", "keys", "blocks", "expandable")

    def __init__(self, small: bool) -> None:
        self.small = small
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[int, _Block] = {}
        self.expandable: _Segment | None = None

    def add(self, block: _Block) -> None:
        bisect.insort(self.keys, (block.size, block.addr))
        self.blocks[block.addr] = block

    def remove(self, block: _Block) -> None:
        key = (block.size, block.addr)
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:  # pragma: no cover - internal invariant
            raise AssertionError("free block missing from its pool")
        del self.keys[i]
        del self.blocks[block.addr]


class CachingAllocatorModel:
    """The allocator's state, driven one call at a time (:func:`simulate` drives it from events).

    ``expandable_segments`` and ``max_split_size`` (bytes) mirror ``PYTORCH_CUDA_ALLOC_CONF``;
    ``capacity`` (bytes), if given, is the memory the allocator may reserve before it must release cached
    segments and, failing that, raise :class:`SimulatedOutOfMemory`.
    """

    def __init__(
        self,
        *,
        expandable_segments: bool = False,
        max_split_size: int | None = None,
        capacity: int | None = None,
    ) -> None:
        self.expandable_segments = expandable_segments
        self.max_split_size = None if max_split_size is None else max(int(max_split_size), LARGE_BUFFER)
        self.capacity = capacity
        self._small = _Pool(small=True)
        self._large = _Pool(small=False)
        self._live: dict[Hashable, _Block] = {}
        self._segments: set[_Segment] = set()
        self._next_addr = 1 << 20  # fake device addresses; segments never overlap
        self.allocated = 0
        self.reserved = 0
        self.peak_allocated = 0
        self.peak_reserved = 0
        self._segments_at_peak = 0
        self._allocated_at_peak = 0

    # -- public calls ------------------------------------------------------------------------------

    def malloc(self, block_id: Hashable, size: int) -> int:
        """Allocate ``size`` bytes (> 0) for ``block_id``; returns the bytes of the block handed out."""
        if size <= 0:
            raise ValueError(f"an allocation needs a positive size, not {size}")
        if block_id in self._live:
            raise ValueError(f"block {block_id!r} is allocated twice without a free")
        rsize = round_request(size)
        pool = self._small if rsize <= SMALL_SIZE else self._large
        block = self._get_free_block(pool, rsize)
        if block is None:
            block = self._new_memory(pool, rsize)
        if self._should_split(block, rsize):
            block = self._split(pool, block, rsize)
        block.allocated = True
        self._live[block_id] = block
        self.allocated += block.size
        self._record()
        return block.size

    def free(self, block_id: Hashable) -> None:
        """Free ``block_id``'s block: it returns to its pool, merged with free neighbours."""
        try:
            block = self._live.pop(block_id)
        except KeyError:
            raise ValueError(f"block {block_id!r} is freed but was not allocated") from None
        self.allocated -= block.size
        block.allocated = False
        pool = self._small if block.small else self._large
        for neighbour in (block.prev, block.next):
            if neighbour is not None and not neighbour.allocated:
                pool.remove(neighbour)
                if neighbour is block.prev:
                    block.addr = neighbour.addr
                    block.prev = neighbour.prev
                    if block.prev is not None:
                        block.prev.next = block
                else:
                    block.next = neighbour.next
                    if block.next is not None:
                        block.next.prev = block
                block.size += neighbour.size
        if block.next is None:
            block.segment.last = block
        pool.add(block)

    def empty_cache(self) -> None:
        """``torch.cuda.empty_cache()``: give back every cached segment that holds no live block (with
        expandable segments: the free pages at the end of each segment)."""
        self._release_cached()

    def result(self) -> AllocatorResult:
        """The figures so far as an :class:`AllocatorResult`."""
        fragmentation = 0.0
        if self.peak_reserved:
            fragmentation = 1.0 - self._allocated_at_peak / self.peak_reserved
        return AllocatorResult(
            peak_allocated=self.peak_allocated,
            peak_reserved=self.peak_reserved,
            final_reserved=self.reserved,
            segments=self._segments_at_peak,
            fragmentation=fragmentation,
        )

    # -- rules -------------------------------------------------------------------------------------

    def _record(self) -> None:
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        if self.reserved > self.peak_reserved:
            self.peak_reserved = self.reserved
            self._segments_at_peak = len(self._segments)
            self._allocated_at_peak = self.allocated
        elif self.reserved == self.peak_reserved:
            self._allocated_at_peak = max(self._allocated_at_peak, self.allocated)

    def _is_free_end(self, block: _Block) -> bool:
        """The free block at the end of an expandable segment (it can grow into unmapped pages)."""
        return self.expandable_segments and block.next is None

    def _get_free_block(self, pool: _Pool, rsize: int) -> _Block | None:
        """``get_free_block``: best fit, with the max_split_size and expandable-segment exceptions."""
        keys = pool.keys
        i = bisect.bisect_left(keys, (rsize, -1))
        if i == len(keys):
            return None
        block = pool.blocks[keys[i][1]]
        if self._is_free_end(block) and i + 1 < len(keys):
            # PyTorch ranks the free end by the size it could grow to, i.e. last: any other free block
            # that fits is preferred to it.
            block = pool.blocks[keys[i + 1][1]]
        limit = self.max_split_size
        if limit is not None:
            if rsize < limit and block.size >= limit:
                return None
            if rsize >= limit and block.size >= rsize + LARGE_BUFFER:
                return None
        pool.remove(block)
        return block

    def _should_split(self, block: _Block, rsize: int) -> bool:
        """``should_split``: small pool or expandable segments: remainder >= 512 B; large pool:
        remainder > 1 MiB and the request under max_split_size."""
        remaining = block.size - rsize
        if block.small or self.expandable_segments:
            return remaining >= MIN_BLOCK_SIZE
        return (self.max_split_size is None or rsize < self.max_split_size) and remaining > SMALL_SIZE

    def _split(self, pool: _Pool, block: _Block, rsize: int) -> _Block:
        """Hand out the first ``rsize`` bytes of ``block``; the rest stays in the pool as a free block."""
        head = _Block(block.addr, rsize, block.segment, block.small)
        head.prev = block.prev
        if head.prev is not None:
            head.prev.next = head
        head.next = block
        block.prev = head
        block.addr += rsize
        block.size -= rsize
        pool.add(block)
        return head

    def _new_memory(self, pool: _Pool, rsize: int) -> _Block:
        """``alloc_block`` with its out-of-memory retries: a new segment, or more pages of the pool's
        expandable segment; the returned block is not in the pool."""
        grow = self._expandable_growth if self.expandable_segments else self._segment_growth
        if self._fits(grow(pool, rsize)):
            return self._grow(pool, rsize)
        if self.max_split_size is not None and not self.expandable_segments:
            self._release_available(pool, rsize)
            if self._fits(grow(pool, rsize)):
                return self._grow(pool, rsize)
        self._release_cached()
        if self._fits(grow(pool, rsize)):
            return self._grow(pool, rsize)
        assert self.capacity is not None
        raise SimulatedOutOfMemory(rsize, self.allocated, self.reserved, self.capacity)

    def _fits(self, extra: int) -> bool:
        return self.capacity is None or self.reserved + extra <= self.capacity

    def _segment_growth(self, pool: _Pool, rsize: int) -> int:
        return segment_size(rsize)

    def _expandable_growth(self, pool: _Pool, rsize: int) -> int:
        """Bytes to map so that the free end of the pool's expandable segment holds ``rsize``."""
        seg = pool.expandable
        page = SMALL_BUFFER if pool.small else LARGE_BUFFER
        end = seg.last if seg is not None else None
        free_end = end.size if end is not None and not end.allocated else 0
        return -(-(rsize - free_end) // page) * page

    def _grow(self, pool: _Pool, rsize: int) -> _Block:
        if not self.expandable_segments:
            size = segment_size(rsize)
            segment = _Segment(self._next_addr, size, size)
            self._next_addr += size
            block = _Block(segment.base, size, segment, pool.small)
            segment.last = block
            self._segments.add(segment)
            self.reserved += size
            return block
        extra = self._expandable_growth(pool, rsize)
        seg = pool.expandable
        if seg is None:
            seg = _Segment(self._next_addr, 0, SMALL_BUFFER if pool.small else LARGE_BUFFER)
            self._next_addr += _EXPANDABLE_SPAN
            pool.expandable = seg
            self._segments.add(seg)
        end = seg.last
        if end is not None and not end.allocated:
            pool.remove(end)
            end.size += extra
            block = end
        else:
            block = _Block(seg.base + seg.mapped, extra, seg, pool.small)
            block.prev = end
            if end is not None:
                end.next = block
            seg.last = block
        seg.mapped += extra
        self.reserved += extra
        return block

    def _release_segment(self, pool: _Pool, block: _Block) -> None:
        pool.remove(block)
        self._segments.discard(block.segment)
        self.reserved -= block.size

    def _release_available(self, pool: _Pool, rsize: int) -> None:
        """``release_available_cached_blocks``: free the smallest cached unsplit block of at least
        max(request, max_split_size); failing that, the largest oversize ones until enough is freed."""
        assert self.max_split_size is not None
        want = max(rsize, self.max_split_size)
        whole = [
            pool.blocks[addr]
            for size, addr in pool.keys
            if size >= self.max_split_size
            and pool.blocks[addr].prev is None
            and pool.blocks[addr].next is None
        ]
        fitting = [b for b in whole if b.size >= want]
        if fitting:
            self._release_segment(pool, fitting[0])
            return
        released = 0
        for block in reversed(whole):
            if released >= want:
                break
            released += block.size
            self._release_segment(pool, block)

    def _release_cached(self) -> None:
        """``release_cached_blocks``: give back whole free segments (expandable: free end pages)."""
        for pool in (self._small, self._large):
            if self.expandable_segments:
                seg = pool.expandable
                end = seg.last if seg is not None else None
                if seg is None or end is None or end.allocated:
                    continue
                start = end.addr - seg.base
                keep = -(-start // seg.page) * seg.page  # pages partly used stay mapped
                unmap = seg.mapped - keep
                if unmap <= 0:
                    continue
                pool.remove(end)
                end.size -= unmap
                seg.mapped -= unmap
                self.reserved -= unmap
                if end.size:
                    pool.add(end)
                else:
                    seg.last = end.prev
                    if end.prev is not None:
                        end.prev.next = None
                if seg.mapped == 0:
                    pool.expandable = None
                    self._segments.discard(seg)
                continue
            for block in [b for b in pool.blocks.values() if b.prev is None and b.next is None]:
                self._release_segment(pool, block)


def simulate(
    events: Iterable[tuple[Hashable, int]],
    *,
    expandable_segments: bool = False,
    max_split_size: int | None = None,
    capacity: int | None = None,
) -> AllocatorResult:
    """Replay ``events`` through :class:`CachingAllocatorModel` and return what it reserved.

    Each event is ``(block_id, size)``: ``size > 0`` allocates ``size`` bytes for ``block_id`` (any
    hashable id, unique among live blocks); ``size <= 0`` frees ``block_id`` (PyTorch never sends
    zero-byte tensors to the allocator, so a zero size can only mean a free). Blocks still live at the end
    are simply left allocated. ``max_split_size`` is in bytes (``max_split_size_mb`` * 2**20);
    ``capacity`` makes the model release cached segments, then raise :class:`SimulatedOutOfMemory`, when
    reserved memory would exceed it. For ``empty_cache`` calls, drive the model directly.
    """
    model = CachingAllocatorModel(
        expandable_segments=expandable_segments, max_split_size=max_split_size, capacity=capacity
    )
    malloc, free = model.malloc, model.free
    for block_id, size in events:
        if size > 0:
            malloc(block_id, size)
        else:
            free(block_id)
    return model.result()

"""The caching-allocator model against the rules of c10/cuda/CUDACachingAllocator.cpp (crafted sequences)."""

from __future__ import annotations

import random

import pytest

from memadvise.planner.cuda_allocator import (
    LARGE_BUFFER,
    SMALL_BUFFER,
    CachingAllocatorModel,
    SimulatedOutOfMemory,
    round_request,
    segment_size,
    simulate,
)

KiB = 2**10
MiB = 2**20


def alloc(block_id: int, size: int) -> tuple[int, int]:
    return (block_id, size)


def free(block_id: int) -> tuple[int, int]:
    return (block_id, 0)


@pytest.mark.parametrize(
    ("size", "rounded"),
    [(1, 512), (511, 512), (512, 512), (513, 1024), (1000, 1024), (MiB, MiB), (MiB + 1, MiB + 512)],
)
def test_round_request(size: int, rounded: int) -> None:
    assert round_request(size) == rounded


@pytest.mark.parametrize(
    ("size", "segment"),
    [
        (1, 2 * MiB),
        (MiB, 2 * MiB),  # kSmallSize is still small
        (MiB + 1, 20 * MiB),
        (10 * MiB - 512, 20 * MiB),
        (10 * MiB, 10 * MiB),  # kMinLargeAlloc: own segment
        (11 * MiB, 12 * MiB),
        (30 * MiB, 30 * MiB),
        (30 * MiB + 1, 32 * MiB),
    ],
)
def test_segment_size(size: int, segment: int) -> None:
    assert segment_size(size) == segment


def test_one_byte_reserves_a_small_segment() -> None:
    r = simulate([alloc(1, 1)])
    assert (r.peak_allocated, r.peak_reserved, r.segments) == (512, 2 * MiB, 1)


def test_two_small_allocations_share_one_segment() -> None:
    r = simulate([alloc(1, 600 * KiB), alloc(2, 600 * KiB)])
    assert r.peak_reserved == 2 * MiB
    assert r.segments == 1
    assert r.peak_allocated == 1200 * KiB


def test_a_third_small_allocation_that_does_not_fit_opens_a_second_segment() -> None:
    r = simulate([alloc(1, 700 * KiB), alloc(2, 700 * KiB), alloc(3, 700 * KiB)])
    assert r.peak_reserved == 4 * MiB
    assert r.segments == 2


def test_medium_allocations_share_a_20_mib_segment() -> None:
    r = simulate([alloc(1, 5 * MiB), alloc(2, 5 * MiB)])
    assert r.peak_reserved == LARGE_BUFFER
    assert r.segments == 1
    assert r.fragmentation == pytest.approx(0.5)


def test_large_allocation_gets_its_own_rounded_segment() -> None:
    r = simulate([alloc(1, 30 * MiB)])
    assert r.peak_reserved == 30 * MiB
    r = simulate([alloc(1, 29 * MiB + 1)])
    assert r.peak_reserved == 30 * MiB
    # the remainder (just under 1 MiB) is not split off, so the whole segment counts as allocated
    assert r.peak_allocated == 30 * MiB


def test_small_and_large_pools_do_not_share() -> None:
    # a free 20 MiB segment of the large pool does not serve a small request
    r = simulate([alloc(1, 5 * MiB), free(1), alloc(2, 4 * KiB)])
    assert r.peak_reserved == LARGE_BUFFER + SMALL_BUFFER


def test_freed_block_is_reused_for_a_smaller_request() -> None:
    r = simulate([alloc(1, 40 * MiB), free(1), alloc(2, 30 * MiB)])
    assert r.peak_reserved == 40 * MiB
    assert r.final_reserved == 40 * MiB  # nothing is given back without empty_cache


def test_large_remainder_of_one_mib_or_less_is_not_split() -> None:
    # 40 MiB cached block, 39.5 MiB request: remainder 0.5 MiB <= kSmallSize -> whole block handed out
    model = CachingAllocatorModel()
    model.malloc(1, 40 * MiB)
    model.free(1)
    assert model.malloc(2, 39 * MiB + 512 * KiB) == 40 * MiB
    assert model.allocated == 40 * MiB
    # ... and so a second request needs a new segment
    model.malloc(3, 256 * KiB)
    model.malloc(4, 12 * MiB)
    assert model.reserved == 40 * MiB + 2 * MiB + 12 * MiB


def test_large_remainder_over_one_mib_is_split_and_reusable() -> None:
    model = CachingAllocatorModel()
    model.malloc(1, 40 * MiB)
    model.free(1)
    assert model.malloc(2, 30 * MiB) == 30 * MiB  # split: 10 MiB stay cached
    model.malloc(3, 10 * MiB)  # fits in the remainder
    assert model.reserved == 40 * MiB


def test_small_pool_splits_down_to_512_bytes() -> None:
    model = CachingAllocatorModel()
    model.malloc(1, MiB)
    model.malloc(2, MiB - 512)
    model.malloc(3, 1)  # the last 512 bytes of the segment
    assert model.reserved == 2 * MiB
    assert model.allocated == 2 * MiB
    model.malloc(4, 1)
    assert model.reserved == 4 * MiB


def test_best_fit_picks_the_smallest_free_block() -> None:
    model = CachingAllocatorModel()
    for i, size in enumerate([12 * MiB, 16 * MiB, 14 * MiB]):
        model.malloc(i, size)
    for i in range(3):
        model.free(i)
    # 13 MiB fits 14 and 16 MiB blocks; best fit takes 14 (remainder 1 MiB: not split -> 14 MiB handed out)
    assert model.malloc("x", 13 * MiB) == 14 * MiB
    assert model.malloc("y", 12 * MiB) == 12 * MiB
    assert model.malloc("z", 15 * MiB) == 16 * MiB
    assert model.reserved == 42 * MiB


def test_freed_neighbours_coalesce() -> None:
    # three 6 MiB blocks in one 20 MiB segment; freeing all three lets one 18 MiB request fit
    events = [
        alloc(1, 6 * MiB),
        alloc(2, 6 * MiB),
        alloc(3, 6 * MiB),
        free(1),
        free(3),
        free(2),
        alloc(4, 18 * MiB),
    ]
    r = simulate(events)
    assert r.peak_reserved == LARGE_BUFFER


def test_without_coalescing_neighbours_a_hole_is_unusable() -> None:
    # freeing blocks 1 and 3 (not adjacent) leaves two 6 MiB holes; a 12 MiB request needs a new segment
    events = [alloc(1, 6 * MiB), alloc(2, 6 * MiB), alloc(3, 6 * MiB), free(1), free(3), alloc(4, 12 * MiB)]
    r = simulate(events)
    assert r.peak_reserved == LARGE_BUFFER + 12 * MiB
    assert r.segments == 2


def fragmenting_pattern() -> list[tuple[int, int]]:
    """Growing 11..30 MiB tensors, each freed after the next is made: every request needs a new segment,
    because the cached ones are all too small."""
    events = []
    for i in range(20):
        events.append(alloc(i, (11 + i) * MiB))
        if i:
            events.append(free(i - 1))
    return events


def test_fragmentation_of_growing_requests() -> None:
    r = simulate(fragmenting_pattern())
    assert r.peak_reserved == sum(segment_size((11 + i) * MiB) for i in range(20))
    # odd sizes get segments rounded up to 2 MiB, handed out whole (remainder under 1 MiB)
    assert r.peak_allocated == segment_size(29 * MiB) + segment_size(30 * MiB)
    assert r.fragmentation == pytest.approx(1 - r.peak_allocated / r.peak_reserved)
    assert r.fragmentation > 0.8


def test_expandable_segments_reserve_less_on_a_fragmenting_pattern() -> None:
    default = simulate(fragmenting_pattern())
    expandable = simulate(fragmenting_pattern(), expandable_segments=True)
    assert expandable.peak_reserved <= default.peak_reserved
    assert expandable.peak_reserved < 0.5 * default.peak_reserved
    assert expandable.peak_reserved % LARGE_BUFFER == 0  # the large pool maps 20 MiB pages
    assert expandable.segments == 1


def test_expandable_segments_grow_by_pages() -> None:
    model = CachingAllocatorModel(expandable_segments=True)
    model.malloc(1, 1)
    assert model.reserved == 2 * MiB  # small pool: 2 MiB pages
    model.malloc(2, 5 * MiB)
    assert model.reserved == 2 * MiB + 20 * MiB  # large pool: 20 MiB pages
    model.malloc(3, 15 * MiB)  # fits in the mapped end
    assert model.reserved == 22 * MiB
    model.malloc(4, 1 * MiB + 512)  # the end has 0 bytes left: one more page
    assert model.reserved == 42 * MiB


def test_expandable_reserved_tracks_the_allocated_high_water_mark() -> None:
    events = [alloc(i, (3 + i % 7) * MiB + 1000) for i in range(50)]
    r = simulate(events, expandable_segments=True)
    assert r.peak_reserved == -(-r.peak_allocated // LARGE_BUFFER) * LARGE_BUFFER


def test_empty_cache_returns_free_segments_only() -> None:
    model = CachingAllocatorModel()
    model.malloc(1, 40 * MiB)
    model.malloc(2, 5 * MiB)
    model.malloc(3, 5 * MiB)
    model.free(1)
    model.free(2)
    model.empty_cache()
    assert model.reserved == LARGE_BUFFER  # block 3 keeps its segment; the 40 MiB one goes back
    model.free(3)
    model.empty_cache()
    assert model.reserved == 0
    result = model.result()
    assert (result.peak_reserved, result.final_reserved) == (60 * MiB, 0)


def test_empty_cache_with_expandable_segments_unmaps_free_end_pages() -> None:
    model = CachingAllocatorModel(expandable_segments=True)
    model.malloc(1, 30 * MiB)
    model.malloc(2, 30 * MiB)
    assert model.reserved == 60 * MiB
    model.free(2)
    model.empty_cache()
    assert model.reserved == 40 * MiB  # the page holding the end of block 1 stays mapped


def test_max_split_size_keeps_oversize_blocks_whole() -> None:
    events = [alloc(1, 100 * MiB), free(1), alloc(2, 10 * MiB)]
    assert simulate(events).peak_reserved == 100 * MiB  # default: the cached block is split
    r = simulate(events, max_split_size=64 * MiB)
    assert r.peak_reserved == 110 * MiB  # oversize block not used for a smaller request
    # a request within kLargeBuffer of the oversize block may use it (whole)
    model = CachingAllocatorModel(max_split_size=64 * MiB)
    model.malloc(1, 100 * MiB)
    model.free(1)
    assert model.malloc(2, 90 * MiB) == 100 * MiB
    model.malloc(3, 70 * MiB)
    assert model.reserved == 170 * MiB


def test_max_split_size_below_20_mib_is_raised_to_20_mib() -> None:
    assert CachingAllocatorModel(max_split_size=MiB).max_split_size == LARGE_BUFFER


def test_capacity_releases_cached_segments_before_failing() -> None:
    events = [alloc(1, 40 * MiB), free(1), alloc(2, 50 * MiB)]
    r = simulate(events, capacity=64 * MiB)
    assert r.peak_reserved == 50 * MiB  # the cached 40 MiB segment was released first
    assert r.final_reserved == 50 * MiB
    with pytest.raises(SimulatedOutOfMemory) as info:
        simulate([alloc(1, 40 * MiB), alloc(2, 50 * MiB)], capacity=64 * MiB)
    assert info.value.reserved == 40 * MiB


def test_capacity_with_max_split_size_releases_an_oversize_block() -> None:
    model = CachingAllocatorModel(max_split_size=32 * MiB, capacity=65 * MiB)
    model.malloc(1, 40 * MiB)
    model.malloc(2, 8 * MiB)  # a 20 MiB segment, still in use, 12 MiB of it free
    model.free(1)
    # the cached 40 MiB block is oversize, so it cannot serve 14 MiB, and 40 + 20 + 14 > 65: it is released
    model.malloc(3, 14 * MiB)
    assert model.reserved == 20 * MiB + 14 * MiB


def test_fake_usage_errors() -> None:
    model = CachingAllocatorModel()
    model.malloc(1, 10)
    with pytest.raises(ValueError):
        model.malloc(1, 10)
    with pytest.raises(ValueError):
        model.free(2)
    with pytest.raises(ValueError):
        model.malloc(3, 0)


def test_accounting_invariants_on_a_random_replay() -> None:
    rng = random.Random(1)
    events: list[tuple[int, int]] = []
    live: list[int] = []
    for i in range(5000):
        if live and rng.random() < 0.5:
            events.append(free(live.pop(rng.randrange(len(live)))))
        else:
            events.append(
                alloc(
                    i, rng.choice([rng.randint(1, 4096), rng.randint(1, 2 * MiB), rng.randint(1, 50 * MiB)])
                )
            )
            live.append(i)
    for expandable in (False, True):
        model = CachingAllocatorModel(expandable_segments=expandable)
        for block_id, size in events:
            model.malloc(block_id, size) if size > 0 else model.free(block_id)
            assert 0 <= model.allocated <= model.reserved
        for block_id in live:
            model.free(block_id)
        assert model.allocated == 0
        model.empty_cache()
        assert model.reserved == 0
        r = model.result()
        assert r.peak_allocated <= r.peak_reserved
        assert 0.0 <= r.fragmentation < 1.0


def test_replay_of_100k_events_completes() -> None:
    # no timing assertion (see bench/); this only guards against a quadratic blow-up in CI time
    rng = random.Random(0)
    events: list[tuple[int, int]] = []
    live: list[int] = []
    for i in range(100_000):
        if live and rng.random() < 0.5:
            events.append(free(live.pop(rng.randrange(len(live)))))
        else:
            events.append(alloc(i, rng.randint(1, 40 * MiB)))
            live.append(i)
    r = simulate(events)
    assert r.peak_reserved >= r.peak_allocated > 0

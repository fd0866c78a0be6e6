"""Frees of memory made before the recording, put into the events where a watched storage was destroyed
(:func:`memadvise.capture.allocations.release_baseline`, :func:`made_before`): hand-built events."""

from __future__ import annotations

from memadvise.capture.allocations import (
    BaselineBlock,
    Capture,
    Events,
    build_profile,
    made_before,
    release_baseline,
)

META = {
    "model": "m",
    "batch_size": 1,
    "mode": "train",
    "device": "cpu",
    "optimizer": "none",
    "steps": 1,
    "torch_version": "",
    "created": "",
}


def events(rows: list[tuple[int, int, int]], releases: list[tuple[int, int, int]]) -> Events:
    """``rows``: (time, ptr, size) allocator events; ``releases``: (time, ptr, token)."""
    ev = Events()
    for t, ptr, size in rows:
        ev.time.append(t)
        ev.ptr.append(ptr)
        ev.size.append(size)
        ev.module.append(None)
        ev.seq.append(-1)
        ev.op.append("op")
        ev.group.append(t)
    ev.releases = [(t, ptr, token, None, -1, "<release>", -1) for t, ptr, token in releases]
    return ev


BATCH = BaselineBlock(ptr=100, nbytes=64, category="inputs", module="<inputs>")


def peak(ev: Events, baseline: list[BaselineBlock]) -> int:
    return build_profile(ev, capture=Capture(), baseline=baseline, layers=[], meta=META).peak_bytes


def test_a_released_baseline_storage_is_freed_where_it_was_destroyed() -> None:
    # 64 baseline bytes; 10 bytes at t=1; the batch released at t=2; 50 bytes at t=3 (its address reused)
    ev = events([(1, 7, 10), (3, 100, 50), (4, 100, -50)], releases=[(2, 100, 1)])
    out = release_baseline(ev, [BATCH])
    assert list(zip(out.time, out.ptr, out.size, strict=True)) == [
        (1, 7, 10),
        (2, 100, -64),
        (3, 100, 50),
        (4, 100, -50),
    ]
    assert peak(out, [BATCH]) == 64 + 10  # not 64 + 10 + 50
    assert peak(ev, [BATCH]) == 64 + 10 + 50  # without the release: alive to the end


def test_a_release_while_a_recorded_block_holds_the_address_is_that_blocks_own() -> None:
    ev = events([(1, 100, 50), (3, 100, -50)], releases=[(2, 100, 1)])
    assert release_baseline(ev, [BaselineBlock(ptr=100, nbytes=64, category="inputs", module="")]) is ev


def test_a_free_the_allocator_also_reports_counts_once() -> None:
    # memory of an earlier profiled session: the allocator reports its free just after the release
    ev = release_baseline(events([(1, 7, 10), (3, 100, -64), (4, 8, 30)], releases=[(2, 100, 1)]), [BATCH])
    assert peak(ev, [BATCH]) == 64 + 10  # 10 + 30 after the free, never 64 subtracted twice
    assert (
        build_profile(ev, capture=Capture(), baseline=[BATCH], layers=[], meta=META).timeline.totals()[-1]
        == 40
    )


def test_made_before_is_decided_by_the_storages_own_release() -> None:
    ev = events(
        [(1, 200, 8), (5, 100, 16), (6, 300, 4)],
        releases=[(2, 200, 1), (3, 100, 2), (7, 300, 3)],
    )
    # 200: allocated at t=1, released at t=2 — made during the recording; 100: released at t=3 before its
    # address was allocated again — made before; 300: allocated before its release; 400: never allocated
    assert made_before(ev, {200: 1, 100: 2, 300: 3, 400: 4}) == {100, 400}
    assert made_before(ev, {100: None}) == set()  # not watched: any allocation at the address decides

"""PYTORCH_CUDA_ALLOC_CONF as the caching-allocator model follows it."""

from __future__ import annotations

import pytest

from memadvise.analyzer.blocks import Blocks
from memadvise.planner.reserved import AllocatorSettings, allocator_settings, reserved

MiB = 2**20


def test_settings_read_from_the_variable() -> None:
    assert allocator_settings("") == AllocatorSettings()
    assert allocator_settings("expandable_segments:True") == AllocatorSettings(expandable_segments=True)
    conf = allocator_settings(
        "max_split_size_mb:128, expandable_segments:true,garbage_collection_threshold:0.6"
    )
    assert conf == AllocatorSettings(True, 128 * MiB)
    assert conf.describe() == "expandable_segments:True,max_split_size_mb:128"
    assert allocator_settings("max_split_size_mb:lots") == AllocatorSettings()


def test_the_environment_decides_expandable_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30 MiB block freed, then a 31 MiB one: the cached 30 MiB segment cannot serve it, so without
    expandable segments a second (2 MiB-rounded) segment is reserved next to it; an expandable segment
    grows instead."""
    blocks = Blocks.from_rows([(0.0, 1.0, 30 * MiB, 0, 0), (2.0, 3.0, 31 * MiB, 0, 0)])
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    plain = reserved(blocks).reserved_bytes
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    grown = reserved(blocks).reserved_bytes
    assert plain == 30 * MiB + 32 * MiB
    assert grown == 40 * MiB  # one segment, mapped in the large pool's 20 MiB pages
    assert reserved(blocks, expandable_segments=False).reserved_bytes == plain

"""Planner pieces without a model: budgets, system-RAM advice, the allocator replay of blocks."""

from __future__ import annotations

import numpy as np
import pytest

from memadvise.analyzer.blocks import Blocks
from memadvise.errors import UsageError
from memadvise.model.profile import Profile
from memadvise.planner import budget_for
from memadvise.planner.gpus import cuda_context_bytes, find_gpu, library_workspace_bytes
from memadvise.planner.hardware import GiB, ram_for
from memadvise.planner.reserved import reserved

MiB = 2**20


def test_size_budgets_use_the_documented_units() -> None:
    assert budget_for("24GB", reserve=0).total_bytes == 24 * 10**9
    assert budget_for("24GiB", reserve=0).total_bytes == 24 * GiB
    assert budget_for("80G", reserve=0).usable_bytes == 80 * GiB
    assert budget_for("1000000", reserve=0).total_bytes == 1_000_000


def test_catalog_budget_subtracts_context_and_workspace() -> None:
    budget = budget_for("H100")
    gpu = find_gpu("H100")
    assert budget.usable_bytes == gpu.memory_bytes - cuda_context_bytes(gpu) - library_workspace_bytes(gpu)
    assert budget_for("H100", reserve="1GiB").usable_bytes == gpu.memory_bytes - GiB


def test_reserve_larger_than_the_gpu_is_an_error() -> None:
    with pytest.raises(UsageError, match="leaves nothing"):
        budget_for("1GiB", reserve="2GiB")


def _profile(params: int, state: int, host: object = None) -> Profile:
    return Profile(
        model="m",
        batch_size=1,
        mode="train",
        device="cpu",
        optimizer="adamw",
        peak_bytes=0,
        peak_phase="forward",
        peak_step=0,
        peak_op="",
        peak_module="",
        peak_breakdown={},
        param_bytes=params,
        buffer_bytes=0,
        input_bytes=0,
        grad_bytes=params,
        optimizer_state_bytes=state,
        activation_bytes=0,
        steps=2,
        host_memory=host,  # type: ignore[arg-type]
    )


def test_ram_is_at_least_125_percent_of_gpu_memory_rounded_to_a_purchasable_size() -> None:
    advice = ram_for(80 * GiB, _profile(GiB, 2 * GiB))
    assert advice.rule_bytes == 100 * GiB
    assert advice.recommended_bytes == 128 * GiB


def test_ram_covers_a_checkpoint_copy_when_that_is_larger() -> None:
    advice = ram_for(24 * GiB, _profile(14 * GiB, 28 * GiB))  # a 7B model's weights and Adam state
    assert advice.host_need_bytes >= 42 * GiB
    assert advice.recommended_bytes >= advice.host_need_bytes
    assert advice.recommended_bytes == 48 * GiB


def test_reserved_memory_follows_the_caching_allocator() -> None:
    """Two 600 KiB blocks share one 2 MiB small segment; a 5 MiB one takes a 20 MiB large segment."""
    rows = [(0.0, 3.0, 600 * 1024, 0, 0), (1.0, 4.0, 600 * 1024, 0, 0), (2.0, np.inf, 5 * MiB, 0, 0)]
    taken = reserved(Blocks.from_rows(rows))
    assert taken.reserved_bytes == 2 * MiB + 20 * MiB
    assert taken.allocated_bytes == 2 * 600 * 1024 + 5 * MiB

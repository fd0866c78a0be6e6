"""Planner pieces without a model: budgets, system-RAM advice, the allocator replay of blocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memadvise.analyzer.blocks import Blocks
from memadvise.errors import UsageError
from memadvise.model.profile import Profile
from memadvise.planner import budget_for
from memadvise.planner.budget import check_gpu_text
from memadvise.planner.hardware import GiB, ram_for
from memadvise.planner.reserved import reserved

MiB = 2**20
H200_MEASUREMENTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu_h200.json"


def test_size_budgets_use_the_documented_units() -> None:
    assert budget_for("24GB", reserve=0).total_bytes == 24 * 10**9
    assert budget_for("24GiB", reserve=0).total_bytes == 24 * GiB
    assert budget_for("80G", reserve=0).usable_bytes == 80 * GiB
    assert budget_for("1000000", reserve=0).total_bytes == 1_000_000  # the library takes exact bytes
    # a card's bare model number is the card; on the command line a tiny bare number is a mistake
    assert budget_for("4090").name == budget_for("RTX 4090").name
    assert budget_for("3090").total_bytes == budget_for("RTX 3090").total_bytes
    check_gpu_text("4090")
    check_gpu_text(str(2 * GiB))
    with pytest.raises(UsageError, match="give a unit"):
        check_gpu_text("1000000")


def test_an_h200_budget_leaves_out_what_measured_processes_held_beside_their_tensors() -> None:
    """On the H200 of bench/results/gpu_h200.json, a process held 678-686 MiB outside the caching
    allocator after inference and 742-762 MiB after training (NVML used minus reserved), and its cuBLAS
    and cuBLASLt workspaces took 33 MiB inside it. The budget takes off the largest of those readings,
    and no more (training's second cuBLAS handle, on the autograd thread, adds one more workspace)."""
    data = json.loads(H200_MEASUREMENTS.read_text())
    outside = {"inference": 0, "training": 0}
    for case in data["cases"].values():
        for loop, run in case.get("measured", {}).items():
            if "nvml_used_end" in run:
                kind = "inference" if loop == "inference" else "training"
                outside[kind] = max(outside[kind], run["nvml_used_end"] - run["reserved_end_abs"])
    workspace = next(iter(data["cases"].values()))["cublas_workspace"]
    inference, training = budget_for("H200", training=False), budget_for("H200")
    assert inference.total_bytes == data["environment"]["nvml_total_bytes"]
    assert inference.reserve_bytes == outside["inference"] + workspace
    assert training.reserve_bytes == outside["training"] + 2 * workspace
    assert budget_for("H200", reserve="1GiB").usable_bytes == inference.total_bytes - GiB


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


def test_at_the_budget_the_allocator_releases_its_cache_and_retries() -> None:
    """A freed 40 MiB block stays cached; a 50 MiB request needs a new segment. Without a capacity
    both are reserved (90 MiB); with 64 MiB, PyTorch releases the cached segment and retries."""
    rows = [(0.0, 1.0, 40 * MiB, 0, 0), (2.0, np.inf, 50 * MiB, 0, 0)]
    unbounded = reserved(Blocks.from_rows(rows))
    assert unbounded.reserved_bytes == 90 * MiB
    bounded = reserved(Blocks.from_rows(rows), capacity=64 * MiB)
    assert not bounded.out_of_memory and bounded.reserved_bytes == 50 * MiB
    both_live = [(0.0, 3.0, 40 * MiB, 0, 0), (2.0, np.inf, 50 * MiB, 0, 0)]
    assert reserved(Blocks.from_rows(both_live), capacity=64 * MiB).out_of_memory

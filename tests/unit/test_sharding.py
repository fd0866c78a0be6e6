"""Sharded model states: the ZeRO paper's worked example, and small cases checked by hand."""

from __future__ import annotations

import pytest

from memadvise.analyzer.sharding import (
    ShardedStates,
    Strategy,
    fsdp_unsharded_peak_bytes,
    parse_strategy,
    shard_model_states,
)
from memadvise.errors import UsageError

PSI = 7_500_000_000  # 7.5B parameters
N = 64
K = 12


def zero_paper(strategy: str) -> ShardedStates:
    """Mixed-precision Adam as the paper counts it: 2Ψ fp16 params, 2Ψ fp16 grads, KΨ optimizer states
    (K = 12: 4Ψ fp32 master params + 8Ψ momentum and variance)."""
    return shard_model_states(
        2 * PSI,
        2 * PSI,
        8 * PSI,
        master_param_bytes=4 * PSI,
        gpus=N,
        strategy=strategy,
        gradient_as_bucket_view=True,  # the paper's baseline has no bucket copy
    )


@pytest.mark.parametrize(
    ("strategy", "gb"),
    [("ddp", 120.0), ("zero1", 31.4), ("zero2", 16.6), ("zero3", 1.9), ("fsdp", 1.9)],
)
def test_zero_paper_figure_1(strategy: str, gb: float) -> None:
    """Rajbhandari et al. 2020, figure 1: Ψ = 7.5B, N = 64, K = 12."""
    states = zero_paper(strategy)
    assert round(states.total_bytes / 1e9, 1) == gb


def test_zero_paper_exact_bytes() -> None:
    assert zero_paper("ddp").total_bytes == (2 + 2 + K) * PSI
    assert zero_paper("zero1").total_bytes == 4 * PSI + -(-8 * PSI // N) + -(-4 * PSI // N)
    assert zero_paper("zero3").total_bytes == (2 + 2 + K) * PSI // N  # 16Ψ is divisible by 64 here


def test_sharded_parts_are_named() -> None:
    assert zero_paper("ddp").sharded == ()
    assert set(zero_paper("zero1").sharded) == {"optimizer_state", "master_params"}
    assert set(zero_paper("zero2").sharded) == {"optimizer_state", "master_params", "grads"}
    assert set(zero_paper("zero3").sharded) == {"optimizer_state", "master_params", "grads", "params"}
    assert zero_paper("fsdp").sharded == zero_paper("zero3").sharded


def test_small_case_by_hand_rounds_up() -> None:
    # 10 bytes of params, 10 of grads, 21 of optimizer state over 4 GPUs
    s = shard_model_states(10, 10, 21, gpus=4, strategy="zero2")
    assert (s.param_bytes, s.grad_bytes, s.optimizer_state_bytes, s.master_param_bytes) == (10, 3, 6, 0)
    assert s.total_bytes == 19
    s = shard_model_states(10, 10, 21, gpus=4, strategy="zero3")
    assert (s.param_bytes, s.grad_bytes, s.optimizer_state_bytes) == (3, 3, 6)
    s = shard_model_states(10, 10, 21, gpus=4, strategy="zero1", master_param_bytes=20)
    assert (s.param_bytes, s.grad_bytes, s.optimizer_state_bytes, s.master_param_bytes) == (10, 10, 6, 5)
    assert s.total_bytes == 31


def test_one_gpu_shards_nothing_away() -> None:
    for strategy in ("zero1", "zero2", "zero3", "fsdp"):
        s = shard_model_states(400, 400, 800, gpus=1, strategy=strategy)
        assert s.total_bytes == 1600


def test_ddp_bucket_copy_of_gradients() -> None:
    # fp32 model with Adam: 4 + 4 + 8 bytes per parameter, 1M parameters
    s = shard_model_states(4_000_000, 4_000_000, 8_000_000, gpus=8, strategy="ddp")
    assert s.bucket_bytes == 4_000_000
    assert s.total_bytes == 20_000_000
    assert "second copy" in s.note
    view = shard_model_states(
        4_000_000, 4_000_000, 8_000_000, gpus=8, strategy="ddp", gradient_as_bucket_view=True
    )
    assert view.bucket_bytes == 0 and view.total_bytes == 16_000_000
    # sharded strategies have no bucket term
    assert shard_model_states(4_000_000, 4_000_000, 8_000_000, gpus=8, strategy="zero1").bucket_bytes == 0


def test_total_is_the_sum_of_its_parts() -> None:
    for strategy in Strategy:
        s = shard_model_states(1001, 999, 3001, gpus=7, strategy=strategy, master_param_bytes=2003)
        parts = s.param_bytes + s.grad_bytes + s.optimizer_state_bytes + s.master_param_bytes + s.bucket_bytes
        assert s.total_bytes == parts
        assert s.strategy is strategy and s.gpus == 7
        assert s.note


@pytest.mark.parametrize(
    ("text", "strategy"),
    [
        ("ZeRO-3", Strategy.ZERO3),
        ("zero_1", Strategy.ZERO1),
        ("FSDP", Strategy.FSDP),
        (Strategy.DDP, Strategy.DDP),
    ],
)
def test_parse_strategy(text: str | Strategy, strategy: Strategy) -> None:
    assert parse_strategy(text) is strategy


def test_bad_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown sharding strategy 'zero4'; choose one of ddp, zero1"):
        shard_model_states(1, 1, 1, gpus=2, strategy="zero4")
    with pytest.raises(UsageError, match="at least 1"):
        shard_model_states(1, 1, 1, gpus=0, strategy="ddp")
    with pytest.raises(UsageError):
        shard_model_states(1, 1, 1, gpus=2.5, strategy="ddp")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        shard_model_states(-1, 1, 1, gpus=2, strategy="ddp")


def test_fsdp_unsharded_peak() -> None:
    assert fsdp_unsharded_peak_bytes(100) == 200  # the unit computing + the next one prefetched
    assert fsdp_unsharded_peak_bytes(100, prefetch=0) == 100
    assert fsdp_unsharded_peak_bytes(100, prefetch=2) == 300
    with pytest.raises(UsageError):
        fsdp_unsharded_peak_bytes(100, prefetch=-1)
    with pytest.raises(UsageError):
        fsdp_unsharded_peak_bytes(-5)

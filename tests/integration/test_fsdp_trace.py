"""One rank of FSDP2 traced fake: PyTorch's fully_shard over a fake process group of N ranks."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch.distributed as dist

from memadvise.analyzer import Scenario, estimate
from memadvise.analyzer.sharding import shard_model_states
from memadvise.api import profile_file
from memadvise.errors import UsageError

GPT2 = str(Path(__file__).resolve().parents[1] / "zoo" / "gpt2.py")
pytestmark = pytest.mark.skipif(not dist.is_available(), reason="needs torch.distributed")


@functools.cache  # a profile is frozen data: the tests share each trace
def _trace(ranks: int | None):
    return profile_file(GPT2, batch_size=2, device="meta", target_device="cpu", fsdp=ranks, scaling=False)


@pytest.mark.parametrize("ranks", [2, 4])
def test_one_rank_holds_the_zero3_share_of_model_states(ranks: int) -> None:
    """Parameters, gradients and AdamW state per rank equal the ZeRO-3 accounting of the unsharded
    trace (FSDP2 shards each parameter evenly; AdamW's fp32 step counters stay whole)."""
    whole, rank = _trace(None), _trace(ranks)
    assert rank.fsdp_ranks == ranks
    zero3 = shard_model_states(whole.param_bytes, whole.grad_bytes, 0, gpus=ranks, strategy="zero3")
    assert rank.param_bytes == zero3.param_bytes
    assert rank.grad_bytes == zero3.grad_bytes
    counters = 4 * len(whole.program.parameters)
    assert rank.optimizer_state_bytes == (whole.optimizer_state_bytes - counters) // ranks + counters
    assert rank.peak_bytes < whole.peak_bytes
    assert not dist.is_initialized()  # the fake process group is gone


def test_activations_stay_per_rank_and_all_gathers_are_counted() -> None:
    """Each rank runs its own batch: activations are not divided; the all-gathered (unsharded)
    parameters and collective buffers add to what a rank holds while a unit runs."""
    whole, rank = _trace(None), _trace(4)
    assert rank.activation_bytes >= whole.activation_bytes
    assert rank.peak_breakdown["temporaries"] > whole.peak_breakdown["temporaries"]


def test_a_sharded_profile_cannot_be_sharded_again() -> None:
    with pytest.raises(UsageError, match="already"):
        estimate(_trace(2), Scenario(gpus=4))


def test_fsdp_needs_the_fake_cpu_trace() -> None:
    with pytest.raises(UsageError, match="--fake --target-device cpu"):
        profile_file(GPT2, batch_size=2, device="cpu", fsdp=2)


def test_the_optimizer_steps_temporaries_shrink_with_the_shard_as_fsdp2_traced() -> None:
    """The ZeRO-3/FSDP formula divides the optimizer step's temporaries over the ranks; one rank of the
    real FSDP2, traced, holds the same at its step's peak (the traced rank is the independent truth)."""
    import numpy as np

    from memadvise.analyzer.blocks import Blocks
    from memadvise.analyzer.estimate import estimate_blocks
    from memadvise.model.profile import Category, Phase, Profile
    from memadvise.model.scenario import Strategy

    def step_peak(profile: Profile, blocks: Blocks) -> float:
        assert profile.program is not None
        traced = blocks.alloc == np.floor(blocks.alloc)  # not the next forward's all-gather (at -0.5)
        temporaries = blocks.is_category(Category.TEMPORARIES) & traced
        best = 0.0
        for phase, _, start, end in profile.program.phases:
            if phase != Phase.OPTIMIZER.value:
                continue
            made = temporaries & (blocks.alloc >= start) & (blocks.alloc < end)
            for t in np.unique(blocks.alloc[made]):
                best = max(best, float(blocks.size[made & (blocks.alloc <= t) & (blocks.free > t)].sum()))
        return best

    whole, rank = _trace(None), _trace(4)
    assert rank.program is not None
    _, formula = estimate_blocks(whole, Scenario(gpus=4, strategy=Strategy.FSDP))
    traced = step_peak(rank, Blocks.of(rank.program))
    assert traced > 0
    assert step_peak(whole, formula) == pytest.approx(traced, rel=0.01)

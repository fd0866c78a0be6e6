"""The planner's recommendations, run for real: the maximum batch is the true maximum, and a plan that
uses bf16 or checkpointing stays within its budget (independent ground truth, CPU, one thread)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import groundtruth as gt  # tests/ is on sys.path (tests/conftest.py)
import pytest

from memadvise.analyzer import Precision
from memadvise.api import profile_file
from memadvise.model.profile import Profile
from memadvise.planner import Goal, Pins, budget_for, search

ROOT = Path(__file__).resolve().parents[2]
MODELS = {
    "mlp": ROOT / "sample_models" / "mlp.py",
    "gpt2": ROOT / "tests" / "zoo" / "gpt2.py",
    "bert": ROOT / "tests" / "zoo" / "bert.py",
    "llama_gqa": ROOT / "tests" / "zoo" / "llama_gqa.py",
    "vit": ROOT / "tests" / "zoo" / "vit.py",
}


pytestmark = pytest.mark.usefixtures("single_thread")


@functools.cache
def _profile(name: str) -> Profile:
    return profile_file(str(MODELS[name]), batch_size=2, device="cpu")


@functools.cache
def _real(name: str, batch: int, **scenario: object) -> int:
    return gt.measure_peak(str(MODELS[name]), batch, **scenario).peak_bytes  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mlp", "gpt2", "bert", "llama_gqa", "vit"])
def test_recommended_max_batch_is_the_true_maximum(name: str) -> None:
    """Budget between the real peaks at batch 6 and 7 (fp32, no checkpointing, --reserve 0)."""
    budget_bytes = (_real(name, 6) + _real(name, 7)) // 2
    pins = Pins(precision=Precision.FP32, checkpoint=())
    plan = search(_profile(name), budget_for(str(budget_bytes), reserve=0), pins, Goal.MAX_BATCH)
    best = plan.recommendation
    assert best is not None
    batch = best.batch_size
    over = batch + math.ceil(0.1 * batch)
    fits, beyond = _real(name, batch), _real(name, over)
    print(f"{name}: budget {budget_bytes:,}; plan batch {batch}: real {fits:,}; {over}: real {beyond:,}")
    assert fits <= budget_bytes < beyond


# The U-Net is left out: oneDNN's 16-bit (transposed) convolutions on CPU take other buffers than the
# fp32 trace shows (bench/results/estimate_accuracy.md lists the miss).
@pytest.mark.parametrize("name", ["gpt2", "llama_gqa", "vit"])
def test_a_plan_with_bf16_or_checkpointing_fits_for_real(name: str) -> None:
    """A budget tight enough that the best plan uses 16 bits or checkpointing; the recommended
    configuration is run for real and stays within it."""
    budget_bytes = _real(name, 6)
    plan = search(_profile(name), budget_for(str(budget_bytes), reserve=0), Pins(), Goal.MAX_BATCH)
    best = plan.recommendation
    assert best is not None
    assert best.precision != "fp32" or best.checkpoint
    real = _real(name, best.batch_size, precision=best.precision, checkpoint=best.checkpoint or None)
    print(f"{name}: {best.flags}: predicted {best.predicted_peak_bytes:,}, real {real:,} / {budget_bytes:,}")
    assert real <= budget_bytes
    assert best.batch_size >= 6  # the levers buy at least the fp32 batch

"""The planner's recommendations, run for real: the maximum batch is the true maximum, and a plan that
uses bf16 or checkpointing stays within its budget (independent ground truth, CPU, one thread)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import groundtruth as gt  # tests/ is on sys.path (tests/conftest.py)
import pytest
from cpu_features import HAS_AMX

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
    "unet_skip": ROOT / "tests" / "zoo" / "unet_skip.py",
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


# Known misses: the plan's 16-bit estimate is low where 16-bit kernels take buffers the fp32 profile
# cannot show (tests/integration/test_estimate_accuracy.py measures those estimates); the figures are the
# real peak against the budget, measured on a CPU with AMX (torch 2.14.1, one thread).
PLAN_MISSES = {
    "vit": pytest.mark.xfail(
        condition=HAS_AMX,
        strict=True,
        reason=(
            "real 2,285,748 B against a 1,794,872 B budget (+27.3%) on CPUs with AMX: the bf16-mixed plan's "
            "estimate leaves out the 564,120 B scratch of oneDNN's AMX bf16 convolution backward"
        ),
    ),
    "unet_skip": pytest.mark.xfail(
        strict=True,
        reason=(
            "the bf16-mixed + checkpointing plan at batch 12 really takes 7,551,960 B against a 5,716,408 B "
            "budget (+32.1% with AMX; +27.7% with AVX-512, +128.6% with AVX2): its estimate leaves out the "
            "buffers of 16-bit convolutions (oneDNN's bf16 scratch pads, or an im2col column buffer)"
        ),
    ),
}
# The LSTM is not in this test: at this budget its best plan is plain fp32 (neither lever buys a batch).


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=PLAN_MISSES[n]) if n in PLAN_MISSES else n
        for n in ("gpt2", "llama_gqa", "vit", "unet_skip")
    ],
)
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


@functools.cache
def _mlp_plan() -> tuple[int, dict[str, object]]:
    budget_bytes = _real("mlp", 1800)
    plan = search(_profile("mlp"), budget_for(str(budget_bytes), reserve=0), Pins(), Goal.MAX_BATCH)
    return budget_bytes, {o.precision: o for o in plan.options}


@pytest.mark.slow
@pytest.mark.parametrize(
    "precision",
    [
        "fp32",
        pytest.param(
            "bf16-mixed",
            marks=pytest.mark.xfail(
                strict=True,
                reason=(
                    "measured: real 28,070,148 B at batch 2181 and 29,117,788 B at 2291 (+5%) against a "
                    "29,271,040 B budget: precisions estimated by rules keep a 3% safety margin, so the "
                    "batch stops about 4% short of the largest that fits"
                ),
            ),
        ),
        "bf16",
    ],
)
def test_every_option_a_cpu_can_run_is_the_largest_batch_that_fits(precision: str) -> None:
    """Every option of the plan (AdamW in fp32, bf16-mixed and pure bf16 on a CPU budget; 8-bit AdamW
    needs a CUDA GPU), run for real: its batch fits the budget and one 5% larger does not."""
    budget_bytes, options = _mlp_plan()
    assert set(options) == {"fp32", "bf16-mixed", "bf16"}
    option = options[precision]
    assert option.fits and option.optimizer == "adamw" and not option.batch_capped  # type: ignore[attr-defined]
    batch = option.batch_size  # type: ignore[attr-defined]
    over = math.ceil(1.05 * batch)
    checkpoint = option.checkpoint or None  # type: ignore[attr-defined]
    fits = _real("mlp", batch, precision=precision, checkpoint=checkpoint)
    beyond = _real("mlp", over, precision=precision, checkpoint=checkpoint)
    print(f"{precision}: real {fits:,} at {batch}, {beyond:,} at {over}; budget {budget_bytes:,}")
    assert fits <= budget_bytes < beyond

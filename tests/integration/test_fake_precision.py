"""Fake CPU traces in pure 16-bit precision (``--fake --target-device cpu --precision bf16``): the model
is cast on fake tensors (``Module.to`` cannot swap them) and the peak matches a real bf16 run's
allocator peak (tests/groundtruth.py) within the fake trace's 3%.

oneDNN's bf16 kernels for linear and convolution inference take scratch buffers (weight reorders on
CPUs with AMX) that the fake trace's kernel-buffer rules, measured on fp32 kernels, do not have: those
cases are declared misses where they were measured.
"""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest
from cpu_features import HAS_AMX

import memadvise

ROOT = Path(__file__).resolve().parents[2]
MAX_FAKE_ERROR = 0.03
pytestmark = pytest.mark.usefixtures("single_thread")

CASES = [
    pytest.param("tests/zoo/llama_gqa.py", "train", id="llama_gqa-train"),
    pytest.param("sample_models/gpt2.py", "inference", id="gpt2-inference"),
    pytest.param(
        "sample_models/mlp.py",
        "inference",
        id="mlp-inference",
        marks=pytest.mark.xfail(
            condition=HAS_AMX,
            strict=True,
            reason="measured with AMX: -4.70% (real 1,132,116 B, fake 1,078,868 B): oneDNN's bf16 linear "
            "takes a 57,344 B scratch buffer at the peak that the fp32-measured rules lack",
        ),
    ),
    pytest.param(
        "tests/zoo/resnet.py",
        "inference",
        id="resnet-inference",
        marks=pytest.mark.xfail(
            condition=HAS_AMX,
            strict=True,
            reason="measured with AMX: -17.25% (real 27,242,572 B, fake 22,542,388 B): oneDNN's bf16 "
            "convolution takes 4.8 MB of scratch (weight reorders) at the peak that the fp32-measured "
            "rules lack",
        ),
    ),
]


@pytest.mark.parametrize(("model", "mode"), CASES)
def test_fake_bf16_matches_a_real_bf16_run(model: str, mode: str) -> None:
    path = ROOT / model
    truth = groundtruth.measure_peak(path, 2, mode=mode, optimizer="adamw", precision="bf16").peak_bytes
    prof = memadvise.profile_file(
        str(path),
        batch_size=2,
        mode=mode,
        optimizer="adamw",
        device="meta",
        target_device="cpu",
        precision="bf16",
        scaling=False,
    )
    assert prof.precision == "bf16"
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


def test_tied_weights_stay_tied_when_cast() -> None:
    """GPT-2's tied embedding and output weights stay one tensor when cast on fake tensors: the fake
    trace holds the parameter bytes that ``Module.to`` gives a real model, half its fp32 bytes."""
    path = str(ROOT / "sample_models" / "gpt2.py")
    options = {"batch_size": 1, "mode": "inference", "scaling": False}
    fp32 = memadvise.profile_file(path, device="cpu", **options)
    real = memadvise.profile_file(path, device="cpu", precision="bf16", **options)
    fake = memadvise.profile_file(path, device="meta", target_device="cpu", precision="bf16", **options)
    assert fake.param_bytes == real.param_bytes == fp32.param_bytes // 2

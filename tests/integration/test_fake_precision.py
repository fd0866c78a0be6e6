"""Fake CPU traces in pure 16-bit precision (``--fake --target-device cpu --precision bf16|fp16``): the
model is cast on fake tensors (``Module.to`` cannot swap them; recurrent layers' flat weights are
refreshed as ``Module.to`` does) and the peak matches a real 16-bit run's allocator peak
(tests/groundtruth.py) within the fake trace's 3%.

oneDNN's 16-bit convolutions, matrix products and LSTMs take reorders and scratch pads that the fake
trace adds by rule (memadvise/capture/kernel_buffers.py, checked kernel by kernel in
test_onednn16_buffers.py); their scratch-pad sizes were fitted on a CPU with AMX, and the cases they
still miss are declared with the measured error.
"""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest
from cpu_features import HAS_AMX, HAS_AMX_FP16, HAS_AVX512, HAS_AVX512_FP16

import memadvise

ROOT = Path(__file__).resolve().parents[2]
HAS_AVX512_FP16_NO_AMX_FP16 = HAS_AVX512_FP16 and not HAS_AMX_FP16
MAX_FAKE_ERROR = 0.03
pytestmark = pytest.mark.usefixtures("single_thread")

CASES = [
    pytest.param("tests/zoo/llama_gqa.py", "train", "bf16", id="llama_gqa-train"),
    pytest.param("sample_models/gpt2.py", "inference", "bf16", id="gpt2-inference"),
    pytest.param("sample_models/mlp.py", "inference", "bf16", id="mlp-inference"),
    pytest.param("sample_models/mlp.py", "inference", "fp16", id="mlp-inference-fp16"),
    pytest.param("tests/zoo/bert.py", "inference", "bf16", id="bert-inference"),
    pytest.param("tests/zoo/resnet.py", "inference", "bf16", id="resnet-inference"),
    pytest.param(
        "tests/zoo/vit.py",
        "train",
        "bf16",
        id="vit-train",
        marks=pytest.mark.xfail(
            condition=HAS_AVX512,
            strict=True,
            reason="measured with AMX: -13.83% (real 1,488,788 B, fake 1,282,940 B): the weight-gradient "
            "scratch pad of the 8x8 stride-8 patch filter (real 564,120 B) is larger than the rule fitted "
            "on small filters; with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16: -4.40% (real 744,324 B, "
            "fake 711,546 B)",
        ),
    ),
    pytest.param("tests/zoo/cnn_inplace_bn.py", "inference", "bf16", id="cnn_inplace_bn-inference"),
    pytest.param("tests/zoo/cnn_inplace_bn.py", "train", "bf16", id="cnn_inplace_bn-train"),
    pytest.param("tests/zoo/lstm_lm.py", "train", "bf16", id="lstm_lm-train"),
    pytest.param(
        "tests/zoo/gru_bidir.py",
        "inference",
        "bf16",
        id="gru_bidir-inference",
        marks=pytest.mark.xfail(
            condition=HAS_AVX512 and not HAS_AMX,
            strict=True,
            reason="measured with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (oneDNN's AVX-512 bf16 kernels): "
            "-3.29% (real 307,466 B, fake 297,354 B): the matrix-product scratch pads are AMX-measured",
        ),
    ),
    pytest.param(
        "tests/zoo/lstm_lm.py",
        "inference",
        "fp16",
        id="lstm_lm-inference-fp16",
        marks=pytest.mark.xfail(
            condition=HAS_AVX512_FP16_NO_AMX_FP16,
            strict=True,
            reason="measured with avx512_fp16 and no AMX-FP16: -10.07% (real 1,556,600 B, fake 1,399,840 B): "
            "oneDNN's reference fp16 LSTM runs over matmul primitives whose scratch pads are not modelled",
        ),
    ),
]


@pytest.mark.parametrize(("model", "mode", "precision"), CASES)
def test_fake_16bit_matches_a_real_16bit_run(model: str, mode: str, precision: str) -> None:
    path = ROOT / model
    truth = groundtruth.measure_peak(path, 2, mode=mode, optimizer="adamw", precision=precision).peak_bytes
    prof = memadvise.profile_file(
        str(path),
        batch_size=2,
        mode=mode,
        optimizer="adamw",
        device="meta",
        target_device="cpu",
        precision=precision,
        scaling=False,
    )
    assert prof.precision == precision
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

"""Fake traces of models whose control flow and shapes depend on their inputs' values.

A fake CPU trace keeps real twins of small integer and boolean tensors, so a model that checks its
labels, indexes with ``.item()``, calls ``nonzero`` on its labels' padding and sizes a CTC loss by its
label lengths traces with the real values, and its peak matches a real run's allocator peak
(tests/groundtruth.py) within the fake trace's 3%. A selection that depends on floating-point values
stays unknown: every element is assumed selected, the profile says so, and the peak is an upper bound
(Faster R-CNN's inference, a declared miss). The convolution kernel-buffer rules, fitted on single
convolutions, are tested on a model built from depthwise, squeeze-excitation, channels-last depthwise
and 1-D convolution blocks; the LSTM rules, derived from oneDNN's layout formulas, on a wide and a
bidirectional LSTM; recurrent layers on PyTorch's native kernel on an LSTM with a projection and a GRU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import groundtruth
import pytest

import memadvise

MODELS = Path(__file__).resolve().parent / "models"
MAX_FAKE_ERROR = 0.03
pytestmark = pytest.mark.usefixtures("single_thread")


def _fake(path: Path, batch: int, mode: str) -> Any:
    return memadvise.profile_file(
        str(path), batch_size=batch, mode=mode, optimizer="adamw", device="meta", target_device="cpu",
        scaling=False,
    )


@pytest.mark.parametrize("mode", ["train", "inference"])
def test_values_read_by_the_model_are_real(mode: str) -> None:
    path = MODELS / "data_dependent.py"
    truth = groundtruth.measure_peak(path, 4, mode=mode, optimizer="adamw").peak_bytes
    prof = _fake(path, 4, mode)
    assert not [a for a in prof.assumptions if "assumed" in a], prof.assumptions
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


def test_unknown_selection_is_stated_and_an_upper_bound() -> None:
    path = MODELS / "selects_unknown.py"
    truth = groundtruth.measure_peak(path, 8, mode="train", optimizer="adamw").peak_bytes
    prof = _fake(path, 8, "train")
    stated = [a for a in prof.assumptions if "nonzero" in a and "all were assumed selected" in a]
    assert stated, prof.assumptions
    assert prof.peak_bytes >= truth


@pytest.mark.parametrize("mode", ["train", "inference"])
def test_convolution_blocks_outside_the_fitted_models(mode: str) -> None:
    """Depthwise, 1x1 squeeze-excitation, channels-last depthwise and 1-D convolutions: the fake CPU
    trace's kernel-buffer rules (fitted on single convolutions) against a real run of a model built
    from them."""
    path = MODELS / "conv_blocks.py"
    truth = groundtruth.measure_peak(path, 4, mode=mode, optimizer="adamw").peak_bytes
    prof = _fake(path, 4, mode)
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason=(
        "measured: +6.57% (85.6 MB real, 91.2 MB fake; +5.80% at 96x96 in bench/fake_unseen.py): the box "
        "heads keep the boxes whose scores pass a threshold, a nonzero on floating-point values the fake "
        "trace does not have; it assumes every box kept (an upper bound, stated in the profile)"
    ),
)
def test_faster_rcnn_inference() -> None:
    """torchvision's Faster R-CNN: its transform draws the image size with ``.item()`` and indexes a
    tuple with it (known now: it traces); its box selection depends on scores (not known)."""
    pytest.importorskip("torchvision")
    path = MODELS / "fasterrcnn_tiny.py"
    truth = groundtruth.measure_peak(path, 2, mode="inference", optimizer="adamw").peak_bytes
    prof = _fake(path, 2, "inference")
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


def test_wide_lstm_training() -> None:
    """A one-layer LSTM of hidden size 512: oneDNN's backward pads the recurrent weight's rows (a
    multiple of 256) in a reordered copy that the LSTM rules derive from oneDNN's layout formulas."""
    path = MODELS / "lstm_wide.py"
    truth = groundtruth.measure_peak(path, 4, mode="train", optimizer="adamw").peak_bytes
    prof = _fake(path, 4, "train")
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


@pytest.mark.parametrize("mode", ["train", "inference"])
def test_bidirectional_lstm(mode: str) -> None:
    """A bidirectional two-layer LSTM: both directions of each layer, a second layer reading 512
    features, a batch_first output whose gradient reaches the kernel transposed."""
    path = MODELS / "lstm_bidirectional.py"
    truth = groundtruth.measure_peak(path, 2, mode=mode, optimizer="adamw").peak_bytes
    prof = _fake(path, 2, mode)
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"


def test_native_recurrent_layers_inference() -> None:
    """An LSTM with a projection and a GRU, which PyTorch runs on its native CPU kernel: its C++ code
    adds the input projection's bias in place for real tensors (out of place for fake ones, one
    more buffer of every step's gates unless the trace follows the real path)."""
    path = MODELS / "rnn_native.py"
    truth = groundtruth.measure_peak(path, 4, mode="inference", optimizer="adamw").peak_bytes
    prof = _fake(path, 4, "inference")
    error = abs(prof.peak_bytes - truth) / truth
    assert error <= MAX_FAKE_ERROR, f"fake {prof.peak_bytes:,} B, truth {truth:,} B ({100 * error:.2f}% off)"

"""Fake traces of models that clone their layers while being built (``nn.TransformerEncoder``).

``copy.deepcopy`` gives each cloned fake tensor a copy of its fake mode; before the fix every
``weight.t()`` of the clones counted as a new allocation (measured: +12.3% on this model's peak on a
fake CPU trace, +0.7% after).
"""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest

import memadvise

MODEL_FILE = """\
import torch
from torch import nn

def build_model():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, nhead=4, dim_feedforward=128, batch_first=True, dropout=0.0)
    return nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False)

def example_inputs(batch_size):
    return torch.randn(batch_size, 16, 64)
"""
MAX_FAKE_ERROR = 0.03  # as for every fake trace in test_peak_accuracy.py

pytestmark = pytest.mark.usefixtures("single_thread")


def test_transformer_encoder_fake_cpu_trace_matches_the_ground_truth(tmp_path: Path) -> None:
    path = tmp_path / "encoder.py"
    path.write_text(MODEL_FILE)
    truth = groundtruth.measure_peak(path, 4)
    fake = memadvise.profile_file(str(path), batch_size=4, device="meta", target_device="cpu", scaling=False)
    error = abs(fake.peak_bytes - truth.peak_bytes) / truth.peak_bytes
    assert error <= MAX_FAKE_ERROR, (fake.peak_bytes, truth.peak_bytes)


def test_cloned_layers_share_the_models_fake_mode() -> None:
    from memadvise.capture.fake import fake_mode_of, new_fake_mode

    namespace: dict[str, object] = {}
    exec(MODEL_FILE, namespace)  # noqa: S102 - the model file above
    with new_fake_mode():
        model = namespace["build_model"]()  # type: ignore[operator]
    modes = {id(p.fake_mode) for p in model.parameters()}
    assert len(modes) == 3  # one per clone: what copy.deepcopy does
    mode = fake_mode_of(model)
    assert all(p.fake_mode is mode for p in model.parameters())

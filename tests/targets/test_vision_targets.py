"""``timm:NAME`` and ``torchvision:NAME``: random weights, a classification loss on random images."""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest
from typer.testing import CliRunner

import memadvise
from memadvise.cli import app

TRUTH_FILE = """\
import torch
import torchvision

def build_model():
    return torchvision.models.squeezenet1_1(weights=None)

def example_inputs(batch_size):
    return torch.randn(batch_size, 3, 64, 64)

def loss_fn(output, inputs):
    return torch.nn.functional.cross_entropy(output, torch.zeros(output.shape[0], dtype=torch.long))
"""


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_torchvision_peak_matches_the_ground_truth(tmp_path: Path) -> None:
    truth_file = tmp_path / "truth_squeezenet.py"
    truth_file.write_text(TRUTH_FILE)
    truth = groundtruth.measure_peak(truth_file, 2)
    prof = memadvise.profile_file(
        "torchvision:squeezenet1_1", batch_size=2, image_size=64, device="cpu", scaling=False
    )
    error = abs(prof.peak_bytes - truth.peak_bytes) / truth.peak_bytes
    assert error <= 0.02, (prof.peak_bytes, truth.peak_bytes)
    model = groundtruth.load_model_file(truth_file).build_model()
    assert prof.param_bytes == 4 * sum(p.numel() for p in model.parameters())
    assert prof.input_bytes == 4 * 2 * 3 * 64 * 64


@pytest.mark.parametrize(
    ("target", "options", "side"),
    [
        ("timm:test_vit", {}, 160),  # timm's default input size for the model
        ("timm:test_vit", {"image_size": 64}, 64),  # --image-size, and the ViT built for it
        ("torchvision:mobilenet_v3_small", {}, 224),
    ],
)
def test_image_size(target: str, options: dict[str, int], side: int) -> None:
    prof = memadvise.profile_file(
        target, batch_size=2, device="meta", mode="inference", scaling=False, **options
    )
    assert prof.input_bytes == 4 * 2 * 3 * side * side
    assert prof.trace == "fake" and prof.model == target


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("timm:convnext_tiy", "did you mean convnext_tiny"),
        ("torchvision:resnet5", "torchvision has no model 'resnet5'"),
        ("timm:", "give a model name after 'timm:'"),
    ],
)
def test_unknown_names(target: str, fragment: str) -> None:
    result = CliRunner().invoke(app, ["profile", target, "--fake"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert fragment in result.stderr, result.stderr


def test_task_is_for_hugging_face_only() -> None:
    result = CliRunner().invoke(app, ["profile", "torchvision:resnet18", "--fake", "--task", "seq-cls"])
    assert result.exit_code == 2 and "--task" in result.stderr

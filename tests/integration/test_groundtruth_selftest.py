"""Self-test of the ground-truth harness (tests/groundtruth.py) on hand-computable models.

These cases check the harness itself, not memadvise: if they fail, the
accuracy numbers in test_peak_accuracy.py cannot be trusted.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import groundtruth
import pytest
import torch

F32 = 4

LINEAR_FILE = """
from __future__ import annotations
import torch

def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(1000, 1000, bias=False)

def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 1000)
"""

# y = x * w with x and w of 1000 float32 each; every allocation is known:
# w, x (baseline) | y, loss (forward) | ones (grad of loss), grad_w (backward).
SCALE_FILE = """
from __future__ import annotations
import torch

class Scale(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w

def build_model() -> torch.nn.Module:
    scratch = torch.empty(25_000_000)  # 100 MB freed before the window opens
    del scratch
    return Scale()

def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.ones(batch_size * 1000)
"""

# Same as SCALE_FILE but the inputs are a dict, the output a tuple and the loss custom.
SCALE_DICT_FILE = """
from __future__ import annotations
import torch

class Scale(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1000))

    def forward(self, x: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.w, extra

def build_model() -> torch.nn.Module:
    return Scale()

def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {"x": torch.ones(batch_size * 1000), "extra": torch.zeros(10)}

def loss_fn(output: tuple[torch.Tensor, torch.Tensor], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return output[0].sum()
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    """Write a model file into ``tmp_path``."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the hand-computable model files."""
    d = tmp_path_factory.mktemp("gt_models")
    _write(d, "linear.py", LINEAR_FILE)
    _write(d, "scale.py", SCALE_FILE)
    _write(d, "scale_dict.py", SCALE_DICT_FILE)
    return d


def test_linear_train_sgd_holds_params_and_grads(model_dir: Path) -> None:
    """Linear(1000, 1000) + SGD: the peak holds at least weight + gradient (8 MB)."""
    truth = groundtruth.measure_peak(model_dir / "linear.py", 1, "train", "sgd", loop="lean")
    weights, x = 1000 * 1000 * F32, 1000 * F32
    assert truth.baseline_bytes == weights + x
    assert truth.peak_bytes >= 2 * weights
    assert truth.peak_bytes <= 2 * weights + 10 * x  # only a few activation-sized extras
    assert truth.peak_phase == "backward"
    assert truth.end_bytes == truth.baseline_bytes
    # the tutorial loop still holds the last output (x-sized) and the loss when the window closes
    tutorial = groundtruth.measure_peak(model_dir / "linear.py", 1, "train", "sgd")
    assert tutorial.end_bytes == truth.baseline_bytes + x + F32


def test_linear_inference_exact(model_dir: Path) -> None:
    """Inference: weight + input + output, exactly."""
    truth = groundtruth.measure_peak(model_dir / "linear.py", 1, "inference")
    assert truth.peak_bytes >= 4_000_000
    assert truth.peak_bytes == 1000 * 1000 * F32 + 1000 * F32 + 1000 * F32
    assert truth.peak_phase == "forward"


def test_linear_train_adamw_peaks_in_optimizer(model_dir: Path) -> None:
    """AdamW adds two state tensors per parameter: the step itself sets the peak."""
    truth = groundtruth.measure_peak(model_dir / "linear.py", 1, "train", "adamw")
    assert truth.peak_bytes >= 4 * 1000 * 1000 * F32  # weight, grad, exp_avg, exp_avg_sq
    assert truth.peak_phase == "optimizer"
    assert set(truth.phase_peaks) == {"forward", "backward", "optimizer"}


def test_scale_train_exact(model_dir: Path) -> None:
    """Every byte of y = x * w is accounted for; build-time scratch stays outside the window."""
    truth = groundtruth.measure_peak(model_dir / "scale.py", 1, "train", "sgd", loop="lean")
    vec = 1000 * F32
    assert truth.baseline_bytes == 2 * vec  # w, x
    assert truth.phase_peaks["forward"] == 3 * vec + F32  # + y, loss
    assert truth.peak_bytes == 4 * vec + 2 * F32  # + ones for d(loss), grad_w
    assert truth.peak_phase == "backward"


def test_scale_train_momentum_keeps_buffer(model_dir: Path) -> None:
    """SGD momentum keeps one buffer per parameter from the first step on."""
    truth = groundtruth.measure_peak(model_dir / "scale.py", 1, "train", "sgd-momentum", loop="lean")
    assert truth.peak_bytes == 5 * 1000 * F32 + 2 * F32


def test_scale_no_optimizer_equals_plain_sgd(model_dir: Path) -> None:
    """Plain SGD updates in place, so it costs nothing over dropping the gradients."""
    none = groundtruth.measure_peak(model_dir / "scale.py", 1, "train", "none")
    sgd = groundtruth.measure_peak(model_dir / "scale.py", 1, "train", "sgd")
    assert none.peak_bytes == sgd.peak_bytes


def test_inference_batch_scaling(model_dir: Path) -> None:
    """Inference: the batch size scales the input and the output only."""
    for batch in (1, 3):
        truth = groundtruth.measure_peak(model_dir / "linear.py", batch, "inference")
        assert truth.peak_bytes == 1000 * 1000 * F32 + 2 * batch * 1000 * F32
    scale = groundtruth.measure_peak(model_dir / "scale.py", 1, "inference")
    assert scale.peak_bytes == 3 * 1000 * F32  # w, x, y: the 100 MB build scratch is not in the window


def test_dict_inputs_tuple_output_custom_loss(model_dir: Path) -> None:
    """Dict inputs are passed as keywords; loss_fn is used when the file defines it."""
    truth = groundtruth.measure_peak(model_dir / "scale_dict.py", 1, "train", "sgd")
    vec = 1000 * F32
    assert truth.baseline_bytes == 2 * vec + 10 * F32
    assert truth.peak_bytes == 4 * vec + 10 * F32 + 2 * F32


def test_default_loss_rules() -> None:
    """``.loss`` first, then first tuple element, then ``.logits`` / ["logits"], then the tensor."""
    t = torch.ones(3)
    assert groundtruth.default_loss(SimpleNamespace(loss=t.sum() * 7, logits=t)).item() == 21
    assert groundtruth.default_loss(SimpleNamespace(loss=None, logits=t * 2)).item() == 6
    assert groundtruth.default_loss((t * 3, t)).item() == 9
    assert groundtruth.default_loss({"logits": t * 4}).item() == 12
    assert groundtruth.default_loss(t).item() == 3


def test_rejects_unknown_mode_and_optimizer(model_dir: Path) -> None:
    """Typos fail loudly instead of measuring something else."""
    with pytest.raises(ValueError):
        groundtruth.measure_peak(model_dir / "scale.py", 1, "training")
    with pytest.raises(ValueError):
        groundtruth.measure_peak(model_dir / "scale.py", 1, "train", "lion")

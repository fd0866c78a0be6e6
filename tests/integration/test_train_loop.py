"""The training loop memadvise traces: PyTorch's tutorial loop, and the lean loop as an option.

A planted model makes the difference between the two loops a closed-form number: a bias-free linear
layer whose output (``batch x OUT`` fp32) is not saved for backward, a loss that is one fp32 scalar,
and AdamW, whose step temporaries put the peak in the optimizer phase. There the tutorial loop holds
the output and the loss that the lean loop has already freed — exactly ``4 * batch * OUT + 4`` bytes,
in memadvise's trace and in the independent ground truth alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from groundtruth import measure_peak

import memadvise

pytestmark = pytest.mark.usefixtures("single_thread")

IN, OUT, BATCH = 256, 1024, 16

MODEL_FILE = f'''
import torch


def build_model():
    torch.manual_seed(0)
    return torch.nn.Linear({IN}, {OUT}, bias=False)


def example_inputs(batch_size):
    return torch.randn(batch_size, {IN})


def loss_fn(output, inputs):
    return output.square().mean()
'''


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loop") / "planted_linear.py"
    path.write_text(MODEL_FILE, encoding="utf-8")
    return path


def test_tutorial_loop_holds_output_and_loss_through_the_step(model_file: Path) -> None:
    planted = 4 * BATCH * OUT + 4
    tutorial = memadvise.profile_file(str(model_file), batch_size=BATCH, scaling=False)
    lean = memadvise.profile_file(str(model_file), batch_size=BATCH, scaling=False, train_loop="lean")
    assert (tutorial.train_loop, lean.train_loop) == ("tutorial", "lean")
    assert tutorial.peak_phase == lean.peak_phase == "optimizer"
    assert tutorial.peak_bytes - lean.peak_bytes == planted
    truth_tutorial = measure_peak(model_file, BATCH).peak_bytes
    truth_lean = measure_peak(model_file, BATCH, loop="lean").peak_bytes
    assert truth_tutorial - truth_lean == planted
    assert (tutorial.peak_bytes, lean.peak_bytes) == (truth_tutorial, truth_lean)


def test_profile_saved_before_the_tutorial_loop_reads_as_lean(model_file: Path) -> None:
    prof = memadvise.profile_file(str(model_file), batch_size=2, scaling=False)
    data = prof.to_dict()
    del data["train_loop"]
    assert memadvise.Profile.from_dict(data).train_loop == "lean"


def test_unknown_loop_is_a_usage_error(model_file: Path) -> None:
    with pytest.raises(memadvise.UsageError, match="tutorial or lean"):
        memadvise.profile_file(str(model_file), batch_size=2, scaling=False, train_loop="eager")


def test_custom_train_step_is_named_in_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "custom.py"
    path.write_text(
        MODEL_FILE
        + "\n\ndef train_step(model, inputs, optimizer):\n"
        "    loss = loss_fn(model(inputs), inputs)\n    loss.backward()\n"
        "    optimizer.step()\n    optimizer.zero_grad()\n    return loss\n",
        encoding="utf-8",
    )
    prof = memadvise.profile_file(str(path), batch_size=2, scaling=False)
    assert prof.train_loop == "train_step"
    assert memadvise.profile_file(str(path), batch_size=2, mode="inference", scaling=False).train_loop == ""
    assert torch.get_num_threads() == 1

"""``memadvise run train.py ARGS…``: an unmodified script, profiled over its first optimizer steps."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import groundtruth
import pytest
from typer.testing import CliRunner

from memadvise.cli import app
from memadvise.model.profile import load_profile

MODEL = """\
import torch
from torch import nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10))

def example_inputs(batch_size):
    return torch.randn(batch_size, 64)

def loss_fn(output, inputs):
    return nn.functional.cross_entropy(output, torch.zeros(output.shape[0], dtype=torch.long))
"""
SCRIPT = """\
import argparse
import torch
from mlp import build_model, example_inputs, loss_fn

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--log", required=True)
args = parser.parse_args()
model = build_model()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = example_inputs(args.batch)
for epoch in range(args.epochs):
    out = model(x)
    loss = loss_fn(out, x)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    with open(args.log, "a") as log:
        log.write(f"epoch {epoch}\\n")
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "mlp.py").write_text(MODEL)
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.usefixtures("one_thread")
def test_a_plain_loop_script_against_the_ground_truth(script: Path, tmp_path: Path) -> None:
    log, out = tmp_path / "log.txt", tmp_path / "p.json"
    argv = sys.argv[:]
    args = ["run", "-o", str(out), str(script), "--batch", "16", "--log", str(log)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert sys.argv == argv
    assert log.read_text() == "epoch 0\n"  # stopped inside the second step's optimizer.step()
    prof = load_profile(out)
    truth = groundtruth.measure_peak(tmp_path / "mlp.py", 16)  # the same two steps of the same loop
    error = abs(prof.peak_bytes - truth.peak_bytes) / truth.peak_bytes
    assert error <= 0.02, (prof.peak_bytes, truth.peak_bytes)
    model = groundtruth.load_model_file(tmp_path / "mlp.py").build_model()
    assert prof.param_bytes == 4 * sum(p.numel() for p in model.parameters())
    assert prof.steps == 2 and prof.batch_size == 16 and prof.optimizer == "adamw"


def test_continue_lets_the_script_finish(script: Path, tmp_path: Path) -> None:
    log, out = tmp_path / "log.txt", tmp_path / "p.json"
    args = [
        "run",
        "--continue",
        "--steps",
        "3",
        "-o",
        str(out),
        str(script),
        "--batch",
        "4",
        "--log",
        str(log),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert log.read_text().splitlines() == [f"epoch {i}" for i in range(5)]
    assert load_profile(out).steps == 3


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("import torch\nraise RuntimeError('no data')\n", ["train.py:2", "RuntimeError: no data"]),
        ("import sys\nsys.exit(3)\n", ["exited with status 3"]),
        ("print('nothing to train')\n", ["without calling a model in training mode"]),
    ],
)
def test_scripts_that_train_nothing(tmp_path: Path, source: str, fragments: list[str]) -> None:
    path = tmp_path / "train.py"
    path.write_text(source)
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("memadvise: error: ")
    for fragment in fragments:
        assert fragment in line, line


def test_a_missing_script(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.py")])
    assert result.exit_code == 2 and "not found" in result.stderr


TRAINER_SCRIPT = """\
import shutil
import sys
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=32))


class Tokens(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        ids = torch.randint(0, 300, (16,))
        return {"input_ids": ids, "labels": ids}


args = TrainingArguments(
    output_dir=sys.argv[1], max_steps=6, per_device_train_batch_size=4, report_to=[], use_cpu=True,
    save_strategy="no", logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
)
Trainer(model=model, args=args, train_dataset=Tokens()).train()
open(sys.argv[2], "w").write("finished")
"""


@pytest.mark.slow
def test_a_hugging_face_trainer_script(tmp_path: Path) -> None:
    path, out, done = tmp_path / "hf_train.py", tmp_path / "p.json", tmp_path / "done"
    path.write_text(TRAINER_SCRIPT)
    result = CliRunner().invoke(app, ["run", "-o", str(out), str(path), str(tmp_path / "trainer"), str(done)])
    assert result.exit_code == 0, result.stderr
    assert not done.exists()  # stopped after two steps
    prof = load_profile(out)
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=32))
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    assert prof.param_bytes == sum(unique.values())
    assert prof.steps == 2 and prof.batch_size == 4 and prof.layers[0].type == "GPT2LMHeadModel"
    assert prof.grad_bytes == prof.param_bytes and prof.optimizer == "adamw"


LIGHTNING_SCRIPT = """\
import shutil
import sys

import lightning.pytorch as L
from lit_model import Classifier, loader

trainer = L.Trainer(
    max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
)
trainer.fit(Classifier(), loader())
open(sys.argv[1], "w").write(f"finished after {trainer.global_step} steps")
"""


@pytest.mark.slow  # imports Lightning (about 4 s) when run alone
@pytest.mark.usefixtures("one_thread")
def test_a_lightning_script_against_the_ground_truth(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lightning_model as lm

    shutil.copy(lm.__file__, tmp_path / "lit_model.py")
    path, out, done = tmp_path / "lit_train.py", tmp_path / "p.json", tmp_path / "done"
    path.write_text(LIGHTNING_SCRIPT)
    result = CliRunner().invoke(app, ["run", "-o", str(out), str(path), str(done)])
    assert result.exit_code == 0, result.stderr
    assert not done.exists()  # stopped inside the second optimizer.step()
    prof = load_profile(out)
    params = sum(p.numel() * p.element_size() for p in lm.Classifier().parameters())
    assert prof.param_bytes == params and prof.grad_bytes == params and prof.optimizer == "adamw"
    assert prof.steps == 2 and prof.batch_size == lm.BATCH and prof.layers[0].type == "Classifier"
    assert prof.peak_phase == "optimizer"  # the update after optimizer.step()'s closure
    # The same fit() under the profiler, measured by groundtruth.analyse. The model is found at its first
    # forward pass, when the first batch is already made: the CPU profiler reports no free of memory made
    # before it started, but memadvise sees the batch's storage destroyed when Lightning replaces it.
    fit = lm.measure_fit_peak(steps=2)
    assert prof.peak_bytes == fit.peak_bytes, (prof.peak_bytes, fit.peak_bytes)

    result = CliRunner().invoke(app, ["run", "--continue", "-o", str(out), str(path), str(done)])
    assert result.exit_code == 0, result.stderr
    assert done.read_text() == "finished after 8 steps"  # two epochs of four batches, to the end
    assert load_profile(out).steps == 2


LOADER_SCRIPT = """\
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(96, 64)), batch_size=16)
WINDOW = globals().get("WINDOW")  # set by the test's ground truth: the measured window
window = None
for i, (x,) in enumerate(loader):
    if WINDOW is not None and window is None:
        window = torch.autograd.profiler.record_function(WINDOW)
        window.__enter__()
    out = model(x)
    loss = nn.functional.cross_entropy(out, torch.zeros(16, dtype=torch.long))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if window is not None and i == 1:
        window.__exit__(None, None, None)
        break
"""


@pytest.mark.usefixtures("one_thread")
def test_a_data_loader_loop_frees_its_first_batch(tmp_path: Path) -> None:
    """The first batch is made before the model's first forward pass, where the trace starts; the next
    batch replaces it after step 1 and the profile frees it there (the CPU profiler reports no free of
    memory made before it started)."""
    import gc
    import runpy

    from torch.profiler import ProfilerActivity, profile

    path, out = tmp_path / "loader_train.py", tmp_path / "p.json"
    path.write_text(LOADER_SCRIPT)
    result = CliRunner().invoke(app, ["run", "-o", str(out), str(path)])
    assert result.exit_code == 0, result.stderr
    prof = load_profile(out)
    assert prof.input_bytes == 4 * 16 * 64 and prof.steps == 2

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:  # the same two steps, all seen
        runpy.run_path(str(path), init_globals={"WINDOW": groundtruth._WINDOW})
    assert p.profiler is not None
    truth = groundtruth.analyse(list(p.profiler.kineto_results.events()))
    dataset_bytes = 4 * 96 * 64  # alive in the truth's window, and no model input
    assert prof.peak_bytes == truth.peak_bytes - dataset_bytes, (prof.peak_bytes, truth.peak_bytes)
    inputs = prof.timeline.bytes["inputs"]
    freed = inputs.index(0)
    assert set(inputs[:freed]) == {4 * 16 * 64} and not any(inputs[freed:])
    # when the loop takes the second batch: after step 1's optimizer step, before step 2's forward pass
    assert (prof.timeline.step[freed], prof.timeline.phase[freed]) == (0, "optimizer")
    assert 1 not in prof.timeline.step[:freed]

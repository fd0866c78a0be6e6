"""Leaks over ``--steps K``: planted leaks are found with their size and origin; clean loops report none."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import memadvise
from memadvise.capture.loader import load_model_file
from memadvise.model.profile import Profile

from .conftest import MODELS, line_of

ROOT = Path(__file__).resolve().parents[2]
BATCH = 8


def profile(path: Path | str, steps: int = 5, batch: int = BATCH) -> Profile:
    # scaling=False: the batch-scaling trace only serves what-if estimates, not the leak scan.
    return memadvise.profile_file(str(path), batch_size=batch, steps=steps, device="cpu", scaling=False)


def test_loss_kept_with_its_graph_is_a_leak_with_size_and_origin() -> None:
    path = MODELS / "loss_history.py"
    prof = profile(path)
    # The graph keeps what pow saved (the layer's batch x 1024 float32 output) and the loss itself.
    planted = BATCH * 1024 * 4 + 4
    assert prof.leak_bytes_per_step == pytest.approx(planted, rel=0.05)
    assert sum(leak.bytes_per_step for leak in prof.leaks) == prof.leak_bytes_per_step
    big = prof.leaks[0]
    assert big.module == "0" and "linear" in big.op
    assert big.source.endswith(f"loss_history.py:{line_of(path, 'out = model(inputs)')}")
    loss = next(leak for leak in prof.leaks if leak.module == "<loss>")
    assert loss.op == "aten::mean" and loss.bytes_per_step == 4
    assert loss.source.endswith(f"loss_history.py:{line_of(path, 'loss = out.pow(2).mean()')}")
    growth = [b - a for a, b in zip(prof.live_after_step[1:], prof.live_after_step[2:], strict=False)]
    assert growth == [planted] * 3


def test_module_caching_activations_on_self_is_a_leak_with_size_and_origin() -> None:
    path = MODELS / "activation_cache.py"
    prof = profile(path, steps=4)
    planted = BATCH * 512 * 4
    assert prof.leak_bytes_per_step == pytest.approx(planted, rel=0.05)
    (leak,) = prof.leaks
    assert (leak.module, leak.op, leak.tensors_per_step) == ("1", "aten::relu", 1.0)
    assert leak.source.endswith(f"activation_cache.py:{line_of(path, 'h = torch.relu(x)')}")
    assert len(prof.live_after_step) == 4


def test_the_peak_stays_the_max_over_the_first_two_steps() -> None:
    path = MODELS / "activation_cache.py"
    two, five = profile(path, steps=2), profile(path, steps=5)
    assert five.steps == 5 and two.steps == 2
    assert (five.peak_bytes, five.peak_step, five.peak_op) == (two.peak_bytes, two.peak_step, two.peak_op)
    assert five.peak_breakdown == two.peak_breakdown
    assert five.timeline.totals() == two.timeline.totals()
    assert two.leaks == () and two.live_after_step == ()


def _sample_models() -> list[str]:
    return [
        p.name
        for p in sorted((ROOT / "sample_models").glob("*.py"))
        if not p.name.startswith("_") and "FAKE_ONLY = True" not in p.read_text()
    ]


@pytest.mark.parametrize("name", _sample_models())
def test_clean_sample_models_report_no_leak_over_five_steps(name: str) -> None:
    prof = profile(ROOT / "sample_models" / name, steps=5, batch=1)
    assert prof.leaks == () and prof.leak_bytes_per_step == 0
    assert len(set(prof.live_after_step[1:])) == 1, prof.live_after_step


@pytest.mark.parametrize("factory", ["train_step", "train_step_clipped"])
def test_clean_custom_steps_report_no_leak(factory: str) -> None:
    spec = importlib.util.spec_from_file_location("clean_custom_step", MODELS / "clean_custom_step.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, inputs = module.build_model(), module.example_inputs(BATCH)
    prof = memadvise.profile_model(model, inputs, steps=5, train_step=getattr(module, factory))
    assert prof.leaks == ()
    assert prof.peak_breakdown["optimizer_state"] > 0 and prof.peak_breakdown["gradients"] > 0


def test_a_custom_step_equal_to_the_lean_step_has_the_same_peak() -> None:
    """The file's train_step() frees output and loss after backward(), as the lean loop does."""
    path = MODELS / "clean_custom_step.py"
    custom = memadvise.profile_file(str(path), batch_size=BATCH, device="cpu", scaling=False)
    loaded = load_model_file(path)
    torch.manual_seed(0)
    model, inputs = loaded.build(), loaded.inputs(BATCH)
    default = memadvise.profile_model(model, inputs, train_loop="lean")
    assert custom.peak_bytes == default.peak_bytes
    assert custom.peak_breakdown == default.peak_breakdown
    assert custom.peak_phase == default.peak_phase


def test_leaks_round_trip_through_json() -> None:
    prof = profile(MODELS / "activation_cache.py", steps=3)
    data = prof.to_dict()
    assert data["leak_bytes_per_step"] == BATCH * 512 * 4
    assert {"bytes_per_step", "module", "op", "source"} <= set(data["leaks"][0])
    again = Profile.from_dict(data)
    assert again.leaks == prof.leaks and again.live_after_step == prof.live_after_step

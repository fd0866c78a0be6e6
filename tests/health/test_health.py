"""``--health``: fp16 overflow, NaN origin, gradient figures, advice, and an unchanged peak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import memadvise
from memadvise.capture.health import FP16_MAX, _depth_flags
from memadvise.cli import app
from memadvise.model.profile import LayerHealth, Profile

MODELS = Path(__file__).resolve().parent / "models"
ZOO = Path(__file__).resolve().parents[1] / "zoo"
runner = CliRunner()


def traced(path: Path, health: bool = True) -> Profile:
    # scaling=False: the batch-scaling trace serves batch what-ifs only; health is gathered in the first.
    return memadvise.profile_file(str(path), batch_size=4, device="cpu", health=health, scaling=False)


def test_activations_beyond_65504_are_flagged_for_fp16_not_bf16() -> None:
    prof = traced(MODELS / "fp16_overflow.py")
    assert prof.health is not None
    flagged = prof.health.flagged("overflow", "float16")
    assert [f.module for f in flagged][:1] == ["2"] and flagged[0].value > FP16_MAX
    assert prof.health.flagged("overflow", "bfloat16") == []
    assert any("fp16 would overflow in `2`" in line and "bf16" in line for line in prof.health.advice)
    layers = {layer.name: layer for layer in prof.health.layers}
    assert layers["0"].max_abs_activation is not None and layers["0"].max_abs_activation < FP16_MAX
    assert layers["0"].grad_norm is not None and layers["0"].grad_norm > 0


def test_a_planted_nan_is_traced_to_its_layer() -> None:
    prof = traced(MODELS / "nan_layer.py")
    assert prof.health is not None
    (flag,) = prof.health.flagged("nonfinite")
    assert flag.module == "1" and "nan" in flag.detail
    assert prof.health.advice[0].startswith("`1` produces NaN/Inf")


@pytest.mark.parametrize(
    "path",
    [MODELS / "fp16_overflow.py", ZOO / "gpt2.py", ZOO / "cnn_inplace_bn.py", ZOO / "lstm_lm.py"],
    ids=lambda p: p.stem,
)
def test_health_leaves_the_measured_memory_unchanged(path: Path) -> None:
    plain, checked = traced(path, health=False), traced(path)
    assert checked.peak_bytes == plain.peak_bytes
    assert checked.peak_breakdown == plain.peak_breakdown
    assert checked.timeline.totals() == plain.timeline.totals()
    assert [layer.forward_temp_bytes for layer in checked.layers] == [
        layer.forward_temp_bytes for layer in plain.layers
    ]
    assert plain.health is None and checked.health is not None


def test_depth_flags_vanishing_and_exploding() -> None:
    order = ["a", "b", "c"]
    vanish = tuple(LayerHealth(n, grad_norm=g) for n, g in zip(order, (1e-6, 1e-3, 1.0), strict=True))
    explode = tuple(LayerHealth(n, grad_norm=g) for n, g in zip(order, (1e4, 10.0, 1.0), strict=True))
    steady = tuple(LayerHealth(n, grad_norm=g) for n, g in zip(order, (0.5, 1.0, 2.0), strict=True))
    assert [f.kind for f in _depth_flags(vanish, order)] == ["vanishing_gradients"]
    assert [f.kind for f in _depth_flags(explode, order)] == ["exploding_gradients"]
    assert _depth_flags(steady, order) == []


def test_health_json_round_trip_and_cli() -> None:
    result = runner.invoke(
        app,
        ["profile", str(MODELS / "fp16_overflow.py"), "--health", "--device", "cpu", "-b", "4", "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["health"]["flags"][0]["kind"] == "overflow"
    restored = Profile.from_dict(data)
    # The JSON read back is the health the library gathers (same seeded model and batch), as objects...
    assert restored.health == traced(MODELS / "fp16_overflow.py").health
    assert restored.health is not None and restored.health.flagged("overflow", "float16")[0].module == "2"
    # ...and written out again it is the same JSON.
    assert restored.to_dict()["health"] == data["health"]
    table = runner.invoke(app, ["profile", str(MODELS / "fp16_overflow.py"), "--health", "--device", "cpu"])
    assert "Numerical health" in table.stdout and "fp16 would overflow in `2`" in table.stdout


def test_health_on_a_fake_trace_is_a_usage_error() -> None:
    result = runner.invoke(app, ["profile", str(MODELS / "fp16_overflow.py"), "--health", "--fake"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--health needs real values" in result.stderr


def test_precision_estimates_carry_the_health_advice() -> None:
    """The analyzer's fp16 estimate names the overflowing layer; its bf16 estimate does not warn."""
    from memadvise.analyzer import Precision, Scenario, estimate

    prof = traced(MODELS / "fp16_overflow.py")
    fp16 = estimate(prof, Scenario(precision=Precision.FP16_MIXED))
    assert any("overflow in 2" in note for note in fp16.notes)
    assert any("prefer bf16" in note for note in fp16.notes)
    bf16 = estimate(prof, Scenario(precision=Precision.BF16_MIXED))
    assert not any("overflow" in note for note in bf16.notes)

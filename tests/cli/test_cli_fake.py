"""``memadvise profile --fake`` / ``--device meta`` / ``--target-device`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app

TINY = str(Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["profile", TINY, *args])


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_fake_trace_matches_the_real_trace_of_a_plain_model() -> None:
    real = as_json(invoke("--device", "cpu", "--format", "json", "-b", "4"))
    fake = as_json(invoke("--fake", "--target-device", "cpu", "--format", "json", "-b", "4"))
    assert real["trace"] == "real" and fake["trace"] == "fake"
    for key in ("param_bytes", "grad_bytes", "activation_bytes"):
        assert fake[key] == real[key], key
    # The optimizer's step counters are the only tensors whose size differs (host scalars on a target).
    assert abs(fake["peak_bytes"] - real["peak_bytes"]) / real["peak_bytes"] < 0.01


@pytest.mark.parametrize("spelling", [("--fake",), ("--device", "meta")])
def test_both_spellings_trace_fake_and_default_to_cuda_kernels(spelling: tuple[str, ...]) -> None:
    data = as_json(invoke(*spelling, "--format", "json"))
    assert data["trace"] == "fake"
    assert data["device"] == "cuda"
    # CUDA's caching allocator hands out 512-byte blocks: every parameter storage is rounded up.
    exact = as_json(invoke("--device", "cpu", "--format", "json"))["param_bytes"]
    assert data["peak_breakdown"]["parameters"] % 512 == 0
    assert data["peak_breakdown"]["parameters"] >= exact


def test_table_says_the_trace_is_fake() -> None:
    result = invoke("--fake")
    assert result.exit_code == 0, result.stderr
    assert "kernels (fake trace)" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--fake", "--device", "cpu"), "--fake"),
        (("--target-device", "cpu"), "--target-device"),
        (("--device", "cpu", "--target-device", "cuda"), "--target-device"),
    ],
)
def test_conflicting_device_options_are_one_line_errors(args: tuple[str, ...], words: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error:") and words in lines[0]

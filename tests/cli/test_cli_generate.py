"""``--mode generate`` on the command line: clear one-line errors, estimates and serving plans from a
saved generation profile (hand-built, no model runs)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hand_built import hand_built_generation, hand_built_profile
from typer.testing import CliRunner, Result

from memadvise.cli import app

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture
def gen_json(tmp_path: Path) -> Path:
    path = tmp_path / "gen.json"
    replace(hand_built_profile(), batch_size=1, mode="generate", generation=hand_built_generation()).save(
        path
    )
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr


def test_generate_without_new_tokens_is_a_usage_error() -> None:
    _one_line_error(invoke("profile", str(MODELS_DIR / "tiny_mlp.py"), "--mode", "generate"), "--new-tokens")


def test_new_tokens_without_generate_is_a_usage_error() -> None:
    _one_line_error(
        invoke("profile", str(MODELS_DIR / "tiny_mlp.py"), "--new-tokens", "4"), "--mode generate"
    )


def test_estimate_rejects_an_unknown_kv_dtype(gen_json: Path) -> None:
    _one_line_error(invoke("estimate", str(gen_json), "--kv-dtype", "fp6"), "fp6")


def test_estimate_of_a_generation_profile_in_json(gen_json: Path) -> None:
    result = invoke(
        "estimate", str(gen_json), "-b", "4", "--new-tokens", "64", "--kv-dtype", "fp8", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scenario"]["kv_cache_bytes"] == 2 * 4 * (10 + 64) * 4 * 1
    assert data["peak_phase"] in ("prefill", "decode")


def test_serving_plan_from_a_generation_profile(gen_json: Path) -> None:
    args = ("plan", str(gen_json), "--mode", "generate", "--gpu", "1MB", "--reserve", "0")
    result = invoke(*args, "--prompt-len", "32", "--new-tokens", "32", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_batch"] >= 1
    _one_line_error(invoke(*args, "--weights", "int3"), "int3")

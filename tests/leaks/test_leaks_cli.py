"""``memadvise profile --steps K`` on the command line: the report, JSON fields and one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from memadvise.cli import app

from .conftest import MODELS

runner = CliRunner()


def _one_line_error(args: list[str], *fragments: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def test_steps_json_has_leak_fields() -> None:
    path = str(MODELS / "activation_cache.py")
    result = runner.invoke(app, ["profile", path, "--steps", "3", "-b", "4", "--device", "cpu", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["steps"] == 3 and data["leak_bytes_per_step"] == 4 * 512 * 4
    assert data["leaks"][0]["module"] == "1" and data["leaks"][0]["op"] == "aten::relu"
    assert len(data["live_after_step"]) == 3


def test_clean_json_reports_zero() -> None:
    path = str(MODELS.parents[1] / "models" / "tiny_mlp.py")
    result = runner.invoke(app, ["profile", path, "--steps", "3", "--device", "cpu", "-f", "json"])
    data = json.loads(result.stdout)
    assert data["leak_bytes_per_step"] == 0 and data["leaks"] == []


def test_table_report_names_the_leak() -> None:
    path = str(MODELS / "activation_cache.py")
    result = runner.invoke(app, ["profile", path, "--steps", "3", "-b", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Leaking 8.0 KiB per step" in result.stdout and "activation_cache.py:17" in result.stdout


def test_steps_below_three_is_a_usage_error() -> None:
    _one_line_error(["profile", str(MODELS / "activation_cache.py"), "--steps", "2"], "--steps", "at least 3")


def test_train_step_that_raises_is_one_line() -> None:
    _one_line_error(
        ["profile", str(MODELS / "step_raises.py"), "--device", "cpu"],
        "step_raises.py:20",
        "train_step() raised ValueError: reward buffer is empty",
    )


def test_train_step_returning_a_non_scalar_is_one_line() -> None:
    _one_line_error(
        ["profile", str(MODELS / "step_nonscalar.py"), "--device", "cpu", "-b", "2"],
        "step_nonscalar.py",
        "train_step() returned a tensor of shape (2, 3)",
    )

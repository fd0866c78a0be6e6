"""The command line never writes over its input, and every usage mistake is one line with exit code 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memadvise: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def model(tmp_path: Path, models_dir: Path) -> Path:
    path = tmp_path / "model.py"
    shutil.copy(models_dir / "tiny_mlp.py", path)
    return path


# -- never overwrite an input -------------------------------------------------------------------
def test_profile_refuses_to_write_its_report_over_the_model_file(runner: CliRunner, model: Path) -> None:
    before = model.read_bytes()
    for output, target in ((model, model), (model, f"{model}:build_model")):
        result = runner.invoke(app, ["profile", str(target), "--device", "cpu", "-o", str(output)])
        one_line_error(result, "never overwrites its input")
        assert model.read_bytes() == before


def test_output_through_a_symlink_or_hard_link_to_the_input_is_refused(
    runner: CliRunner, model: Path, saved: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link.py"
    link.symlink_to(model)
    hard = tmp_path / "hard.json"
    os.link(saved, hard)
    before = model.read_bytes(), saved.read_bytes()
    one_line_error(runner.invoke(app, ["profile", str(model), "--device", "cpu", "-o", str(link)]))
    one_line_error(runner.invoke(app, ["estimate", str(saved), "-o", str(hard)]), "input file")
    assert (model.read_bytes(), saved.read_bytes()) == before


@pytest.mark.parametrize(
    "command",
    [
        ["estimate", "{p}", "-o", "{p}"],
        ["report", "{p}", "-o", "{p}", "--format", "table"],
        ["plan", "{p}", "--gpu", "24GB", "-o", "{p}"],
    ],
)
def test_saved_profile_is_never_overwritten(runner: CliRunner, saved: Path, command: list[str]) -> None:
    before = saved.read_bytes()
    result = runner.invoke(app, [part.format(p=saved) for part in command])
    one_line_error(result, "never overwrites its input")
    assert saved.read_bytes() == before


# -- the parser's own mistakes: one line ----------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["profile", "m.py", "-b", "0"], "--batch-size"),
        (["plan", "p.json", "--gpus", "0"], "--gpus"),
        (["plan", "p.json", "--goal", "cheapest-ever"], "'cheapest-ever' is not one of"),
        (["profile", "m.py", "--no-such-option"], "No such option: --no-such-option"),
        (["report"], "Missing argument"),
        (["report", "p.json", "--top", "x"], "--top"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["profile", "m.py", "--steps", "99999999999999999999999"], "less than or equal to 1000"),
        (["estimate", "p.json", "-b", "99999999999"], "--batch-size"),
        (["plan", "p.json", "--nodes", "10000000"], "--nodes"),
        (["profile", "m.py", "--depth", "5000"], "--depth"),
        (["check", "m.py", "--top", "0"], "--top"),
    ],
)
def test_usage_mistakes_are_one_line(runner: CliRunner, args: list[str], fragment: str) -> None:
    line = one_line_error(runner.invoke(app, args), fragment)
    assert "--help" in line and "╭" not in line


def test_help_is_unchanged_by_the_one_line_errors(runner: CliRunner) -> None:
    result = runner.invoke(app, ["profile", "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout and "--batch-size" in result.stdout
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "Usage" in result.stdout + result.stderr


# -- options that apply only to a model file ------------------------------------------------------
@pytest.mark.parametrize(
    "flags",
    [
        ["--fake"],
        ["--device", "cpu"],
        ["--fake", "--target-device", "cpu"],
        ["--trace-batch-size", "2"],  # typed, even at its default value
        ["--train-loop", "lean"],
        ["--memory-limit", "8GiB"],
        ["--expert-load", "worst"],
    ],
    ids=str,
)
@pytest.mark.parametrize("command", [["estimate"], ["plan", "--gpu", "24GB"]], ids=str)
def test_trace_options_on_a_saved_profile_are_an_error(
    runner: CliRunner, saved: Path, command: list[str], flags: list[str]
) -> None:
    result = runner.invoke(app, [command[0], str(saved), *command[1:], *flags])
    one_line_error(result, flags[0], "only when tracing a model file")


def test_options_left_at_their_defaults_are_no_error_on_a_saved_profile(
    runner: CliRunner, saved: Path
) -> None:
    for command in (["estimate", str(saved), "-b", "4"], ["plan", str(saved), "--gpu", "24GB"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.stderr


def test_non_training_profile_is_not_told_about_an_optimizer_it_was_not_given(
    runner: CliRunner, saved: Path, tmp_path: Path
) -> None:
    data = json.loads(saved.read_text())
    data["mode"] = "inference"
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(data))
    result = runner.invoke(app, ["plan", str(crafted), "--gpu", "24GB"])
    assert "--optimizer" not in result.stderr, result.stderr
    result = runner.invoke(app, ["estimate", str(crafted), "--optimizer", "sgd"])
    one_line_error(result, "--optimizer applies to training profiles", "inference")

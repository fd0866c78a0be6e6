"""``memadvise profile`` failures: exit code 2 and one line on stderr for every user mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

import memadvise.api
from memadvise.cli import app

BAD_TARGETS = [
    "syntax_error.py",
    "import_raises.py",
    "no_build_model.py",
    "no_example_inputs.py",
    "build_raises.py",
    "returns_not_module.py",
    "example_inputs_raises.py",
    "forward_raises.py",
    "loss_raises.py",
    "loss_not_callable.py",
    "nonscalar_loss.py",
    "factories.py",  # no build_model in it
    "factories.py:build_huge",
    "no_such_model.py",
]
USER_CODE_FAILURES = [  # the error comes from a line of the model file
    "syntax_error.py",
    "import_raises.py",
    "build_raises.py",
    "example_inputs_raises.py",
    "forward_raises.py",
    "loss_raises.py",
]


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("memadvise: error: ") and line.strip() != "memadvise: error:"
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in result.output and "Traceback" not in result.stdout
    assert result.stdout == ""
    return line


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_model_file(runner: CliRunner, models_dir: Path, target: str) -> None:
    result = runner.invoke(app, ["profile", str(models_dir / target), "--device", "cpu"])
    file_name = target.split(":")[0]
    assert_one_line_error(result, file_name)


@pytest.mark.parametrize("target", USER_CODE_FAILURES)
def test_bad_model_file_error_points_at_a_line(runner: CliRunner, models_dir: Path, target: str) -> None:
    result = runner.invoke(app, ["profile", str(models_dir / target), "--device", "cpu"])
    line = assert_one_line_error(result)
    assert f"{models_dir / target}:" in line
    after_path = line.split(f"{models_dir / target}:", 1)[1]
    number = after_path.split(":", 1)[0]
    assert number.isdigit() and int(number) > 0, line


@pytest.mark.parametrize("target", ["forward_raises.py", "build_raises.py", "syntax_error.py"])
def test_debug_shows_the_traceback(runner: CliRunner, models_dir: Path, target: str) -> None:
    result = runner.invoke(app, ["profile", str(models_dir / target), "--device", "cpu", "--debug"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert f'File "{models_dir / target}"' in result.stderr  # the frame in the model file
    assert result.stderr.rstrip().splitlines()[-1].startswith("memadvise: error: ")


def test_directory_instead_of_a_file(runner: CliRunner, models_dir: Path) -> None:
    assert_one_line_error(runner.invoke(app, ["profile", str(models_dir)]), "directory")


@pytest.mark.parametrize(
    "options",
    [
        ["--mode", "foo"],
        ["--optimizer", "lion"],
        ["--batch-size", "0"],
        ["--batch-size", "-3"],
        ["--batch-size", "two"],
        ["--format", "xml"],
        ["--top", "0"],
        ["--device", "tpu"],
        ["--no-such-option"],
    ],
)
def test_bad_option_values(runner: CliRunner, models_dir: Path, options: list[str]) -> None:
    result = runner.invoke(app, ["profile", str(models_dir / "tiny_mlp.py"), *options])
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert options[0] in result.stderr  # click names the option it rejected


def test_missing_model_file_argument(runner: CliRunner) -> None:
    result = runner.invoke(app, ["profile"])
    assert result.exit_code == 2
    assert "MODEL_FILE" in result.stderr


def test_unknown_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["analyse", "x.py"])
    assert result.exit_code == 2
    assert "analyse" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_cuda_device(runner: CliRunner, models_dir: Path) -> None:
    result = runner.invoke(app, ["profile", str(models_dir / "tiny_mlp.py"), "--device", "cuda"])
    assert_one_line_error(result, "cuda")


def test_unwritable_output(runner: CliRunner, models_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "p.json"
    result = runner.invoke(
        app, ["profile", str(models_dir / "tiny_mlp.py"), "--device", "cpu", "-o", str(target)]
    )
    assert_one_line_error(result, "cannot write", "p.json")
    assert not target.exists()


def test_internal_errors_exit_3_with_a_hint(
    runner: CliRunner, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero in the tracer")

    monkeypatch.setattr(memadvise.api, "profile_file", broken)
    result = runner.invoke(app, ["profile", str(models_dir / "tiny_mlp.py")])
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("memadvise: error: internal error: ZeroDivisionError: division by zero")
    assert "--debug" in lines[0]
    assert "Traceback" not in result.output

    result = runner.invoke(app, ["profile", str(models_dir / "tiny_mlp.py"), "--debug"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "--debug" not in result.stderr.splitlines()[-1]


def test_interrupt_exits_130(runner: CliRunner, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(memadvise.api, "profile_file", interrupted)
    result = runner.invoke(app, ["profile", str(models_dir / "tiny_mlp.py")])
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["memadvise: error: interrupted"]


def test_help() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "profile" in top.stdout and "--version" in top.stdout
    sub = runner.invoke(app, ["profile", "--help"])
    assert sub.exit_code == 0
    assert "Examples:" in sub.stdout
    examples = sub.stdout.split("Examples:", 1)[1]
    assert "memadvise profile" in examples and ":build_large" in examples
    for option in ("--batch-size", "--mode", "--optimizer", "--device", "--format", "--output", "--debug"):
        assert option in sub.stdout, option


def test_version_option() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"memadvise {memadvise.__version__}\n"

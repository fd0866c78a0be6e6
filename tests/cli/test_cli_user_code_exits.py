"""Whatever a model file does to leave early is one line naming the file and function, exit code 2 —
never a passed gate (``sys.exit(0)``), never our regression code (1), never a traceback; Ctrl-C is 130."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memadvise.cli import app

HEAD = "import sys\nimport torch\n"
FUNCS = {
    "build_model": "def build_model():\n    return torch.nn.Linear(8, 4)\n",
    "example_inputs": "def example_inputs(batch_size):\n    return torch.randn(batch_size, 8)\n",
}

CASES = {  # name: (code replacing or added to the working model file, fragment of the error)
    "exit0_at_import": ("sys.exit(0)\n", "importing the file raised SystemExit(0)"),
    "systemexit_message": ("raise SystemExit('msg')\n", "importing the file raised SystemExit('msg')"),
    "exit3_in_build_model": (
        "def build_model():\n    sys.exit(3)\n",
        "build_model() raised SystemExit(3)",
    ),
    "baseexception_in_example_inputs": (
        "class Boom(BaseException):\n    pass\n\n"
        "def example_inputs(batch_size):\n    raise Boom('no batch')\n",
        "example_inputs() raised Boom: no batch",
    ),
    "broken_str_in_loss": (
        "class Odd(Exception):\n    def __str__(self):\n        raise ValueError\n\n"
        "def loss_fn(output, inputs):\n    raise Odd()\n",
        "loss_fn() raised Odd",
    ),
    "exit_in_forward": (
        "class Net(torch.nn.Module):\n    def forward(self, x):\n        sys.exit(0)\n\n"
        "def build_model():\n    return Net()\n",
        "the forward pass raised SystemExit(0)",
    ),
}


def model_file(folder: Path, name: str, code: str) -> Path:
    """The working model file with ``code`` after it (its definitions replace the working ones)."""
    path = folder / f"{name}.py"
    path.write_text(HEAD + "".join(FUNCS.values()) + textwrap.dedent(code), encoding="utf-8")
    return path


def assert_one_line(result: object, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_code_leaving_early_is_one_line_exit_2(runner: CliRunner, tmp_path: Path, case: str) -> None:
    code, fragment = CASES[case]
    path = model_file(tmp_path, case, code)
    profile = runner.invoke(app, ["profile", str(path), "--device", "cpu", "--mode", "train"])
    assert_one_line(profile, f"{case}.py:", fragment)
    check = runner.invoke(
        app, ["check", str(path), "-B", str(tmp_path / "base.json"), "--update", "--device", "cpu"]
    )
    assert_one_line(check, f"{case}.py:", fragment)
    assert not (tmp_path / "base.json").exists()


@pytest.mark.parametrize("command", [["estimate"], ["plan", "--gpu", "24GB"]], ids=str)
def test_estimate_and_plan_name_the_exit_too(runner: CliRunner, tmp_path: Path, command: list[str]) -> None:
    path = model_file(tmp_path, "exits", CASES["exit3_in_build_model"][0])
    result = runner.invoke(app, [command[0], str(path), *command[1:], "--device", "cpu"])
    assert_one_line(result, "exits.py:", "build_model() raised SystemExit(3)")


def test_ctrl_c_in_user_code_is_still_an_interrupt(runner: CliRunner, tmp_path: Path) -> None:
    path = model_file(tmp_path, "interrupted", "def build_model():\n    raise KeyboardInterrupt\n")
    result = runner.invoke(app, ["profile", str(path), "--device", "cpu"])
    assert result.exit_code == 130 and result.stderr.strip() == "memadvise: error: interrupted"


def test_model_file_sees_a_clean_argv(runner: CliRunner, tmp_path: Path) -> None:
    code = """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    ARGS = parser.parse_args()  # memadvise's own options are not the model file's
    assert sys.argv == [__file__], sys.argv
    """
    path = model_file(tmp_path, "uses_argparse", code)
    argv = ["profile", str(path), "--device", "cpu", "--mode", "inference", "--top", "3"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.stderr

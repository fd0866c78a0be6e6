"""Every ``memadvise`` command in README.md's shell blocks runs as written, from an empty folder, on a
machine without a GPU.

Which commands run here, by one rule read from the command itself:

- ``# needs a GPU`` in its comment: run where there is no GPU, it must fail with one clear line (exit 2);
- ``# fails`` in its comment: it must fail with one clear line (exit 2);
- ``# slow`` in its comment, or any other target than the saved profiles below (a model file, a config
  folder, a Hub, timm or torchvision name, a profile the README makes by another trace): a real or fake
  trace, which takes seconds to minutes, so it is skipped here (listed as skipped, with the reason);
- everything else runs and must exit 0: ``--help``, and estimate/plan/report on the saved profiles the
  README makes (``gpt2.json``, ``profile.json``), which this test makes once from the test-size GPT-2.

``pytest -v`` lists each command with its outcome.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memadvise.cli import app
from memadvise.cli.common import cuda_visible

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TINY_GPT2 = ROOT / "tests" / "zoo" / "gpt2.py"
#: The saved profiles README's commands read, and how README makes them (a trace: skipped here).
SAVED = ("gpt2.json", "profile.json")


def readme_commands() -> list[str]:
    """``memadvise …`` lines of the README's bash blocks, and the ``$ memadvise …`` prompts of its console
    blocks (their other lines are output)."""
    text = README.read_text(encoding="utf-8")
    lines = []
    for kind, block in re.findall(r"```(bash|console)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if kind == "console" and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ").strip()
            if line.startswith("memadvise ") or line == "memadvise":
                lines.append(line)
    return lines


def kind(command: str) -> str:
    comment = command.partition("#")[2]
    if "needs a GPU" in comment:
        return "gpu"
    if "fails" in comment:
        return "fails"
    if "slow" in comment:
        return "slow"
    args = shlex.split(command, comments=True)[1:]
    if "--help" in args or not args:
        return "runs"
    target = next((a for a in args[1:] if not a.startswith("-")), None)
    if args[0] not in ("estimate", "plan", "report") or target not in SAVED:
        return "slow"  # a trace, or a file only a trace makes
    if any(re.match(r".+\.py(:\w+)?$", arg) for arg in args):
        return "slow"  # a model file: traced
    return "runs"


COMMANDS = readme_commands()


def test_the_readme_has_commands_of_each_kind() -> None:
    kinds = [kind(c) for c in COMMANDS]
    assert kinds.count("runs") >= 10 and "slow" in kinds and "gpu" in kinds, kinds


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder holding only the saved profiles the README's commands read, made from the tiny
    GPT-2 (same module names as the sample's: transformer.wte, transformer.h.0, …)."""
    where = tmp_path_factory.mktemp("readme")
    first = where / SAVED[0]
    result = CliRunner().invoke(
        app, ["profile", str(TINY_GPT2), "-b", "2", "--device", "cpu", "-o", str(first)]
    )
    assert result.exit_code == 0, result.stderr
    for name in SAVED[1:]:
        (where / name).write_bytes(first.read_bytes())
    return where


@pytest.mark.parametrize("command", COMMANDS, ids=COMMANDS)
def test_readme_command(command: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    what = kind(command)
    if what == "slow":
        pytest.skip("slow: traces a model file (or marked # slow)")
    if what == "gpu" and cuda_visible():
        pytest.skip("needs a GPU: checked where there is none")
    monkeypatch.chdir(folder)
    args = shlex.split(command, comments=True)[1:]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    if what in ("gpu", "fails"):
        assert result.exit_code == 2, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), result.stderr
        return
    assert result.exit_code == 0, f"{command}\n{result.stderr}"
    assert result.stdout.strip() or "wrote " in result.stderr
    assert "Traceback" not in result.stderr

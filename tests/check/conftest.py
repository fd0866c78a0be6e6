"""Shared pieces of the memory-check tests: a work folder holding a copy of the tiny model, and the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

CHECK_MODELS = Path(__file__).resolve().parent / "models"
TINY = "models/tiny_mlp.py"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current folder with ``models/tiny_mlp.py``; no CI variables, a wide console."""
    (tmp_path / "models").mkdir()
    shutil.copy(CHECK_MODELS / "tiny_mlp.py", tmp_path / TINY)
    monkeypatch.chdir(tmp_path)
    for name in ("MEMADVISE_TINY_WIDTH", "GITHUB_ACTIONS", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def memcheck() -> Callable[..., Result]:
    """Run ``memadvise check ARGS`` in-process (stdout and stderr kept apart)."""
    from memadvise.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["check", *args])

    return invoke

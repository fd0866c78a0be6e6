"""Shared pieces of the command-line tests: the runner and the model files they profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS_DIR


@pytest.fixture
def runner() -> CliRunner:
    """stdout and stderr are kept apart (click >= 8.2 always separates them)."""
    return CliRunner()


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny MLP's profile (batch 2, CPU) saved as JSON, as `estimate` and `plan` read it."""
    from memadvise.cli import app

    path = tmp_path_factory.mktemp("saved") / "tiny.json"
    result = CliRunner().invoke(
        app, ["profile", str(MODELS_DIR / "tiny_mlp.py"), "-b", "2", "--device", "cpu", "-o", str(path)]
    )
    assert result.exit_code == 0, result.stderr
    return path

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

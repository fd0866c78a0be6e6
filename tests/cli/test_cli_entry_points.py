"""The installed entry points in real processes: ``python -m memadvise`` and the ``memadvise`` script."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import memadvise

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["COLUMNS"] = "100"
    return env


def test_python_dash_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memadvise", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"memadvise {memadvise.__version__}\n"
    assert proc.stderr == ""
    assert importlib.metadata.version("memadvise") == memadvise.__version__


def test_console_script_profiles_a_model_with_a_clean_stderr() -> None:
    script = shutil.which("memadvise", path=str(Path(sys.executable).parent))
    assert script is not None, "the memadvise console script is not installed beside this Python"
    proc = subprocess.run(
        [script, "profile", "tests/models/tiny_mlp.py", "--format", "json", "--device", "cpu", "-b", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no native profiler log lines leak through
    data = json.loads(proc.stdout)
    assert data["model"] == "tiny_mlp" and data["batch_size"] == 2
    assert data["param_bytes"] == 4 * (8 * 16 + 16 + 16 * 4 + 4)
    assert sum(data["peak_breakdown"].values()) == data["peak_bytes"]

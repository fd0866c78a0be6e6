"""The profiler's own log lines ("USDT: ... profiler_start", written by native code on descriptor 2) never
reach the user: not the pytest plugin's captured stderr, not a replaced ``sys.stderr`` (a notebook's),
not the command line's stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
CHECK_MODELS = Path(__file__).resolve().parent / "models"
LOG_MARKS = ("profiler_start", "profiler_stop", "USDT")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}  # kineto's default level
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def _clean(text: str) -> None:
    leaked = [line for line in text.splitlines() if any(mark in line for mark in LOG_MARKS)]
    assert not leaked, leaked


@pytest.mark.slow
def test_plugin_captured_stderr_has_no_profiler_lines(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("pytest_plugins = ['memadvise.pytest_plugin']")
    (pytester.path / "models").mkdir()
    shutil.copy(CHECK_MODELS / "tiny_mlp.py", pytester.path / "models" / "tiny_mlp.py")
    pytester.makepyfile(
        test_memory="""
        import sys
        import pytest

        @pytest.mark.memadvise(max_peak="1MiB", batch_size=4)
        def test_within():
            print("the test's own stderr line", file=sys.stderr)
            return "models/tiny_mlp.py"
        """
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "test_memory.py"],
        cwd=pytester.path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the test's own stderr line" in done.stdout  # -rA shows the captured stderr
    _clean(done.stdout)
    _clean(done.stderr)


SCRIPT = """
import io, sys
import torch
import memadvise
from memadvise.cli import app

sys.stderr = io.StringIO()  # as in a notebook: Python's stderr is not descriptor 2
memadvise.profile_model(torch.nn.Linear(4, 4), torch.randn(2, 4))
sys.stderr = sys.__stderr__
print("library done", flush=True)
try:  # then the command line, in the same process: its stderr is descriptor 2
    app(["profile", sys.argv[1], "--device", "cpu"], prog_name="memadvise")
except SystemExit as exc:
    print("exit", exc.code)
"""


@pytest.mark.slow
def test_a_replaced_sys_stderr_and_the_cli_get_no_profiler_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(CHECK_MODELS / "tiny_mlp.py")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "library done" in done.stdout and "Peak" in done.stdout, done.stdout
    assert done.stdout.strip().endswith("exit 0"), done.stderr
    _clean(done.stderr)

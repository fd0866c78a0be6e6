"""Long runs say where they are when stderr is not a terminal, and a run that may not fit in RAM says so
before it starts."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

import memadvise.cli.common as common
from memadvise.capture.host_memory import STATE_COPIES, ram_warning
from memadvise.cli import app

TINY = str(Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py")


def test_progress_lines_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "PROGRESS_INTERVAL", 0.0)  # a line at every phase (the default waits 10 s)
    result = CliRunner().invoke(app, ["profile", TINY, "--device", "cpu", "-b", "2"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("memadvise: Profiling tiny_mlp.py: ") for line in lines), lines
    for phase in ("step 1/2 forward", "step 1/2 backward", "step 2/2 optimizer"):
        assert any(phase in line and "s so far)" in line for line in lines), (phase, lines)
    assert lines[-1].split(": ")[-1].startswith("done in ")
    assert "Peak" in result.stdout  # the report is untouched, on stdout


def test_quiet_when_the_run_is_short() -> None:
    result = CliRunner().invoke(app, ["profile", TINY, "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def test_a_run_that_may_not_fit_in_ram_says_so_first(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_params = 4 * (8 * 16 + 16 + 16 * 4 + 4)  # tiny_mlp: Linear(8, 16), Linear(16, 4) in fp32
    Memory = namedtuple("Memory", "total available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(1 << 30, tiny_params))  # less than 4x
    result = CliRunner().invoke(app, ["profile", TINY, "--device", "cpu", "--memory-limit", "64GiB"])
    assert result.exit_code == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("memadvise: warning: this run may not fit in RAM")
    assert "--fake" in first
    assert f"take about {4 * tiny_params / 1024:.1f} KiB" in first  # weights, gradients, two AdamW moments


@pytest.mark.parametrize(
    ("mode", "optimizer", "copies"), [("train", "adamw", 4), ("train", "sgd", 2), ("inference", "adamw", 1)]
)
def test_ram_rule_counts_weights_gradients_and_state(mode: str, optimizer: str, copies: int) -> None:
    params = 1000
    assert (STATE_COPIES[optimizer] + 1 if mode == "train" else 1) == copies
    assert ram_warning(params, mode, optimizer, 8, False, available=2 * copies * params) is None
    assert ram_warning(params, mode, optimizer, 8, False, available=2 * copies * params - 2) is not None

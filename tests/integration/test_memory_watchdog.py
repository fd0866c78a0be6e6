"""The memory watchdog stops a real trace that grows past its limit, cleanly, and leaves Ctrl-C alone.

The runaway model (tests/models/runaway_forward.py) hoards 4 MiB blocks in its forward pass up to
1 GiB and then returns normally: without the watchdog these runs finish without an error, so the
error itself shows the watchdog stopped them, and the resident memory it reports shows where.
"""

from __future__ import annotations

import _thread
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from memadvise.api import profile_file
from memadvise.capture.watchdog import MemoryWatchdog, default_limit
from memadvise.errors import MemoryLimitError, UsageError

MODELS = Path(__file__).resolve().parents[1] / "models"
sys.path.insert(0, str(MODELS))
RUNAWAY = str(MODELS / "runaway_forward.py")
HEADROOM = 192 * 2**20


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.slow  # the first real trace of a session warms PyTorch up (about 5 s)
def test_a_runaway_forward_is_stopped_at_the_limit() -> None:
    limit = rss() + HEADROOM
    with pytest.raises(MemoryLimitError) as info:
        profile_file(RUNAWAY, device="cpu", memory_limit=limit, scaling=False)
    message = str(info.value)
    assert "\n" not in message
    assert "stopped in forward of step 1" in message and "--fake" in message
    assert "set by --memory-limit" in message
    # it stopped near the limit, far below the 1 GiB the forward would have hoarded
    assert rss() < limit + 512 * 2**20
    # the process is still usable: hooks are gone and a next trace runs
    profile = profile_file(str(MODELS / "tiny_mlp.py"), device="cpu", scaling=False)
    assert profile.peak_bytes > 0


def test_the_batch_scaling_trace_is_named_through_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's Mamba case: fine at the asked batch, too large at the second trace (twice the batch)."""
    from memadvise.cli import app

    monkeypatch.setenv("MEMADVISE_TEST_HOARD_AT_BATCH", "2")
    limit = str(rss() + HEADROOM)
    result = CliRunner().invoke(
        app, ["profile", RUNAWAY, "--device", "cpu", "-b", "1", "--format", "json", "--memory-limit", limit]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: the real trace stopped in forward"), (
        lines
    )
    assert "batch-scaling trace" in lines[0] and "--no-scaling" in lines[0] and "--fake" in lines[0]


def test_a_limit_below_what_the_process_holds_is_refused() -> None:
    with pytest.raises(UsageError, match="below what memadvise already holds"):
        profile_file(str(MODELS / "tiny_mlp.py"), device="cpu", memory_limit="1MiB", scaling=False)


def test_fake_traces_are_not_watched() -> None:
    """A fake trace allocates nothing, so even a tiny limit does not apply."""
    profile = profile_file(str(MODELS / "tiny_mlp.py"), device="meta", memory_limit="1MiB", scaling=False)
    assert profile.trace == "fake"


def test_ctrl_c_stays_a_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), MemoryWatchdog(rss() + 2**30):
        _thread.interrupt_main()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass


def test_the_default_limit_leaves_a_margin_of_what_is_available() -> None:
    limit, source = default_limit()
    available = psutil.virtual_memory().available
    assert rss() <= limit <= rss() + available
    assert "available" in source


def test_a_model_in_memory_is_stopped_and_left_as_it_was() -> None:
    import torch
    from runaway_forward import Runaway

    from memadvise.api import profile_model

    model = Runaway()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(MemoryLimitError, match="stopped in forward of step 1"):
        profile_model(model, torch.randn(2, 8), batch_size=2, memory_limit=rss() + HEADROOM)
    assert len(model.hoard) * 4 < 1024  # stopped before the forward hoarded its 1 GiB
    model.hoard.clear()
    hooks = [m._forward_hooks or m._forward_pre_hooks for m in model.modules()]
    assert not any(hooks) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

"""Host RAM of data loading: prefetched and pinned batches, from options or ``make_dataloader()``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

import memadvise
from memadvise.capture.host_memory import estimate_host_memory
from memadvise.cli import app

MODELS = Path(__file__).resolve().parent / "models"
runner = CliRunner()


def test_estimate_counts_prefetched_and_pinned_batches() -> None:
    batch = (torch.zeros(8, 100), torch.zeros(8, dtype=torch.int64))  # 3200 + 64 bytes
    host = estimate_host_memory(batch, workers=4, pin_memory=True)
    assert host.batch_bytes == 3264 and host.prefetch_factor == 2
    assert host.prefetched_bytes == 8 * 3264
    assert host.pinned_bytes == 9 * (4096 + 64)  # pinned blocks round up to a power of two
    assert host.total_bytes == host.prefetched_bytes + host.pinned_bytes
    alone = estimate_host_memory(batch, workers=0, pin_memory=False)
    assert alone.total_bytes == 0 and alone.prefetch_factor == 0


def test_make_dataloader_settings_are_read_from_the_file() -> None:
    prof = memadvise.profile_file(str(MODELS / "with_dataloader.py"), batch_size=8, device="cpu")
    host = prof.host_memory
    assert host is not None and host.source == "make_dataloader"
    assert (host.workers, host.prefetch_factor, host.pin_memory) == (2, 4, True)
    assert host.prefetched_bytes == 8 * 8 * 100 * 4


def test_cli_options_override_and_reach_json() -> None:
    result = runner.invoke(
        app,
        [
            "profile",
            str(MODELS / "with_dataloader.py"),
            "--dataloader-workers",
            "2",
            "--no-pin-memory",
            "--device",
            "cpu",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    host = json.loads(result.stdout)["host_memory"]
    assert host["workers"] == 2 and host["pin_memory"] is False and host["source"] == "options"
    assert host["total_bytes"] == 2 * 2 * 400


def test_no_loader_means_no_estimate() -> None:
    tiny = Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py"
    assert memadvise.profile_file(str(tiny), device="cpu").host_memory is None

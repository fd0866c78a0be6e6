"""Shared pytest setup: makes tests/groundtruth.py importable, names the CPU features that decide the
known misses (tests/cpu_features.py) and prints the peak-accuracy table."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

ACCURACY_RECORDS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection imported (torch, transformers, the test modules) out of the garbage
    collector's reach: a full collection otherwise scans it all, ~0.2 s each time a test or the ground
    truth collects garbage before measuring. Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def pytest_report_header(config: pytest.Config) -> str:
    import cpu_features

    return cpu_features.describe()


@pytest.fixture(scope="session")
def accuracy_records(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Rows of the peak-accuracy table, filled by tests/integration/test_peak_accuracy.py."""
    return request.config.stash.setdefault(ACCURACY_RECORDS, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print memadvise's peak error against the ground truth for every measured case."""
    rows = config.stash.get(ACCURACY_RECORDS, [])
    if not rows:
        return
    tr = terminalreporter
    tr.section("memadvise peak accuracy (vs. torch.profiler ground truth)")
    header = (
        f"{'model':<36} {'mode':<9} {'batch':>5} {'truth bytes':>14} {'memadvise bytes':>16} {'error %':>8}"
        "  phase"
    )
    tr.write_line(header)
    tr.write_line("-" * len(header))
    errors: dict[str, list[float]] = {}
    for r in rows:
        ours = "-" if r["ours"] is None else f"{r['ours']:,}"
        err = "-" if r["error"] is None else f"{100 * r['error']:.3f}"
        if r["error"] is not None:
            errors.setdefault(r.get("trace", "real"), []).append(r["error"])
        phase = f"{r['truth_phase']} / {r['our_phase'] or '-'}"
        tr.write_line(
            f"{r['model']:<36} {r['mode']:<9} {r['batch']:>5} {r['truth']:>14,} {ours:>16} {err:>8}  {phase}"
        )
    for trace, values in sorted(errors.items()):
        values.sort()
        n = len(values)
        median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
        tr.write_line(
            f"{trace} traces, {n} cases: median error {100 * median:.3f}%, max error {100 * values[-1]:.3f}% "
            "(phase column: truth / memadvise)"
        )

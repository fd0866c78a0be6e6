"""memadvise's peak against an independent ground truth, for every model file we ship or test.

For each model file in tests/zoo/ and sample_models/, in train and inference mode,
``memadvise.profile_file`` must report a peak within 2% of the peak measured
by tests/groundtruth.py (torch.profiler allocator events) at the largest batch size
in its ``BATCH_SIZES`` (default (2, 4)), and its fake trace within 3% at the smallest,
and the median error over all real cases must be at most 1%.  The terminal summary prints every
case's error, passing or not.  Each case is measured once per session; the two summaries (median error,
peak phase) use the cases' measurements and make any that has not run, so they give the same answer
whatever ran before them.

Both measurements run in this process with one intra-op thread: some CPU
kernels (e.g. oneDNN convolution backward) size their scratch buffers by the
thread count, so the two sides must agree on it, and a single thread keeps the
timings of this matrix stable on small machines.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import statistics
from pathlib import Path
from typing import Any

import groundtruth
import pytest
from cpu_features import HAS_AVX512

REPO = Path(__file__).resolve().parents[2]
MODEL_DIRS = (REPO / "tests" / "zoo", REPO / "sample_models")
MODES = ("train", "inference")
OPTIMIZER = "adamw"
MAX_ERROR = 0.02
MAX_MEDIAN_ERROR = 0.01
# Fake (meta-device) traces follow CPU kernels here (--target-device cpu) and must be within 3%.
MAX_FAKE_ERROR = 0.03
# Phases are compared only where the truth's winning phase leads the runner-up by this much.
PHASE_MARGIN = 0.05
OPTIONAL_LIBS = ("transformers", "torchvision")
# Known misses by case id, with the error measured where they miss.
KNOWN_MISSES = {
    "sample_models/resnet.py-train-b2-fake": pytest.mark.xfail(
        condition=HAS_AVX512,
        strict=True,
        reason=(
            "+3.30% on CPUs with AVX-512: the fake trace's oneDNN convolution rules "
            "(memadvise/capture/kernel_buffers.py) were measured with AVX2 kernels; AVX-512's convolution "
            "backward takes less scratch, so the real peak (197.9 MB) moves from backward to the optimizer "
            "step while the fake trace keeps AVX2's backward peak (204.5 MB)"
        ),
    ),
}


def _model_files() -> list[Path]:
    """All model files, zoo first."""
    return [p for d in MODEL_DIRS for p in sorted(d.glob("*.py")) if not p.name.startswith("_")]


def _file_facts(path: Path) -> tuple[tuple[int, ...], list[str]]:
    """``BATCH_SIZES`` and the optional libraries a model file imports, read without importing it.

    Files marked ``FAKE_ONLY = True`` (models too large to run for real) get no batch sizes.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    batch_sizes: tuple[int, ...] = (2, 4)
    libs: set[str] = set()
    for node in ast.walk(tree):
        names = (
            [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else []
        )
        if "FAKE_ONLY" in names and ast.literal_eval(node.value):
            return (), []
        if "BATCH_SIZES" in names:
            batch_sizes = tuple(ast.literal_eval(node.value))
        elif isinstance(node, ast.Import):
            libs.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            libs.add(node.module.split(".")[0])
    return batch_sizes, sorted(libs & set(OPTIONAL_LIBS))


def _label(path: Path) -> str:
    """Short name such as ``zoo/gpt2.py``."""
    return f"{path.parent.name}/{path.name}"


def _cases() -> list[Any]:
    """One pytest param per (model file, batch size, mode, trace)."""
    cases = []
    for path in _model_files():
        batch_sizes, libs = _file_facts(path)
        for batch in batch_sizes[-1:]:  # the largest batch for the real trace, the smallest for the fake
            for mode in MODES:
                case_id = f"{_label(path)}-{mode}-b{batch}"
                marks = KNOWN_MISSES.get(case_id, ())
                cases.append(pytest.param(path, batch, mode, libs, "real", id=case_id, marks=marks))
        for mode in MODES[: 2 if batch_sizes else 0]:
            batch = batch_sizes[0]
            case_id = f"{_label(path)}-{mode}-b{batch}-fake"
            marks = KNOWN_MISSES.get(case_id, ())
            cases.append(pytest.param(path, batch, mode, libs, "fake", id=case_id, marks=marks))
    return cases


CASES = _cases()
pytestmark = pytest.mark.usefixtures("single_thread")


@functools.cache
def _truth(path: Path, batch: int, mode: str) -> groundtruth.GroundTruth:
    """The ground truth of one model, batch and mode (the real and the fake trace share it)."""
    return groundtruth.measure_peak(path, batch, mode=mode, optimizer=OPTIMIZER)


@functools.cache
def _measure(path: Path, batch: int, mode: str, trace: str) -> dict[str, Any]:
    """The truth and memadvise's peak for one case, measured once per session (the summaries below
    reuse the cases' measurements, or make the ones that have not run)."""
    import memadvise

    truth = _truth(path, batch, mode)
    # scaling=False: the batch-scaling trace and the FLOP count only serve what-if estimates.
    options: dict[str, Any] = {"batch_size": batch, "mode": mode, "optimizer": OPTIMIZER, "scaling": False}
    if trace == "fake":
        prof = memadvise.profile_file(str(path), device="meta", target_device="cpu", **options)
    else:
        prof = memadvise.profile_file(str(path), device="cpu", **options)
    ours = int(prof.peak_bytes)
    return {
        "model": _label(path) + (" (fake)" if trace == "fake" else ""),
        "trace": trace,
        "mode": mode,
        "batch": batch,
        "truth": truth.peak_bytes,
        "truth_phase": truth.peak_phase,
        "phase_peaks": truth.phase_peaks,
        "ours": ours,
        "our_phase": prof.peak_phase,
        "error": abs(ours - truth.peak_bytes) / truth.peak_bytes,
    }


def _record(records: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """Add ``row`` to the terminal summary's table, once."""
    if not any(r is row for r in records):
        records.append(row)
    return row


def _all_rows(trace: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every runnable case of one trace kind, measured now where no test has measured it yet: the
    summaries do not depend on which cases ran before them, or in what order."""
    rows = []
    for case in CASES:
        path, batch, mode, libs, kind = case.values
        if kind != trace or any(importlib.util.find_spec(lib) is None for lib in libs):
            continue
        try:
            rows.append(_record(records, _measure(path, batch, mode, kind)))
        except Exception:  # noqa: BLE001 - that case's own test reports its error
            continue
    return rows


@pytest.mark.parametrize(("path", "batch", "mode", "libs", "trace"), CASES)
def test_peak_within_tolerance(
    path: Path, batch: int, mode: str, libs: list[str], trace: str, accuracy_records: list[dict[str, Any]]
) -> None:
    """|memadvise - truth| / truth <= 2% (real trace) or 3% (fake trace) for one model, batch, mode."""
    for lib in libs:
        pytest.importorskip(lib)
    row = _record(accuracy_records, _measure(path, batch, mode, trace))
    limit = MAX_FAKE_ERROR if trace == "fake" else MAX_ERROR
    assert row["error"] <= limit, (
        f"{_label(path)} {mode} batch {batch}: memadvise {row['ours']:,} B vs truth "
        f"{row['truth']:,} B ({100 * row['error']:.2f}% off)"
    )


def test_peak_phase_matches_where_unambiguous(accuracy_records: list[dict[str, Any]]) -> None:
    """Where one phase clearly dominates the truth's curve, memadvise names the same phase."""
    rows = [
        r
        for r in _all_rows("real", accuracy_records)
        if r["our_phase"] is not None and r["truth_phase"] is not None
    ]
    assert rows, "no accuracy case could run"
    mismatches = []
    for r in rows:
        peaks = sorted(r["phase_peaks"].values(), reverse=True)
        if len(peaks) > 1 and peaks[0] < (1 + PHASE_MARGIN) * peaks[1]:
            continue
        if r["our_phase"] != r["truth_phase"]:
            case = f"{r['model']} {r['mode']} b{r['batch']}"
            mismatches.append(f"{case}: {r['our_phase']} != {r['truth_phase']}")
    assert not mismatches, "peak phase differs:\n" + "\n".join(mismatches)


def test_median_error(accuracy_records: list[dict[str, Any]]) -> None:
    """Median relative error over all real-trace cases <= 1%."""
    errors = [r["error"] for r in _all_rows("real", accuracy_records)]
    assert errors, "no accuracy case could run"
    assert statistics.median(errors) <= MAX_MEDIAN_ERROR

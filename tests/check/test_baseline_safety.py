"""``memadvise check --update`` replaces only a baseline, only a writable one, through links, under a lock."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from memadvise.check.baseline import BaselineEntry, load_baseline, update_baseline
from memadvise.check.safe_write import locked

TINY = "models/tiny_mlp.py"
BASE = "memory-baseline.json"
Check = Callable[..., Result]


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("name", [TINY, "pyproject.toml"])
def test_update_never_replaces_a_file_that_is_not_a_baseline(
    workdir: Path, memcheck: Check, name: str
) -> None:
    path = workdir / name
    if not path.exists():
        path.write_text('[project]\nname = "mine"\n', encoding="utf-8")
    before = path.read_bytes()
    result = memcheck(TINY, "--baseline", name, "--update")
    one_line_error(result, "not a memadvise baseline")
    assert path.read_bytes() == before


def test_read_only_baseline_is_refused_and_a_writable_one_keeps_its_mode(
    workdir: Path, memcheck: Check
) -> None:
    path = workdir / BASE
    assert memcheck(TINY, "--baseline", BASE, "--update").exit_code == 0
    path.chmod(0o444)
    before = path.read_bytes()
    one_line_error(memcheck(TINY, "--baseline", BASE, "-b", "2", "--update"), "read-only")
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
    path.chmod(0o640)
    assert memcheck(TINY, "--baseline", BASE, "-b", "2", "--update").exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert len(load_baseline(path).entries) == 2


def test_update_through_a_symlink_replaces_its_target(workdir: Path, memcheck: Check) -> None:
    (workdir / "shared").mkdir()
    target = workdir / "shared" / "real-baseline.json"
    link = workdir / BASE
    link.symlink_to(target)
    assert memcheck(TINY, "--baseline", BASE, "--update").exit_code == 0
    assert memcheck(TINY, "--baseline", BASE, "-b", "2", "--update").exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(load_baseline(target).entries) == 2
    assert memcheck(TINY, "--baseline", BASE, "-b", "2").exit_code == 0
    assert not [p for p in (workdir / "shared").iterdir() if p.name.endswith((".lock", ".tmp"))]


def _entry(model: str) -> BaselineEntry:
    figures = {
        "peak_bytes": 1,
        "param_bytes": 1,
        "activation_bytes": 0,
        "grad_bytes": 0,
        "optimizer_state_bytes": 0,
    }
    return BaselineEntry(model, "build_model", 1, "train", "adamw", "auto", figures)


def _update(path: str, model: str) -> None:
    update_baseline(Path(path), [_entry(model)])


def test_two_processes_updating_one_baseline_both_land(tmp_path: Path) -> None:
    path = tmp_path / BASE
    context = multiprocessing.get_context("fork")
    with locked(path):  # both writers start while the baseline is locked: they must wait, then merge
        writers = [context.Process(target=_update, args=(str(path), name)) for name in ("a.py", "b.py")]
        for writer in writers:
            writer.start()
        time.sleep(0.3)
        assert not path.exists(), "a writer did not wait for the lock"
    for writer in writers:
        writer.join(timeout=30)
        assert writer.exitcode == 0
    models = sorted(entry.model for entry in load_baseline(path).entries.values())
    assert models == ["a.py", "b.py"]
    assert [p.name for p in tmp_path.iterdir()] == [BASE]  # no lock or temporary file left behind

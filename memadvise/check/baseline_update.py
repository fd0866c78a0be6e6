"""``memadvise check --update``: replace only a baseline, only a writable one, and never lose an entry.

An existing file is replaced only when it is a memadvise baseline (or empty); a read-only one is
refused; a symbolic link is written through; the read-modify-write of the file runs under a lock, so
two updates of one baseline at the same time both land.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from memadvise.check.baseline import BASELINE_FORMAT, Baseline, BaselineEntry, load_baseline
from memadvise.check.safe_write import real_target, update_locked, writable_problem
from memadvise.errors import BaselineError


def check_replaceable(path: Path) -> None:
    """Raise :class:`BaselineError` unless ``--update`` may write ``path``: missing, empty, or a writable
    memadvise baseline file (any schema version)."""
    problem = writable_problem(path)
    if problem is not None:
        raise BaselineError(f"baseline file '{path}' {problem}")
    target = real_target(path)
    try:
        if target.stat().st_size == 0:
            return
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f"'{path}' exists and is not a memadvise baseline file; --update only replaces baselines: "
            "choose another --baseline path (or delete the file to start a new baseline)"
        )


def update_baseline(path: Path, entries: Iterable[BaselineEntry]) -> None:
    """Add or replace ``entries`` in the baseline at ``path`` (created when missing), re-reading the file
    under the lock so that entries another process wrote meanwhile are kept."""
    new = list(entries)

    def merged() -> str:
        check_replaceable(path)
        try:
            current = load_baseline(path) if real_target(path).exists() else Baseline()
        except BaselineError:  # an empty file or another schema of ours: started again
            current = Baseline()
        return current.with_entries(new).to_json()

    try:
        update_locked(path, merged)
    except OSError as exc:
        raise BaselineError(f"cannot write baseline file '{path}': {exc.strerror or exc}") from None

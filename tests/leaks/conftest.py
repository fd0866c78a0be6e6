"""Model files that plant leaks (and clean custom steps) for the leak tests."""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"


def line_of(path: Path, fragment: str) -> int:
    """1-based line number of the first line of ``path`` containing ``fragment``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in {path}")

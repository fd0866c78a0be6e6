"""Shared pieces of the report tests: hand-built profiles, fixed-width rendering, golden files, a browser.

Golden files live in ``tests/report/golden``. After a deliberate change to a terminal rendering,
regenerate them with ``MEMADVISE_UPDATE_GOLDEN=1 python -m pytest tests/report`` and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from headless_browser import find_browser
from report_profiles import toy_profile

from memadvise import Profile

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
UPDATE_ENV = "MEMADVISE_UPDATE_GOLDEN"


@pytest.fixture
def toy() -> Profile:
    return toy_profile()


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with ``golden/NAME`` (or rewrite it when MEMADVISE_UPDATE_GOLDEN=1)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if os.environ.get(UPDATE_ENV) == "1":
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing; create it with {UPDATE_ENV}=1")
        expected = path.read_text(encoding="utf-8")
        assert text == expected, (
            f"rendering differs from {path}; if the change is intended, regenerate with {UPDATE_ENV}=1 "
            "and review the diff"
        )

    return check


@pytest.fixture(scope="session")
def browser() -> str:
    """A headless Chromium, or the test is skipped saying how to get one."""
    path = find_browser()
    if path is None:
        pytest.skip(
            "no Chromium-family browser on PATH (apt-get install chromium, or set MEMADVISE_BROWSER); "
            ".ci/run installs one"
        )
    return path

"""Reporters: each turns a result (a Profile, an Estimate, a Plan, a CheckRun) into text; none prints.

:class:`Reporter` is the contract (a format name, a file suffix, ``render(result) -> str``); the
reporters are ``table`` (rich tables for the terminal, plain text in a file), ``json``, ``csv`` and
``html`` (:mod:`memadvise.reporters.formats`), built on the renderers of each result: ``console`` (a
profile's terminal report), ``estimate_report``, ``plan_report``, ``check_report``, ``html`` and
``tables`` (pandas DataFrames and CSV). The command line picks a reporter by ``--format`` or by the
suffix of ``--output``, and shows or writes what it renders.
"""

from __future__ import annotations

from memadvise.reporters.base import CsvTable, Format, Reporter
from memadvise.reporters.formats import (
    REPORTERS,
    CsvReporter,
    HtmlReporter,
    JsonReporter,
    TableReporter,
    format_for_path,
    reporter_for,
)

__all__ = [
    "REPORTERS",
    "CsvReporter",
    "CsvTable",
    "Format",
    "HtmlReporter",
    "JsonReporter",
    "Reporter",
    "TableReporter",
    "format_for_path",
    "reporter_for",
]

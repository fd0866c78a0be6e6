"""Renderers: each turns a ``Profile`` into a rich renderable, a string or a DataFrame; none prints.

``console`` (rich: the terminal report, the timeline chart, the module tree), ``html`` (one self-contained
HTML file), ``tables`` (pandas DataFrames and CSV). The command line picks the console or the file.
"""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


class CsvTable(str, Enum):
    """Which table ``--format csv`` writes."""

    LAYERS = "layers"
    TIMELINE = "timeline"


_SUFFIX_FORMATS = {"json": Format.JSON, "csv": Format.CSV, "html": Format.HTML, "htm": Format.HTML}


def format_for_path(path: str) -> Format | None:
    """The format a file name implies (``report.json`` → JSON, ``report.html`` → HTML), if any."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _SUFFIX_FORMATS.get(suffix)

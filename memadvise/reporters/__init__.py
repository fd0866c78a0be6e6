"""Renderers: each turns a ``Profile`` into a rich renderable, a string or a DataFrame; none prints."""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def format_for_path(path: str) -> Format | None:
    """The format a file name implies (``report.json`` → JSON), if any."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {"json": Format.JSON, "csv": Format.CSV}.get(suffix)

"""Text from files and models made safe to show: no terminal control sequences, no spreadsheet formulas.

Names in a profile, a baseline or a config (model, layer, operator and module names, versions, paths)
come from files a user may not have written. Shown as they are, an ``ESC [`` sequence in a layer name
would drive the terminal, and a CSV cell starting with ``=`` would run as a formula in a spreadsheet.

* :func:`printable` writes every control character (C0, DEL, C1) and the bidirectional-override
  characters as a visible escape (``\\x1b``, ``\\u202e``), so a name prints as what it is.
* :func:`printable_result` does that to every string of a result (a frozen dataclass tree) for the
  table reports; rich markup is not interpreted in those strings (the consoles print with
  ``markup=False``), so ``[bold]`` in a name prints as ``[bold]``.
* :func:`csv_cell` prefixes a cell starting with ``=``, ``+``, ``-``, ``@``, TAB or CR with ``'``
  (OWASP's rule against CSV injection).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_WITH_NEWLINES = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and bidi-override characters written as visible escapes; with
    ``keep_newlines`` (whole documents) TAB and newlines stay, else they are escaped too (one-line names)."""
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_NEWLINES
    return pattern.sub(_escape, text)


def _clean(value: Any) -> Any:
    """``value`` with :func:`printable` strings; the same object when nothing needed cleaning."""
    if isinstance(value, str):
        cleaned = printable(value)
        return value if cleaned == value else cleaned
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        if all(isinstance(v, (int, float)) for v in value):
            return value
        items = tuple(_clean(v) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, list):
        items_list = [_clean(v) for v in value]
        return value if all(a is b for a, b in zip(items_list, value, strict=True)) else items_list
    if isinstance(value, dict):
        pairs = [(_clean(k), _clean(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = _clean(old)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


def printable_result(result: Any) -> Any:
    """A copy of ``result`` (a dataclass tree) whose strings are all :func:`printable`; ``result`` itself
    when none needed it."""
    return _clean(result)


def csv_cell(value: Any) -> Any:
    """A string cell that a spreadsheet would run as a formula, prefixed with ``'``; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

"""Byte sizes: the one place sizes are formatted and parsed.

Convention: printed sizes are binary (KiB = 2**10, MiB = 2**20, GiB = 2**30) and say so.
Parsed sizes accept both conventions: ``GB``/``G`` = 10**9 when spelled ``GB``, ``GiB`` = 2**30;
a bare ``G``/``M``/``K`` suffix is binary (as PyTorch and nvidia-smi use it); a plain integer is bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal

from memadvise.errors import UsageError

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

_SUFFIXES = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}

#: The largest size memadvise reads (1 EiB): far beyond any machine, small enough for exact float sums.
MAX_BYTES = 2**60

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def format_bytes(n: int | float, precision: int = 1) -> str:
    """Format a byte count with binary units, e.g. ``1.5 MiB``; negative values keep their sign."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in _BINARY_UNITS[1:]:
        value /= 1024
        # choose the unit after rounding, so 1048575 bytes reads 1.0 MiB, not 1024.0 KiB
        if round(value, precision) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{sign}{value:.{precision}f} {unit}"
    raise AssertionError("unreachable")


def format_share(part: int | float, whole: int | float) -> str:
    """``part`` as a percentage of ``whole`` with one decimal (``12.5%``); ``-`` when ``whole`` is 0."""
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def parse_size(text: str) -> int:
    """Parse ``24GB`` (10**9), ``24GiB`` / ``24G`` (2**30), ``512MiB``, ``1000`` (bytes) into bytes."""
    text = str(text)
    if len(text) > 64:
        raise UsageError(f"cannot read {text[:20]!r}… as a size: too long; use e.g. 24GB, 24GiB or 512MiB")
    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"cannot read {text!r} as a size; use e.g. 24GB, 24GiB, 512MiB or a number of bytes")
    number, suffix = match.groups()
    factor = _SUFFIXES.get(suffix.lower())
    if factor is None:
        raise UsageError(
            f"unknown size unit {suffix!r} in {text!r}; use B, KiB, MiB, GiB, KB, MB, GB or K, M, G"
        )
    size = int(number) * factor if "." not in number else int(Decimal(number) * factor)
    return check_size(size, text)


def looks_like_size(text: str) -> bool:
    """Whether ``text`` is written as a size (digits and a unit, or digits alone), good or not."""
    return bool(re.match(r"^\s*[0-9][0-9.]*\s*(?:[kmgt]i?b?|b)?\s*$", str(text), re.IGNORECASE))


def check_size(size: int, what: str = "size") -> int:
    """``size`` when it is a byte count memadvise can use (0 to :data:`MAX_BYTES`), else a UsageError."""
    if size > MAX_BYTES:
        raise UsageError(f"{what!r} is more than 1 EiB ({MAX_BYTES} bytes); give a real memory size")
    return size

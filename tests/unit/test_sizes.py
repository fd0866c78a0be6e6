"""Byte sizes: ``format_bytes`` prints binary units, ``parse_size`` reads both conventions."""

from __future__ import annotations

import re

import pytest

from memadvise.errors import MemadviseError, UsageError
from memadvise.model.units import format_bytes, parse_size

# -- format_bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (2**20, "1.0 MiB"),
        (5 * 2**30 // 2, "2.5 GiB"),
        (3 * 2**40, "3.0 TiB"),
    ],
)
def test_format_bytes_uses_binary_units(n: int, expected: str) -> None:
    assert format_bytes(n) == expected


def test_format_bytes_never_uses_decimal_unit_names() -> None:
    for exponent in range(0, 60, 3):
        text = format_bytes(7 * 2**exponent)
        unit = text.split()[-1]
        assert unit in {"B", "KiB", "MiB", "GiB", "TiB", "PiB"}, text


@pytest.mark.parametrize("n", [1, 1000, 1536, 3 * 2**20 + 12345, 7 * 2**30])
def test_format_bytes_negative_keeps_sign_and_magnitude(n: int) -> None:
    assert format_bytes(-n) == "-" + format_bytes(n)


def test_format_bytes_precision() -> None:
    assert format_bytes(1536, precision=2) == "1.50 KiB"
    assert format_bytes(int(1.25 * 2**20), precision=0) == "1 MiB"


def test_format_bytes_value_reads_back_within_rounding() -> None:
    """The printed number times its unit is within half a unit step of the input."""
    factors = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    for n in (1500, 123_456, 9_876_543, 5_000_000_000, 2**41 + 17):
        number, unit = format_bytes(n, precision=3).split()
        assert abs(float(number) * factors[unit] - n) <= 0.0005 * factors[unit] + 1e-9


def test_format_bytes_huge_values_stay_in_the_largest_unit() -> None:
    assert format_bytes(5 * 2**60) == "5120.0 PiB"


def test_format_bytes_never_prints_1024_of_a_unit() -> None:
    for n in (2**20 - 1, 2**30 - 1, 2**20 - 40):
        number, _unit = format_bytes(n).split()
        assert float(number) < 1024, format_bytes(n)


# -- parse_size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GB", 24 * 10**9),
        ("24gb", 24 * 10**9),
        ("24GiB", 24 * 2**30),
        ("24G", 24 * 2**30),
        ("24g", 24 * 2**30),
        ("512MiB", 512 * 2**20),
        ("512MB", 512 * 10**6),
        ("512M", 512 * 2**20),
        ("64KiB", 64 * 2**10),
        ("64KB", 64 * 10**3),
        ("64K", 64 * 2**10),
        ("2TiB", 2 * 2**40),
        ("2TB", 2 * 10**12),
        ("1.5GiB", 3 * 2**29),
        ("0.5KiB", 512),
        ("1000", 1000),
        ("0", 0),
        ("1000B", 1000),
        (" 24 GB ", 24 * 10**9),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    value = parse_size(text)
    assert value == expected
    assert isinstance(value, int)


def test_parse_size_reads_what_format_bytes_prints() -> None:
    for n in (2**10, 3 * 2**20, 5 * 2**30):
        assert parse_size(format_bytes(n).replace(" ", "")) == n


@pytest.mark.parametrize("text", ["", "GB", "abc", "24 G B", "-5GB", "1e9", "24GBs", "12XB", "1,000"])
def test_parse_size_errors_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_size(text)
    message = str(info.value)
    assert isinstance(info.value, MemadviseError)
    assert "\n" not in message
    assert repr(text) in message  # quotes what it could not read
    hint = message.replace(repr(text), "")
    assert re.search(r"(?<![A-Za-z])(GB|GiB|MiB)\b", hint), "the message shows an accepted spelling"


def test_parse_size_unknown_unit_names_the_unit() -> None:
    with pytest.raises(UsageError, match=r"unknown size unit 'XB'"):
        parse_size("12XB")


def test_parse_size_plain_integers_are_exact() -> None:
    assert parse_size(str(2**53 + 1)) == 2**53 + 1

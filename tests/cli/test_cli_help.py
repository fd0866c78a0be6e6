"""Every command's ``--help``: paragraphs wrap only at the terminal's edge, switches take no value,
examples fit 80 columns."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from memadvise.cli import app

COMMANDS = [[], ["profile"], ["estimate"], ["plan"], ["check"], ["report"]]


def rendered_help(command: list[str], columns: int) -> list[str]:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def description(lines: list[str]) -> list[str]:
    """The prose between the usage line and the examples (or the first panel)."""
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next(i for i, line in enumerate(lines) if "Examples:" in line or line.startswith("╭"))
    return [line.rstrip() for line in lines[start:end]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "memadvise")
def test_help_wraps_at_the_edge_only(command: list[str]) -> None:
    columns = 200
    prose = description(rendered_help(command, columns))
    for line, following in zip(prose, [*prose[1:], ""], strict=True):
        if line.strip() and following.strip():  # a line break inside a paragraph…
            # …only where the next word would not have fitted on the line
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > columns - 2, f"broken mid-paragraph: {line!r}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "memadvise")
def test_help_has_examples_that_fit_80_columns(command: list[str]) -> None:
    lines = rendered_help(command, 80)
    start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    examples = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        examples.append(line)
    assert examples and all(line.startswith("   memadvise") for line in examples[:1])
    for line in examples:  # a command, or an indented continuation after a trailing backslash
        assert line.startswith("   "), f"example wrapped at 80 columns: {line!r}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "memadvise")
def test_switches_take_no_value(command: list[str]) -> None:
    text = "\n".join(rendered_help(command, 120))
    assert "<bool>" not in text
    for switch in ("--help", "--fake", "--tree", "--health", "--debug", "--update", "--list-gpus"):
        match = re.search(rf"{switch}\b[^\n│]*", text)
        if match:
            assert "<" not in match.group(0), match.group(0)

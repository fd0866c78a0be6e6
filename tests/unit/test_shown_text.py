"""Names from files are shown safely: no terminal escapes, rich markup literal, no CSV formulas, HTML
escaped — and the figures shown come from files that passed their schema."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest
from hand_built import check_run, hand_built_profile
from typer.testing import CliRunner

from memadvise.model.profile import LayerStats
from memadvise.model.text import csv_cell, printable
from memadvise.reporters import reporter_for

ANSI = "\x1b[31mred\x1b[0m"
MARKUP = "[bold]loud[/bold]"
FORMULA = '=HYPERLINK("http://example.com","x")'


def hostile_profile():  # type: ignore[no-untyped-def]
    """The hand-built profile with a model name holding escapes and markup, and formula layer names."""
    profile = hand_built_profile()
    layers = (
        *profile.layers,
        LayerStats(name=FORMULA, type="+cmd", calls=1, param_bytes=4),
        LayerStats(name="@SUM(A1)", type="-2+3", calls=1, param_bytes=4),
        LayerStats(name=f"bell\x07{MARKUP}\u202e", type=ANSI, calls=1, param_bytes=4),
    )
    return replace(profile, model=f"{ANSI} {MARKUP}", layers=layers)


def test_printable_escapes_controls_and_bidi_overrides() -> None:
    assert printable("a\x1b[2Jb\x07\u202ec\nd") == "a\\x1b[2Jb\\x07\\u202ec\\x0ad"
    assert printable("line\nnext\ttab\r", keep_newlines=True) == "line\nnext\ttab\\x0d"
    assert printable("plain [bold] é") == "plain [bold] é"


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_start_a_formula_are_quoted(cell: str) -> None:
    assert csv_cell(cell) == "'" + cell
    assert csv_cell("fc.weight") == "fc.weight" and csv_cell(3) == 3


def test_table_report_shows_names_literally_without_escapes() -> None:
    text = reporter_for("table", top=20).render(hostile_profile())
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[31mred\\x1b[0m" in text  # the escape is visible, not acted on
    assert MARKUP in text  # rich markup in a name prints as written


def test_terminal_output_of_the_report_command_has_no_escapes(tmp_path: Path) -> None:
    from memadvise.cli import app

    path = tmp_path / "p.json"
    hostile_profile().save(path)
    for args in ([], ["--format", "csv"], ["--format", "json"], ["--tree"]):
        result = CliRunner().invoke(app, ["report", str(path), *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    table = CliRunner().invoke(app, ["report", str(path), "--top", "20"], env={"COLUMNS": "200"}).stdout
    assert MARKUP in table and "\\x1b[31mred" in table


def test_csv_neutralises_formulas_and_keeps_the_names_readable() -> None:
    text = reporter_for("csv").render(hostile_profile())
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(text))}
    assert "'" + FORMULA in rows and "'@SUM(A1)" in rows
    assert rows["'" + FORMULA]["type"] == "'+cmd" and rows["'@SUM(A1)"]["type"] == "'-2+3"
    assert all(not name.startswith(("=", "+", "-", "@")) for name in rows)
    assert rows["fc"]["param_bytes"] == "400"  # numbers stay numbers


def test_html_stays_escaped() -> None:
    text = reporter_for("html").render(hostile_profile())
    assert "[bold]loud[/bold]" in text  # shown as text
    page = reporter_for("html").render(replace(hostile_profile(), model="<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_check_report_and_warnings_show_baseline_strings_safely() -> None:
    run = check_run()
    result = run.results[0]
    old = replace(result.old, torch_version="\x1b]0;pwned\x07")  # type: ignore[arg-type]
    hostile = replace(run, results=(replace(result, old=old, warnings=(f"torch {old.torch_version}",)),))
    text = reporter_for("table").render(hostile)
    assert "\x1b" not in text

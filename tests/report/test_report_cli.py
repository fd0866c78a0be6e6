"""``memadvise report`` on a saved profile, and the picture options of ``memadvise profile``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from memadvise import Profile, load_profile
from memadvise.cli import app
from memadvise.model.units import format_bytes
from memadvise.reporters import Format, format_for_path

TINY = str(Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})


@pytest.fixture
def saved(toy: Profile, tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    toy.save(path)
    return path


def test_report_table_has_the_timeline_under_the_summary(saved: Path, toy: Profile) -> None:
    result = invoke("report", str(saved))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"Peak {format_bytes(toy.peak_bytes)}" in out
    assert out.index("Peak") < out.index("Timeline") < out.index("Alive at the peak, by category")
    assert "▲ peak" in out and "fwd" in out and "bwd" in out and "opt" in out
    assert "Alive at the peak, by module" not in out
    assert result.stderr == ""


def test_report_tree_and_depth(saved: Path) -> None:
    tree = invoke("report", str(saved), "--tree").stdout
    assert "Alive at the peak, by module" in tree and "└── <inputs>" in tree and "mlp (MLP)" in tree
    shallow = invoke("report", str(saved), "--depth", "1")
    assert shallow.exit_code == 0, shallow.stderr
    assert "Alive at the peak, by module" in shallow.stdout and "mlp (MLP)" not in shallow.stdout
    assert "folded into their parents (--depth 1)" in shallow.stdout


def test_report_html_from_the_suffix(saved: Path, tmp_path: Path, toy: Profile) -> None:
    target = tmp_path / "report.html"
    result = invoke("report", str(saved), "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"wrote html report to {target}"
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'id="timeline-chart"' in page
    assert f'data-bytes="{toy.peak_bytes}"' in page


def test_report_html_on_stdout(saved: Path) -> None:
    result = invoke("report", str(saved), "--format", "html")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")


def test_report_csv_tables(saved: Path, toy: Profile, tmp_path: Path) -> None:
    layers = invoke("report", str(saved), "--format", "csv")
    assert layers.exit_code == 0, layers.stderr
    assert len(pd.read_csv(io.StringIO(layers.stdout))) == len(toy.layers)
    target = tmp_path / "timeline.csv"
    timeline = invoke("report", str(saved), "--table", "timeline", "-o", str(target))
    assert timeline.exit_code == 0, timeline.stderr
    assert timeline.stderr.strip() == f"wrote csv timeline table to {target}"
    frame = pd.read_csv(target)
    assert list(frame["total"]) == toy.timeline.totals()


def test_report_json_round_trip(saved: Path, toy: Profile) -> None:
    result = invoke("report", str(saved), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == toy.to_dict()


def test_report_text_to_a_file(saved: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    result = invoke("report", str(saved), "--tree", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert "Timeline" in text and "Alive at the peak, by module" in text and "\x1b[" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tree", "--format", "json"), "--tree and --depth apply to the table format, not json"),
        (("--depth", "2", "-o", "r.html"), "the HTML report always shows the module tree"),
        (("--table", "timeline"), "--table chooses the table of --format csv; it does not apply to table"),
        (("--table", "layers", "-o", "x.json"), "it does not apply to json"),
    ],
)
def test_options_for_another_format_are_refused(saved: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke("report", str(saved), *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("memadvise: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_of_a_missing_or_bad_file(tmp_path: Path) -> None:
    missing = invoke("report", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "not found" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = invoke("report", str(bad))
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_profile_refuses_bad_option_pairs_before_tracing() -> None:
    result = invoke("profile", "does/not/exist.py", "--tree", "--format", "csv")
    assert result.exit_code == 2
    assert "--tree and --depth apply to the table format" in result.stderr  # not "file not found"


def test_profile_html_and_tree(tmp_path: Path) -> None:
    target = tmp_path / "tiny.html"
    html = invoke("profile", TINY, "--device", "cpu", "-o", str(target))
    assert html.exit_code == 0, html.stderr
    page = target.read_text(encoding="utf-8")
    assert 'id="timeline-chart"' in page and 'id="module-tree"' in page and "tiny_mlp" in page
    saved = tmp_path / "tiny.json"
    assert invoke("profile", TINY, "--device", "cpu", "-o", str(saved)).exit_code == 0
    tree = invoke("profile", TINY, "--device", "cpu", "--tree")
    assert tree.exit_code == 0, tree.stderr
    assert "Timeline" in tree.stdout and "Alive at the peak, by module" in tree.stdout
    assert f"Peak {format_bytes(load_profile(saved).peak_bytes)}" in tree.stdout


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("report.html", Format.HTML), ("out/R.HTM", Format.HTML), ("x.html/file", None), ("t.csv", Format.CSV)],
)
def test_html_suffix_implies_the_format(path: str, fmt: Format | None) -> None:
    assert format_for_path(path) is fmt

"""The one reporter contract: every registered reporter on every result kind it declares.

Each reporter returns a whole document in its format (JSON that parses, CSV with a header, an HTML
page, a plain-text table no wider than the console it stands for) and prints nothing itself.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hand_built import check_run, hand_built_profile  # tests/ is on sys.path (tests/conftest.py)

from memadvise.analyzer import Estimate, Scenario, estimate
from memadvise.check import CheckRun
from memadvise.errors import UsageError
from memadvise.model.profile import Profile
from memadvise.planner import GpuRanking, Pins, Plan, budget_for, rank_gpus, search
from memadvise.reporters import REPORTERS, Reporter, TableReporter, format_for_path, reporter_for


@pytest.fixture(scope="module")
def results() -> dict[type, Any]:
    """One result of every kind a command computes."""
    profile = hand_built_profile()
    return {
        Profile: profile,
        Estimate: estimate(profile, Scenario(batch_size=8)),
        Plan: search(profile, budget_for("24GB"), Pins()),
        GpuRanking: rank_gpus(profile, Pins()),
        CheckRun: check_run(),
    }


PAIRS = [(cls, kind) for cls in REPORTERS for kind in cls().kinds()]


def assert_valid(reporter: Reporter, text: str) -> None:
    assert text.strip(), f"{reporter.name}: empty output"
    if reporter.name == "json":
        assert json.loads(text)
    elif reporter.name == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        assert len(header) > 1 and all(cell and not cell.isdigit() for cell in header), header
        assert len(rows) > 1 and all(len(row) == len(header) for row in rows)
    elif reporter.name == "html":
        assert text.startswith("<!DOCTYPE html>") and "<html" in text and text.rstrip().endswith("</html>")
    elif reporter.name == "table":
        assert "\x1b[" not in text  # plain text: no terminal colours in a file
        assert max(len(line) for line in text.splitlines()) <= 160
    else:
        pytest.fail(f"no validity check for the {reporter.name} format")


def test_every_result_kind_has_a_table_and_a_json_reporter() -> None:
    kinds = {Profile, Estimate, Plan, GpuRanking, CheckRun}
    for name in ("table", "json"):
        assert set(reporter_for(name).kinds()) == kinds


@pytest.mark.parametrize(("cls", "kind"), PAIRS, ids=[f"{c.name}-{k.__name__}" for c, k in PAIRS])
def test_reporter_renders_every_kind_it_declares(
    cls: type[Reporter], kind: type, results: dict[type, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    reporter = cls()
    assert reporter.name and reporter.suffix.startswith(".")
    text = reporter.render(results[kind])
    assert capsys.readouterr() == ("", ""), "a reporter never prints"
    assert_valid(reporter, text)
    if isinstance(reporter, TableReporter):
        assert reporter.renderable(results[kind]) is not None


@pytest.mark.parametrize("cls", REPORTERS, ids=[c.name for c in REPORTERS])
def test_a_reporter_refuses_a_kind_it_does_not_declare(cls: type[Reporter]) -> None:
    with pytest.raises(TypeError, match=f"the {cls.name} format does not render a str"):
        cls().render("not a result")


@pytest.mark.parametrize("cls", REPORTERS, ids=[c.name for c in REPORTERS])
def test_the_registry_finds_a_reporter_by_format_and_by_suffix(cls: type[Reporter]) -> None:
    assert type(reporter_for(cls.name)) is cls
    for suffix in (cls.suffix, *cls.other_suffixes):
        found = format_for_path(f"out/report{suffix.upper()}")
        assert found is not None and found.value == cls.name


def test_an_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown format 'yaml'"):
        reporter_for("yaml")


def test_reporter_options_reach_the_renderer(results: dict[type, Any]) -> None:
    profile = results[Profile]
    assert reporter_for("csv", table="timeline").render(profile).startswith("index,step,phase,op,module")
    assert "Alive at the peak, by module" in reporter_for("table", tree=True).render(profile)
    assert "Alive at the peak, by module" not in reporter_for("table").render(profile)
    assert len(reporter_for("table", width=100).render(results[Plan]).splitlines()[0]) <= 100

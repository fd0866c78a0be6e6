"""The plan's options table: every row has a cell under every header, each where its header says."""

from __future__ import annotations

from rich.console import Console

from memadvise.planner.budget import budget_for
from memadvise.planner.search import Option, Plan
from memadvise.reporters.plan_report import _options, _options_table


def _option(batch: int, accum: int, precision: str, fits: bool) -> Option:
    return Option(
        batch_size=batch,
        grad_accum=accum,
        effective_batch_size=batch * accum,
        precision=precision,
        checkpoint=(),
        optimizer="adamw",
        predicted_peak_bytes=1000 * batch,
        reserved_bytes=1100 * batch,
        budget_bytes=10**9,
        headroom_bytes=10**9 - 1100 * batch,
        recompute_fraction=0.0,
        fits=fits,
    )


def test_each_cell_sits_under_its_header() -> None:
    options = (_option(12, 4, "bf16-mixed", True), _option(7, 1, "fp32", False))
    plan = Plan(
        budget=budget_for("1GB", reserve=0),
        goal="max-batch",
        mode="train",
        gpus=1,
        strategy="none",
        options=options,
    )
    table = _options(plan)
    headers = [str(c.header) for c in table.columns]
    cells = {h: [str(x) for x in c._cells] for h, c in zip(headers, table.columns, strict=True)}
    assert all(len(v) == len(options) for v in cells.values())
    assert cells["batch"] == ["12", "7"]
    assert cells["accum"] == ["4", "1"]
    assert cells["eff. batch"] == ["48", "7"]
    assert cells["precision"] == ["bf16-mixed", "fp32"]
    assert cells["optimizer"] == ["adamw", "adamw"]
    assert cells["fits"] == ["yes", "no"]


def _plan(*options: Option) -> Plan:
    return Plan(
        budget=budget_for("1GB", reserve=0),
        goal="max-batch",
        mode="train",
        gpus=1,
        strategy="none",
        options=options,
    )


def test_columns_that_say_nothing_are_left_out() -> None:
    headers = [str(c.header) for c in _options(_plan(_option(12, 1, "fp32", True))).columns]
    assert "accum" not in headers and "eff. batch" not in headers and "recompute" not in headers
    assert headers[:2] == ["#", "batch"] and headers[-1] == "fits"


def test_a_narrow_console_gets_a_table_that_fits_and_says_what_it_left_out() -> None:
    plan = _plan(_option(4096, 4, "bf16-mixed", True), _option(2048, 1, "fp32", True))
    for width in (80, 100, 200):
        console = Console(width=width, record=True, color_system=None)
        console.print(_options_table(plan))
        lines = console.export_text().splitlines()
        assert max(len(line.rstrip()) for line in lines) <= width, width
        text = "\n".join(lines)
        assert "4096" in text and ("16384" in text or "eff. batch" in text.splitlines()[-1])
        assert "bf16-mixed" in text.replace("\n", "")  # whole, or folded, never cut with an ellipsis
        assert "…" not in text
        if width == 200:
            assert "left out" not in text and "headroom" in text

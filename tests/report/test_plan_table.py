"""The plan's options table: every row has a cell under every header, each where its header says."""

from __future__ import annotations

from memadvise.planner.budget import budget_for
from memadvise.planner.search import Option, Plan
from memadvise.reporters.plan_report import _options_table


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
    table = _options_table(plan)
    headers = [str(c.header) for c in table.columns]
    cells = {h: [str(x) for x in c._cells] for h, c in zip(headers, table.columns, strict=True)}
    assert all(len(v) == len(options) for v in cells.values())
    assert cells["batch"] == ["12", "7"]
    assert cells["accum"] == ["4", "1"]
    assert cells["eff. batch"] == ["48", "7"]
    assert cells["precision"] == ["bf16-mixed", "fp32"]
    assert cells["optimizer"] == ["adamw", "adamw"]
    assert cells["fits"] == ["yes", "no"]

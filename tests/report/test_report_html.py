"""The HTML report as text: sections, self-description, escaping, optional sections, size bounds."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest
from report_profiles import large_profile, spiky_timeline

from memadvise import Holder, LayerStats, Profile, Timeline
from memadvise.model.units import format_bytes
from memadvise.reporters.html import MAX_CHART_POINTS, ReportTable, nice_axis, render_html
from memadvise.reporters.timeline import stack_categories

MB = 10**6


def attr(html: str, element_id: str, name: str) -> str:
    match = re.search(rf'<[a-z]+ id="{element_id}"[^>]*? {name}="([^"]*)"', html)
    assert match, f"no {name} on #{element_id}"
    return match.group(1)


def test_report_has_every_section_and_describes_itself(toy: Profile) -> None:
    page = render_html(toy, generated="2026-02-03T04:05:06Z")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for section in ('id="timeline"', 'id="at-peak"', 'id="by-category"', 'id="by-module"', 'id="layers"'):
        assert section in page
    for field, value in {
        "model": "toy",
        "mode": "train",
        "batch size": "8",
        "optimizer": "adamw",
        "device": "cpu",
        "torch": "2.14.1",
        "profiled": "2026-01-02T03:04:05Z",
        "report written": "2026-02-03T04:05:06Z",
    }.items():
        assert f'<dd data-field="{field}">{value}</dd>' in page
    assert f"Peak {format_bytes(toy.peak_bytes)}</b> ({toy.peak_bytes:,} bytes)" in page
    assert "backward of step 2" in page


def test_nothing_is_fetched(toy: Profile) -> None:
    page = render_html(toy)
    for needle in ("http:", "https:", "src=", "href=", "url(", "@import", "<link", "<iframe"):
        assert needle not in page
    assert page.count("<script>") == 1 and page.count("<style>") == 1


def test_model_provided_strings_are_escaped(toy: Profile) -> None:
    evil = '<script>alert("x")</script>'
    layers = (*toy.layers, LayerStats(name=f"blocks.{evil}", type=f"T{evil}", calls=1, param_bytes=7))
    timeline = replace(toy.timeline, op=tuple(f"aten::{evil}" for _ in toy.timeline.op))
    timeline = replace(timeline, module=tuple(f"m&{evil}" for _ in toy.timeline.module))
    prof = replace(
        toy,
        model=f"net{evil}",
        layers=layers,
        timeline=timeline,
        peak_op=f"op{evil}",
        peak_module=f"mod{evil}",
        peak_holders=(*toy.peak_holders, Holder("parameters", f"blocks.{evil}", 7)),
    )
    page = render_html(prof)
    assert "alert(" in page  # the names are shown ...
    assert evil not in page  # ... but never as markup
    assert page.count("<script") == 1
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_chart_series_and_peak_marker(toy: Profile) -> None:
    page = render_html(toy)
    drawn = re.findall(r'<path class="series" data-category="([a-z_]+)"', page)
    assert drawn == stack_categories(toy.timeline)
    assert set(drawn) == {c for c, col in toy.timeline.bytes.items() if any(col)}
    totals = toy.timeline.totals()
    peak = totals.index(max(totals))
    assert int(attr(page, "peak-marker", "data-bytes")) == toy.peak_bytes == totals[peak]
    assert int(attr(page, "peak-marker", "data-index")) == toy.timeline.index[peak]
    assert int(attr(page, "timeline-chart", "data-ymax")) >= toy.peak_bytes
    bands = re.findall(r'<rect class="band" data-phase="([a-z]+)" data-step="(\d)"', page)
    assert bands == [(p, s) for s in "12" for p in ("forward", "backward", "optimizer")]


def test_long_timelines_are_downsampled_without_losing_the_peak(toy: Profile) -> None:
    timeline = spiky_timeline(5000, 4321)
    prof = replace(toy, timeline=timeline, peak_bytes=max(timeline.totals()))
    page = render_html(prof)
    assert int(attr(page, "timeline-chart", "data-points")) <= MAX_CHART_POINTS
    for path in re.findall(r'<path class="series"[^>]* d="([^"]*)"', page):
        assert path.count("L") <= 2 * MAX_CHART_POINTS + 2
    assert int(attr(page, "peak-marker", "data-index")) == timeline.index[4321]
    assert int(attr(page, "peak-marker", "data-bytes")) == max(timeline.totals())


def test_seven_billion_shaped_profile_stays_small() -> None:
    """2000 timeline samples and 420 modules stay far below the 5 MB bound."""
    prof = large_profile()
    page = render_html(prof)
    size = len(page.encode("utf-8"))
    assert size < 5 * MB, size
    assert len(re.findall(r"<tr>", page)) >= len(prof.layers)


def test_optional_sections_render_only_when_given(toy: Profile) -> None:
    page = render_html(toy)
    assert 'id="what-if"' not in page and 'id="plan-options"' not in page
    what_if = ReportTable(
        title="What if",
        columns=("scenario", "peak", "change"),
        rows=(("batch 16", 3 * 2**30, "+12%"), ("bf16 <mixed>", 2**30, "-40%")),
        note="estimates",
        byte_columns=frozenset({"peak"}),
    )
    plan = ReportTable(title="Plan options", columns=("option", "fits"), rows=(("checkpoint blocks", 1),))
    page = render_html(toy, what_if=what_if, plan=plan)
    assert '<section id="what-if" class="wide"><h2>What if</h2>' in page
    assert '<section id="plan-options" class="wide"><h2>Plan options</h2>' in page
    assert f'data-v="{3 * 2**30}" title="{3 * 2**30:,} bytes">3.0 GiB</td>' in page
    assert "bf16 &lt;mixed&gt;" in page
    assert '<td class="num" data-v="1">1</td>' in page


def test_layer_table_and_module_tree_cover_every_module(toy: Profile) -> None:
    page = render_html(toy)
    table = page.split('id="layer-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == len(toy.layers) + 1  # the header row, then one per module
    assert 'data-type="num"' in table and 'data-type="text"' in table
    tree = page.split('id="module-tree"')[1].split('id="layers"')[0]
    shown = {html.unescape(name) for name in re.findall(r'data-module="([^"]*)"', tree)}
    assert shown == {h.module for h in toy.peak_holders} | {"", "blocks", "blocks.0", "blocks.1"}
    assert "dropout" not in shown  # holds nothing at the peak
    assert "1 module holding nothing at the peak" in tree


def test_empty_timeline(toy: Profile) -> None:
    page = render_html(replace(toy, timeline=Timeline()))
    assert "<svg" not in page and "No operators were traced" in page


@pytest.mark.parametrize(
    ("top", "axis_max", "step"),
    [
        (1, 1, 1),
        (1000, 1000, 200),
        (59_867_136, 60 * 2**20, 20 * 2**20),
        (205_532_504, 200 * 2**20, 50 * 2**20),
        (84_746_960_896, 80 * 2**30, 20 * 2**30),
    ],
)
def test_nice_axis(top: int, axis_max: int, step: int) -> None:
    assert nice_axis(top) == (axis_max, step)
    assert nice_axis(top)[0] >= top

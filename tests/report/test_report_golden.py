"""Golden files for the terminal renderings, on a 100-column console without colours.

Regenerate after a deliberate change: ``MEMADVISE_UPDATE_GOLDEN=1 python -m pytest tests/report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from fixed_width import render_text
from report_profiles import toy_profile

from memadvise import Profile, Timeline
from memadvise.reporters.console import _peak_row, module_tree, render_profile, timeline_chart

Golden = Callable[[str, str], None]


def test_profile_report(toy: Profile, golden: Golden) -> None:
    golden("profile_report.txt", render_text(render_profile(toy, top=5)))


def test_profile_report_with_tree(toy: Profile, golden: Golden) -> None:
    golden("profile_report_tree.txt", render_text(render_profile(toy, top=3, tree=True)))


def test_module_tree(toy: Profile, golden: Golden) -> None:
    golden("module_tree.txt", render_text(module_tree(toy)))


def test_module_tree_depth_one(toy: Profile, golden: Golden) -> None:
    golden("module_tree_depth1.txt", render_text(module_tree(toy, max_depth=1)))


def test_timeline_chart_narrow(toy: Profile, golden: Golden) -> None:
    golden("timeline_w60.txt", render_text(timeline_chart(toy), width=60))


def test_timeline_chart_peak_at_the_right_edge(golden: Golden) -> None:
    """An inference-like trace (one phase) whose peak is the last sample: the label goes left of ▲."""
    n = 40
    timeline = Timeline(
        index=tuple(range(n)),
        step=(0,) * n,
        phase=("forward",) * n,
        op=("aten::mm",) * n,
        module=("layer",) * n,
        bytes={"parameters": (4096,) * n, "temporaries": tuple(100 * k for k in range(n))},
    )
    prof = replace(toy_profile(), timeline=timeline)
    golden("timeline_peak_right.txt", render_text(timeline_chart(prof, height=3), width=70))


def test_timeline_chart_of_an_empty_timeline(toy: Profile) -> None:
    text = render_text(timeline_chart(replace(toy, timeline=Timeline())))
    assert text == "Timeline: no operators were traced.\n"


@pytest.mark.parametrize(("column", "columns"), [(0, 8), (3, 8), (7, 8), (40, 50), (49, 50)])
def test_the_peak_mark_sits_under_its_column(column: int, columns: int) -> None:
    row = _peak_row(column, columns, "peak 196.0 MiB").plain
    assert row.index("▲") == column
    assert len(row) <= max(columns, column + 2)

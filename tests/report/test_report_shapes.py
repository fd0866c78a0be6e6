"""The shaping shared by the pictures: phase segments, downsampling, columns, the module hierarchy, CSV."""

from __future__ import annotations

import io
from dataclasses import replace

import pandas as pd
import pytest
from report_profiles import spiky_timeline

from memadvise import Holder, LayerStats, Profile, Timeline
from memadvise.reporters.hierarchy import ModuleNode, module_hierarchy
from memadvise.reporters.tables import table_csv, timeline_csv, to_dataframe
from memadvise.reporters.timeline import (
    column_maxima,
    downsample,
    peak_sample,
    phase_segments,
    stack_categories,
)


def test_phase_segments_of_two_steps(toy: Profile) -> None:
    segments = phase_segments(toy.timeline)
    assert [s.label for s in segments] == ["fwd 1", "bwd 1", "opt 1", "fwd 2", "bwd 2", "opt 2"]
    assert segments[0].start == 0 and segments[-1].stop == len(toy.timeline)
    assert all(a.stop == b.start for a, b in zip(segments, segments[1:], strict=False))


def test_stack_categories_leave_out_empty_ones() -> None:
    assert stack_categories(spiky_timeline(100, 7)) == ["parameters", "temporaries"]


@pytest.mark.parametrize("peak_at", [0, 1, 777, 2998, 2999])
def test_downsample_keeps_the_peak_and_both_ends(peak_at: int) -> None:
    timeline = spiky_timeline(3000, peak_at)
    kept = downsample(timeline, 400)
    assert len(kept) <= 400
    assert kept == sorted(set(kept))
    assert {0, 2999, peak_at} <= set(kept)
    assert peak_sample(timeline) == peak_at


def test_downsample_leaves_short_timelines_alone(toy: Profile) -> None:
    assert downsample(toy.timeline, 1000) == list(range(len(toy.timeline)))


def test_column_maxima_put_the_peak_in_its_column() -> None:
    timeline = spiky_timeline(1000, 321)
    heights, phases, peak_column = column_maxima(timeline, 80)
    assert len(heights) == len(phases) == 80
    assert peak_column is not None and heights[peak_column] == max(timeline.totals()) == max(heights)
    assert peak_column == 321 * 2 * 80 // (2 * 999 + 1)


def test_column_maxima_repeat_the_level_where_no_sample_falls() -> None:
    timeline = Timeline(
        index=(0, 100),
        step=(0, 0),
        phase=("forward", "backward"),
        op=("a", "b"),
        module=("", ""),
        bytes={"temporaries": (5, 9)},
    )
    heights, phases, peak_column = column_maxima(timeline, 10)
    assert heights == [5] * 9 + [9]
    assert phases == ["forward"] * 9 + ["backward"]
    assert peak_column == 9


def check_totals(node: ModuleNode) -> None:
    assert node.total == node.own_total + sum(child.total for child in node.children)
    for category, nbytes in node.by_category.items():
        assert nbytes == node.own.get(category, 0) + sum(
            c.by_category.get(category, 0) for c in node.children
        )
    assert [c.total for c in node.children] == sorted((c.total for c in node.children), reverse=True)
    for child in node.children:
        check_totals(child)


def test_hierarchy_adds_up_to_the_peak(toy: Profile) -> None:
    root = module_hierarchy(toy)
    assert root.name == "" and root.type == "ToyNet"
    assert root.total == toy.peak_bytes == sum(h.bytes for h in toy.peak_holders)
    assert root.by_category == {c: n for c, n in toy.peak_breakdown.items() if n}
    check_totals(root)
    names = [node.name for node in root.walk()]
    assert sorted(names) == sorted({layer.name for layer in toy.layers} | {"<inputs>", "<autograd>"})
    blocks = next(c for c in root.children if c.name == "blocks")
    assert [c.local_name for c in blocks.children] == ["0", "1"]


def test_hierarchy_skips_missing_parents_and_keeps_outside_holders_at_the_root(toy: Profile) -> None:
    prof = replace(
        toy,
        layers=(LayerStats(name="", type="Net"), LayerStats(name="a", type="A")),
        peak_holders=(
            Holder("parameters", "a.b.c", 10),
            Holder("activations", "a", 5),
            Holder("temporaries", "<optimizer>", 3),
            Holder("parameters", "x.y", 2),
        ),
    )
    root = module_hierarchy(prof)
    by_name = {node.name: node for node in root.walk()}
    assert by_name["a.b.c"].local_name == "b.c" and by_name["a"].children == (by_name["a.b.c"],)
    assert by_name["a"].total == 15 and by_name["a"].own == {"activations": 5}
    assert [c.name for c in root.children] == ["a", "<optimizer>", "x.y"]
    assert not by_name["<optimizer>"].is_model_module
    assert root.total == 20


def test_timeline_csv_reads_back(toy: Profile) -> None:
    frame = pd.read_csv(io.StringIO(timeline_csv(toy)))
    assert list(frame.columns) == list(to_dataframe(toy, "timeline").columns)
    assert list(frame["total"]) == toy.timeline.totals()
    assert int(frame["total"].max()) == toy.peak_bytes
    assert list(frame["op"]) == list(toy.timeline.op)


def test_table_csv_names_the_table(toy: Profile) -> None:
    assert table_csv(toy, "layers").splitlines()[0].startswith("name,type,calls")
    assert table_csv(toy, "timeline").splitlines()[0].startswith("index,step,phase,op,module")
    with pytest.raises(ValueError, match="unknown table"):
        table_csv(toy, "holders")

"""Reports of a profile: DataFrames, CSV and the terminal tables (from a hand-built profile)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from memadvise import Holder, LayerStats, Profile, Timeline
from memadvise.model.profile import ROOT_LABEL
from memadvise.model.units import format_bytes
from memadvise.reporters import Format, format_for_path
from memadvise.reporters.console import layers_table, render_profile
from memadvise.reporters.tables import LAYER_COLUMNS, layers_csv, to_dataframe

KiB = 2**10
MiB = 2**20


@pytest.fixture
def profile() -> Profile:
    layers = (
        LayerStats(name="", type="Net", calls=1, output_bytes=64),
        LayerStats(
            name="encoder",
            type="Linear",
            calls=1,
            param_bytes=3 * MiB,
            grad_bytes=3 * MiB,
            optimizer_state_bytes=6 * MiB + 4,
            activation_bytes=KiB,
            output_bytes=KiB,
        ),
        LayerStats(
            name="encoder.norm",
            type="LayerNorm",
            calls=2,
            param_bytes=8 * KiB,
            buffer_bytes=512,
            grad_bytes=8 * KiB,
            optimizer_state_bytes=16 * KiB + 8,
            activation_bytes=2 * KiB,
        ),
        LayerStats(
            name="head",
            type="Linear",
            calls=1,
            param_bytes=MiB,
            grad_bytes=MiB,
            optimizer_state_bytes=2 * MiB + 4,
            activation_bytes=0,
            output_bytes=256,
        ),
    )
    breakdown = {
        "parameters": 4 * MiB + 8 * KiB,
        "buffers": 512,
        "inputs": 256,
        "activations": 0,
        "gradients": 4 * MiB + 8 * KiB,
        "optimizer_state": 8 * MiB + 16 * KiB + 16,
        "temporaries": 1000,
    }
    timeline = Timeline(
        index=(0, 3, 9),
        step=(0, 0, 1),
        phase=("forward", "backward", "optimizer"),
        op=("aten::addmm", "aten::mm", "aten::add_"),
        module=("encoder", "<autograd>", "<optimizer>"),
        bytes={k: (v // 4, v // 2, v) for k, v in breakdown.items()},
    )
    return Profile(
        model="net",
        batch_size=4,
        mode="train",
        device="cpu",
        optimizer="adamw",
        peak_bytes=sum(breakdown.values()),
        peak_phase="optimizer",
        peak_step=1,
        peak_op="aten::add_",
        peak_module="<optimizer>",
        peak_breakdown=breakdown,
        param_bytes=4 * MiB + 8 * KiB,
        buffer_bytes=512,
        input_bytes=256,
        grad_bytes=4 * MiB + 8 * KiB,
        optimizer_state_bytes=8 * MiB + 16 * KiB + 16,
        activation_bytes=3 * KiB,
        steps=2,
        layers=layers,
        peak_holders=(
            Holder("optimizer_state", "encoder", 6 * MiB + 4),
            Holder("parameters", "encoder", 3 * MiB),
        ),
        timeline=timeline,
        torch_version="x",
    )


def test_layers_dataframe(profile: Profile) -> None:
    frame = to_dataframe(profile)
    assert list(frame.columns) == list(LAYER_COLUMNS)
    assert list(frame["name"]) == [layer.name or ROOT_LABEL for layer in profile.layers]
    assert int(frame["param_bytes"].sum()) == profile.param_bytes
    assert int(frame["optimizer_state_bytes"].sum()) == profile.optimizer_state_bytes


def test_timeline_dataframe_total_column(profile: Profile) -> None:
    frame = to_dataframe(profile, "timeline")
    assert len(frame) == len(profile.timeline)
    assert list(frame["total"]) == profile.timeline.totals()
    assert int(frame["total"].max()) == profile.peak_bytes
    assert list(frame["phase"]) == list(profile.timeline.phase)
    assert list(frame["step"]) == [step + 1 for step in profile.timeline.step]  # counted from 1
    assert list(frame["module"]) == [m or ROOT_LABEL for m in profile.timeline.module]


def test_unknown_table_is_an_error(profile: Profile) -> None:
    with pytest.raises(ValueError, match="unknown table 'holders'"):
        to_dataframe(profile, "holders")


def test_layers_csv_reads_back_exactly(profile: Profile) -> None:
    text = layers_csv(profile)
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype={"name": str, "type": str})
    assert list(frame.columns) == list(LAYER_COLUMNS)
    assert list(frame["name"]) == [ROOT_LABEL, "encoder", "encoder.norm", "head"]
    for column in LAYER_COLUMNS[2:]:
        assert frame[column].tolist() == [getattr(layer, column) for layer in profile.layers], column


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("p.json", Format.JSON),
        ("out/P.JSON", Format.JSON),
        ("layers.csv", Format.CSV),
        ("report.txt", Format.TABLE),
        ("noext", None),
        ("dir.json/file", None),
    ],
)
def test_format_for_path(path: str, fmt: Format | None) -> None:
    assert format_for_path(path) is fmt


def render(renderable: object, width: int = 200) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_terminal_report_names_peak_categories_and_layers(profile: Profile) -> None:
    text = render(render_profile(profile))
    assert "Peak " + format_bytes(profile.peak_bytes) in text
    assert f"{profile.peak_bytes:,} bytes" in text
    assert "optimizer of step 2" in text  # steps are shown counting from 1
    for label in ("optimizer state", "parameters", "gradients", "buffers", "temporaries"):
        assert label in text
    assert ROOT_LABEL in text and "encoder.norm" in text
    assert "Who holds the peak" in text


def test_zero_categories_are_left_out_of_the_breakdown(profile: Profile) -> None:
    text = render(render_profile(profile))
    breakdown = text.split("Alive at the peak")[1].split("Model totals")[0]
    assert "activations" not in breakdown
    assert "100.0%" in breakdown


def test_layer_table_is_sorted_and_limited(profile: Profile) -> None:
    text = render(layers_table(profile, top=2))
    assert "Top 2 layers" in text
    assert text.index("encoder") < text.index("head")
    assert "encoder.norm" not in text and ROOT_LABEL not in text


def test_fitted_takes_the_widest_rendering_that_fits() -> None:
    from rich.table import Table

    from memadvise.reporters.console import Fitted

    def table(label: str) -> Table:
        t = Table()
        t.add_column("category")
        t.add_column("size", justify="right")
        t.add_row(label, "1.0 MiB")
        return t

    fitted = Fitted(table("activations (saved for backward)"), table("activations"))
    assert "(saved for backward)" in render(fitted, width=80)
    narrow = render(fitted, width=30)
    assert "(saved" not in narrow and "activations" in narrow

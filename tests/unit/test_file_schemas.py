"""The files memadvise reads are checked against their schema: each bad field is one error naming the file
and the field's path; every size parsed is bounded."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from file_mutations import to_json_text, valid_baseline, valid_profile
from typer.testing import CliRunner

from memadvise.check import load_baseline
from memadvise.errors import BaselineError, ProfileFileError, UsageError
from memadvise.model.profile import load_profile
from memadvise.model.schema import GPU_CATALOG, SchemaError, validate
from memadvise.model.units import MAX_BYTES, parse_size

Edit = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        data[last] = value

    return edit


PROFILE_CASES: list[tuple[str, Edit, str]] = [
    ("peak as a string", _set("peak_bytes", "908"), "peak_bytes: expected an integer from 0 to 1 EiB"),
    ("peak null", _set("peak_bytes", None), "peak_bytes: expected an integer"),
    ("peak of 400 digits", _set("peak_bytes", "__huge_integer__"), "peak_bytes: expected an integer"),
    ("negative peak", _set("peak_bytes", -5), "peak_bytes: expected an integer from 0 to 1 EiB, not -5"),
    ("peak NaN", _set("peak_bytes", float("nan")), "NaN"),
    ("peak Infinity", _set("peak_bytes", float("inf")), "Infinity"),
    ("a list for a layer", lambda d: d["layers"].__setitem__(0, [1, 2]), "layers[0]: expected an object"),
    ("timeline lengths", lambda d: d["timeline"]["index"].append(9), "timeline.step: expected 5 items"),
    (
        "negative timeline bytes",
        lambda d: d["timeline"]["bytes"]["inputs"].__setitem__(3, -1),
        "timeline.bytes.inputs[3]: expected an integer from 0 to 1 EiB",
    ),
    ("empty program", _set("program", {}), "program.batch_size: missing"),
    (
        "parameter without shape",
        lambda d: d["program"]["parameters"][0].pop("shape"),
        "program.parameters[0].shape: missing",
    ),
    (
        "truncated program sizes",
        lambda d: d["program"].__setitem__("size", d["program"]["size"][:2]),
        "program.alloc: expected 2 items (as many as size), not 5",
    ),
    ("negative program size", lambda d: d["program"]["size"].__setitem__(0, -400), "program.size[0]"),
    ("category 99", lambda d: d["program"]["category"].__setitem__(0, 99), "program.category[0]"),
    ("module index out of range", lambda d: d["program"]["module"].__setitem__(0, 7), "program.module[0]"),
    (
        "freed before allocated",
        lambda d: d["program"]["free"].__setitem__(3, 0),
        "program.free[3]: expected a position after alloc (1)",
    ),
    (
        "alloc past the events",
        lambda d: d["program"]["alloc"].__setitem__(2, 5),
        "program.alloc[2]: expected -1 or a position below 5",
    ),
    ("optimizer lbfgs", _set("optimizer", "lbfgs"), "optimizer: expected one of adamw"),
    ("precision fp8", _set("precision", "fp8"), "precision: expected one of fp32"),
    (
        "mode destroy",
        _set("mode", "destroy"),
        "mode: expected one of train, inference, generate, not 'destroy'",
    ),
    ("deep nesting", _set("model", "__deep_nesting__"), "nested too deeply"),
    (
        "health ratio over 1",
        lambda d: d["health"]["layers"][0].__setitem__("grad_below_fp16_normal", 2.0),
        "health.layers[0].grad_below_fp16_normal",
    ),
]


@pytest.mark.parametrize(("what", "edit", "message"), PROFILE_CASES, ids=[c[0] for c in PROFILE_CASES])
def test_bad_profile_field_is_named(what: str, edit: Edit, message: str, tmp_path: Path) -> None:
    data = valid_profile()
    edit(data)
    path = tmp_path / "p.json"
    path.write_text(to_json_text(data), encoding="utf-8")
    with pytest.raises(ProfileFileError) as info:
        load_profile(path)
    text = str(info.value)
    assert "\n" not in text and "p.json" in text
    assert message in text, text


def test_measured_health_figures_may_exceed_any_byte_count(tmp_path: Path) -> None:
    """An activation of 1e30 is finite in fp32: a profile holding it reads (bytes stay bounded)."""
    data = valid_profile()
    data["health"]["layers"][0]["max_abs_activation"] = 1e30
    data["health"]["flags"][0]["value"] = 1e30
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_profile(path).health.layers[0].max_abs_activation == 1e30  # type: ignore[union-attr]


def test_profile_error_through_the_command_line(tmp_path: Path) -> None:
    """The user's report: a string peak gave 'internal error' (exit 3); now exit 2 and one line."""
    from memadvise.cli import app

    data = valid_profile()
    data["timeline"]["bytes"]["inputs"][3] = -1
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"memadvise: error: {path}: timeline.bytes.inputs[3]: expected an integer from 0 to 1 EiB, not -1"
    ]


@pytest.mark.parametrize(
    ("what", "entries", "message"),
    [
        ("entries a list", [], "entries: expected an object, not a list"),
        ("entries a string", "x", "entries: expected an object, not 'x'"),
        ("entries an integer", 3, "entries: expected an object, not 3"),
        ("Infinity", "inf", "Infinity"),
        ("deep nesting", "__deep_nesting__", "nested too deeply"),
        ("a figure missing", "no-peak", "figures.peak_bytes: missing"),
        ("a negative layer", "negative-layer", "activation_bytes: expected an integer from 0 to 1 EiB"),
        ("mode destroy", "destroy", "mode: expected one of train, inference"),
    ],
)
def test_bad_baseline_field_is_named(what: str, entries: Any, message: str, tmp_path: Path) -> None:
    data = valid_baseline()
    entry = next(iter(data["entries"].values()))
    if entries == "inf":
        entry["figures"]["peak_bytes"] = float("inf")
    elif entries == "no-peak":
        del entry["figures"]["peak_bytes"]
    elif entries == "negative-layer":
        next(iter(entry["layers"].values()))["activation_bytes"] = -3
    elif entries == "destroy":
        entry["mode"] = "destroy"
    else:
        data["entries"] = entries
    path = tmp_path / "memory-baseline.json"
    path.write_text(to_json_text(data), encoding="utf-8")
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    text = str(info.value)
    assert "\n" not in text and "memory-baseline.json" in text
    assert message in text, text


@pytest.mark.parametrize(
    "text", ["9" * 400, "9" * 30, f"{MAX_BYTES + 1}", "2000000TiB", "nan", "inf", "-1GB", "1e400", ""]
)
def test_sizes_are_bounded_and_finite(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_size(text)
    assert len(str(info.value)) < 200


def test_the_largest_size_is_one_exbibyte() -> None:
    assert parse_size("1048576TiB") == MAX_BYTES == 2**60
    assert parse_size(str(MAX_BYTES)) == MAX_BYTES


@pytest.mark.parametrize(
    "args",
    [
        ["--gpu", "9" * 400],
        ["--gpu", "24GB", "--reserve", "9" * 400],
        ["--gpu", "2000000000000000000000"],
        ["--gpu", "24GB", "--reserve", "nan"],
    ],
)
def test_huge_gpu_and_reserve_are_one_line(args: list[str], tmp_path: Path) -> None:
    from memadvise.cli import app

    path = tmp_path / "p.json"
    path.write_text(to_json_text(valid_profile()), encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(path), *args])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: ") and len(lines[0]) < 200, lines


def test_the_shipped_gpu_catalog_fits_its_schema() -> None:
    rows = json.loads(resources.files("memadvise.planner").joinpath("data/gpus.json").read_text("utf-8"))
    validate(rows, GPU_CATALOG)
    rows[1]["memory_bytes"] = -1
    with pytest.raises(SchemaError, match=r"\[1\]\.memory_bytes: expected an integer from 1"):
        validate(rows, GPU_CATALOG)

"""``memadvise profile`` on small model files: table, JSON and CSV reports, files, modes, factories."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import memadvise
from memadvise.cli import app
from memadvise.model.profile import ROOT_LABEL

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TINY = str(MODELS_DIR / "tiny_mlp.py")

JSON_KEYS = {
    "schema_version",
    "model",
    "batch_size",
    "mode",
    "device",
    "optimizer",
    "peak_bytes",
    "peak_phase",
    "peak_breakdown",
    "param_bytes",
    "buffer_bytes",
    "grad_bytes",
    "optimizer_state_bytes",
    "activation_bytes",
    "layers",
}
LAYER_KEYS = {"name", "type", "param_bytes", "grad_bytes", "activation_bytes", "output_bytes"}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["profile", *args])


@cache
def json_run(*args: str) -> dict[str, Any]:
    """The JSON report of ``memadvise profile ARGS --format json --device cpu`` (cached: runs are exact)."""
    result = invoke(*args, "--format", "json", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert isinstance(data, dict)
    return data


def own_parameter_bytes(model_file: Path, factory: str = "build_model") -> int:
    """Parameter bytes of a model file's model, counted without memadvise."""
    spec = importlib.util.spec_from_file_location(f"cli_check_{model_file.stem}", model_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, factory)()
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_table_report() -> None:
    result = invoke(TINY, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Peak" in out
    assert "tiny_mlp" in out and "train" in out and "adamw" in out
    assert f"{json_run(TINY)['peak_bytes']:,} bytes" in out
    assert "Alive at the peak" in out and "Who holds the peak" in out
    assert ROOT_LABEL in out
    assert result.stderr == ""


def test_json_report_has_the_documented_fields() -> None:
    data = json_run(TINY)
    assert JSON_KEYS <= set(data)
    assert next(iter(data)) == "schema_version"  # readers can check the version before anything else
    assert data["schema_version"] == 1
    assert data["model"] == "tiny_mlp"
    assert data["batch_size"] == 1 and data["mode"] == "train" and data["optimizer"] == "adamw"
    assert data["device"] == "cpu"
    assert data["layers"], "no layers reported"
    for layer in data["layers"]:
        assert LAYER_KEYS <= set(layer)


def test_json_byte_values_are_integers() -> None:
    data = json_run(TINY)

    def check(obj: dict[str, Any], where: str) -> None:
        for key, value in obj.items():
            if key.endswith("_bytes") or key == "bytes":
                assert type(value) is int, f"{where}.{key} = {value!r}"

    check(data, "profile")
    assert all(type(v) is int for v in data["peak_breakdown"].values())
    for layer in data["layers"]:
        check(layer, f"layer {layer['name']!r}")
    for holder in data["peak_holders"]:
        check(holder, "holder")


def test_json_figures_agree_with_the_model_file() -> None:
    data = json_run(TINY)
    params = own_parameter_bytes(MODELS_DIR / "tiny_mlp.py")
    assert data["param_bytes"] == params
    assert data["grad_bytes"] == params
    assert sum(data["peak_breakdown"].values()) == data["peak_bytes"]
    assert sum(layer["param_bytes"] for layer in data["layers"]) == data["param_bytes"]
    assert data["peak_bytes"] >= data["param_bytes"] + data["grad_bytes"] + data["optimizer_state_bytes"]
    assert [layer["type"] for layer in data["layers"]] == ["Sequential", "Linear", "ReLU", "Linear"]


def test_batch_size_option() -> None:
    one, five = json_run(TINY), json_run(TINY, "--batch-size", "5")
    assert five["batch_size"] == 5
    assert five["input_bytes"] == 5 * one["input_bytes"] == 5 * 8 * 4
    assert five["param_bytes"] == one["param_bytes"]
    assert five["activation_bytes"] > one["activation_bytes"]


def test_csv_report_sums_to_the_json_figures() -> None:
    result = invoke(TINY, "--format", "csv", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False, dtype={"name": str})
    data = json_run(TINY)
    assert list(frame["name"]) == [layer["name"] or ROOT_LABEL for layer in data["layers"]]  # JSON stores ""
    assert int(frame["param_bytes"].sum()) == data["param_bytes"]
    assert int(frame["grad_bytes"].sum()) == data["grad_bytes"]
    assert int(frame["optimizer_state_bytes"].sum()) == data["optimizer_state_bytes"]
    assert frame["param_bytes"].dtype.kind == "i"


def test_output_json_file_reads_back_as_the_printed_profile(tmp_path: Path) -> None:
    target = tmp_path / "profile.json"
    result = invoke(TINY, "--device", "cpu", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("wrote json profile to")  # the format came from the suffix
    loaded = memadvise.load_profile(target)
    printed = memadvise.Profile.from_dict(json_run(TINY))
    assert dataclasses.replace(loaded, created=printed.created) == printed
    assert json.loads(target.read_text(encoding="utf-8")) == loaded.to_dict()


def test_confirmation_names_a_long_output_path_on_one_line(tmp_path: Path) -> None:
    folder = tmp_path / ("reports_" + "x" * 40) / ("run_" + "y" * 40)
    folder.mkdir(parents=True)
    target = folder / "profile.json"
    result = invoke(TINY, "--device", "cpu", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.exists()
    assert result.stderr.splitlines() == [f"wrote json profile to {target}"]


def test_output_csv_file_from_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "layers.csv"
    result = invoke(TINY, "--device", "cpu", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(target, keep_default_na=False, dtype={"name": str})
    assert int(frame["param_bytes"].sum()) == json_run(TINY)["param_bytes"]


def test_explicit_format_wins_over_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    result = invoke(TINY, "--device", "cpu", "--format", "json", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert json.loads(target.read_text(encoding="utf-8"))["param_bytes"] == json_run(TINY)["param_bytes"]


def test_output_table_file(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    result = invoke(TINY, "--device", "cpu", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    text = target.read_text(encoding="utf-8")
    assert "Peak" in text and f"{json_run(TINY)['peak_bytes']:,} bytes" in text
    assert "\x1b[" not in text  # plain text, no terminal colour codes


def test_inference_mode() -> None:
    data = json_run(TINY, "--mode", "inference")
    assert data["mode"] == "inference"
    assert data["optimizer"] == "none"
    assert data["grad_bytes"] == 0 and data["optimizer_state_bytes"] == 0 and data["activation_bytes"] == 0
    assert data["peak_breakdown"]["gradients"] == 0
    assert all(layer["grad_bytes"] == 0 for layer in data["layers"])
    assert data["peak_bytes"] < json_run(TINY)["peak_bytes"]


@pytest.mark.parametrize(("optimizer", "state_per_param_byte"), [("sgd", 0), ("sgd-momentum", 1)])
def test_optimizer_option(optimizer: str, state_per_param_byte: int) -> None:
    data = json_run(TINY, "--optimizer", optimizer)
    assert data["optimizer"] == optimizer
    assert data["optimizer_state_bytes"] == state_per_param_byte * data["param_bytes"]


def test_named_factory() -> None:
    data = json_run(f"{MODELS_DIR / 'factories.py'}:build_small")
    assert data["model"] == "factories:build_small"
    assert data["param_bytes"] == own_parameter_bytes(MODELS_DIR / "factories.py", "build_small")
    wide = json_run(f"{MODELS_DIR / 'factories.py'}:build_wide")
    assert wide["param_bytes"] == own_parameter_bytes(MODELS_DIR / "factories.py", "build_wide")


def test_dict_inputs_and_loss_fn() -> None:
    data = json_run(str(MODELS_DIR / "dict_inputs_with_loss.py"), "-b", "3")
    assert data["param_bytes"] == own_parameter_bytes(MODELS_DIR / "dict_inputs_with_loss.py")
    assert data["input_bytes"] == 3 * (5 + 1) * 4


def test_top_limits_the_layer_table() -> None:
    result = invoke(TINY, "--device", "cpu", "--top", "1")
    assert result.exit_code == 0, result.stderr
    assert "Top 1 layers" in result.stdout


def test_relative_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MODELS_DIR.parent.parent)
    result = invoke("tests/models/tiny_mlp.py", "--format", "json", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "tiny_mlp"

"""``memadvise plan``: JSON keys, pinned levers, the catalog, no-GPU and bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TINY = str(MODELS_DIR / "tiny_mlp.py")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["plan", *args])


def _json(*args: str) -> dict:
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_recommendation_and_options(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "8MiB", "--reserve", "0")
    rec = data["recommendation"]
    assert {"batch_size", "precision", "checkpoint", "optimizer", "grad_accum"} <= set(rec)
    assert rec["predicted_peak_bytes"] <= rec["budget_bytes"] == 8 * 2**20
    assert data["options"] and data["options"][0]["batch_size"] == rec["batch_size"]
    assert all(o["fits"] for o in data["options"] if o is data["options"][0])
    assert data["system_ram"]["recommended_bytes"] >= 1.25 * 8 * 2**20


def test_pinned_levers_are_not_searched(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "8MiB", "--reserve", "0", "--precision", "fp32", "--checkpoint", "none")
    assert {o["precision"] for o in data["options"]} == {"fp32"}
    assert all(o["checkpoint"] == [] for o in data["options"])


def test_min_batch_uses_accumulation_when_the_micro_batch_cannot_reach_it(saved: Path) -> None:
    free = _json(str(saved), "--gpu", "8MiB", "--reserve", "0", "--precision", "fp32", "--checkpoint", "none")
    largest = free["recommendation"]["batch_size"]
    data = _json(
        str(saved),
        "--gpu",
        "8MiB",
        "--reserve",
        "0",
        "--precision",
        "fp32",
        "--checkpoint",
        "none",
        "--min-batch",
        str(largest * 4),
    )
    rec = data["recommendation"]
    assert rec["grad_accum"] > 1
    assert rec["effective_batch_size"] >= largest * 4


def test_catalog_name_budget_subtracts_the_context(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "RTX 4090")
    budget = data["budget"]
    assert budget["gpu"] == "RTX 4090"
    assert (
        budget["usable_bytes"] == budget["total_bytes"] - budget["context_bytes"] - budget["workspace_bytes"]
    )


def test_nothing_fits_says_what_would(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "100B", "--reserve", "0")  # an explicit unit: tiny on purpose
    assert data["recommendation"] is None
    assert data["suggestions"]


def test_list_gpus_ranks_the_catalog(saved: Path) -> None:
    result = invoke(str(saved), "--list-gpus")
    assert result.exit_code == 0, result.stderr
    assert "H100" in result.stdout and "RTX 4090" in result.stdout


def test_several_gpus_report_their_strategy(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "8MiB", "--reserve", "0", "--gpus", "4", "--strategy", "zero3")
    assert data["gpus"] == 4 and data["strategy"] == "zero3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "Voodoo 5"], "Voodoo"),
        (["--gpu", "1GiB", "--reserve", "2GiB"], "leaves nothing"),
        (["--gpu", "1GiB", "--strategy", "zero9"], "unknown sharding strategy"),
        (["--gpu", "1GiB", "--batch-size", "2", "--min-batch", "8"], "give one"),
        (["--gpu", "1GiB", "--precision", "fp8"], "unknown precision"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(saved: Path, args: list[str], message: str) -> None:
    result = invoke(str(saved), *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_gpu_on_a_machine_without_one(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memadvise.planner.hardware as hardware

    monkeypatch.setattr(hardware, "local_gpus", lambda: [])
    result = invoke(str(saved))
    assert result.exit_code == 2
    assert "no GPU found" in result.stderr


def test_without_gpu_plans_for_the_local_one(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memadvise.planner.hardware as hardware

    fake = hardware.LocalGpu(
        index=0, name="NVIDIA GeForce RTX 4090", total_bytes=24 * 2**30, free_bytes=2**30
    )
    monkeypatch.setattr(hardware, "local_gpus", lambda: [fake])
    data = _json(str(saved))
    assert data["budget"]["gpu"] == "RTX 4090"


def test_a_card_number_is_the_card_and_a_tiny_bare_number_is_refused(saved: Path) -> None:
    data = _json(str(saved), "--gpu", "4090")
    assert data["budget"]["gpu"] == "RTX 4090"
    result = invoke(str(saved), "--gpu", "4000")
    assert result.exit_code == 2
    assert "give a unit" in result.stderr and "Traceback" not in result.stderr

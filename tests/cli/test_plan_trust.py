"""``memadvise plan`` as a plan to spend money on: the printed command reproduces the figure, ties keep
what the user runs, pinned levers are checked, a batch memory no longer limits is said so, JSON names
each figure, the config names the model, prices and offloading."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app
from memadvise.model.profile import load_profile
from memadvise.planner.search import BATCH_CAP


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def as_json(*args: str) -> dict:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "extra",
    [
        ["--gpu", "A10"],
        ["--gpu", "A10", "--gpus", "8", "--strategy", "zero3"],
        ["--gpu", "300KiB", "--reserve", "0", "--precision", "bf16-mixed"],
        ["--gpu", "A10", "--offload", "optimizer"],
    ],
)
def test_the_printed_command_runs_and_gives_the_plans_figure(saved: Path, extra: list[str]) -> None:
    plan = as_json("plan", str(saved), *extra)
    best = plan["recommendation"]
    words = shlex.split(best["command"])
    assert words[:2] == ["memadvise", "estimate"] and "…" not in best["command"]
    estimate = as_json(*words[1:])
    assert estimate["peak_bytes"] == best["allocated_bytes"]


@pytest.mark.parametrize(
    "extra", [["--gpu", "A10"], ["--gpu", "40KiB", "--reserve", "0", "--precision", "bf16-mixed"]]
)
def test_a_model_files_command_profiles_it_as_the_plan_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    """From a model file the plan prints the profiling command first (with the options it traced
    with, including a pinned precision), then the estimate; both run as printed and give the figure."""
    model = Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py"
    monkeypatch.chdir(tmp_path)
    best = as_json("plan", str(model), *extra)["recommendation"]
    first, second = best["command"].split(" && ")
    assert run(*shlex.split(first)[1:]).exit_code == 0
    assert as_json(*shlex.split(second)[1:])["peak_bytes"] == best["allocated_bytes"]


def test_a_tie_keeps_the_profiled_optimizer(saved: Path) -> None:
    """On an A10 the tiny model reaches the batch cap with AdamW and with 8-bit AdamW alike."""
    plan = as_json("plan", str(saved), "--gpu", "A10", "--precision", "fp32", "--checkpoint", "none")
    by_optimizer = {o["optimizer"]: o["effective_batch_size"] for o in plan["options"]}
    assert by_optimizer["adamw"] == by_optimizer["adamw-8bit"]
    assert plan["recommendation"]["optimizer"] == "adamw"


def test_when_memory_stops_limiting_the_batch_the_plan_says_so(saved: Path) -> None:
    profile = load_profile(saved)
    per_sample = profile.activation_bytes / profile.batch_size
    assert per_sample * BATCH_CAP < 24 * 10**9 / 2  # far from any limit on a 24 GB card
    plan = as_json("plan", str(saved), "--gpu", "24GB")
    best = plan["recommendation"]
    assert best["batch_size"] == BATCH_CAP and plan["options"][0]["batch_capped"]
    text = run("plan", str(saved), "--gpu", "24GB")
    assert f"memory allows at least {BATCH_CAP}" in text.stdout


def test_a_pinned_module_that_is_not_there_is_an_error(saved: Path) -> None:
    line = one_error_line(run("plan", str(saved), "--gpu", "24GB", "--checkpoint", "no.such.module"))
    assert "no.such.module" in line
    same = one_error_line(run("estimate", str(saved), "--checkpoint", "no.such.module"))
    assert same == line


def test_json_names_each_figure(saved: Path) -> None:
    replayed = as_json("plan", str(saved), "--gpu", "A10")
    assert replayed["schema_version"] == 2
    first = replayed["options"][0]
    assert first["reserved_source"] == "allocator model"
    # The allocator rounds every block up and takes whole segments: reserved is at least allocated.
    assert first["reserved_bytes"] >= first["allocated_bytes"] == first["predicted_peak_bytes"]
    exact = as_json("plan", str(saved), "--gpu", "300KiB", "--reserve", "0")
    assert all(o["reserved_bytes"] is None for o in exact["options"])
    assert all(o["reserved_source"].startswith("exact budget") for o in exact["options"])


def test_estimate_shares_the_multi_gpu_options(saved: Path) -> None:
    """ZeRO-3 over 8 GPUs keeps an eighth of the parameters (rounded up), as the paper's accounting."""
    one = as_json("estimate", str(saved))
    eight = as_json("estimate", str(saved), "--gpus", "4", "--nodes", "2", "--strategy", "zero3")
    assert eight["param_bytes"] == math.ceil(one["param_bytes"] / 8)
    assert eight["scenario"]["gpus"] == 8


def test_the_config_names_the_model(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "tiny.json").write_bytes(saved.read_bytes())
    (tmp_path / "pyproject.toml").write_text('[tool.memadvise]\nmodel = "tiny.json"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    found = as_json("plan", "--gpu", "24GB")["recommendation"]
    given = as_json("plan", str(saved), "--gpu", "24GB")["recommendation"]
    assert found["command"].startswith(f"memadvise estimate {tmp_path / 'tiny.json'} ")
    assert found["flags"] == given["flags"] and found["allocated_bytes"] == given["allocated_bytes"]
    assert as_json("estimate")["peak_bytes"] == as_json("estimate", str(saved))["peak_bytes"]


def test_without_target_or_config_one_line_shows_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    for command in ("plan", "estimate", "profile"):
        line = one_error_line(run(command, *(["--gpu", "24GB"] if command == "plan" else [])))
        assert ("MODEL_FILE" if command == "profile" else "TARGET") in line and "[tool.memadvise]" in line


def test_offload_moves_the_optimizer_state_to_the_host(saved: Path) -> None:
    """AdamW on a CPU profile: two state buffers per parameter and a 4-byte step tensor each (closed
    form); the host also keeps the gradients the CPU step reads."""
    profile = load_profile(saved)
    assert profile.program is not None
    params = profile.program.parameters
    state = sum(2 * math.prod(p.shape) * p.itemsize + 4 for p in params)
    grads = sum(math.prod(p.shape) * p.itemsize for p in params)
    plain = as_json("estimate", str(saved))
    moved = as_json("estimate", str(saved), "--offload", "optimizer")
    assert plain["optimizer_state_bytes"] == state and moved["optimizer_state_bytes"] == 0
    report = moved["offload"]
    assert report["host_bytes"] == state + grads and report["pinned_bytes"] == grads
    assert report["gpu_saving_bytes"] == plain["peak_bytes"] - moved["peak_bytes"] > 0
    everything = as_json("estimate", str(saved), "--offload", "optimizer+params")
    assert everything["offload"]["host_bytes"] == state + 2 * grads  # fp32 parameters are as large as grads
    assert everything["param_bytes"] == 0


def test_offload_adds_to_the_system_ram_advice(saved: Path) -> None:
    plain = as_json("plan", str(saved), "--gpu", "A10")
    moved = as_json("plan", str(saved), "--gpu", "A10", "--offload", "optimizer")
    assert moved["system_ram"]["offloaded_bytes"] > 0
    assert (
        moved["system_ram"]["rule_bytes"]
        == plain["system_ram"]["rule_bytes"] + moved["system_ram"]["offloaded_bytes"]
    )


def test_cheapest_ranks_the_cards_that_fit_by_price(saved: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"date": "2026-01-01", "prices": {"H100": 1.0, "4090": 2.0, "T4": 0.5}}))
    data = as_json("plan", str(saved), "--list-gpus", "--goal", "cheapest", "--prices", str(prices))
    order = [(g["budget"]["gpu"], g["price_per_hour"]) for g in data["gpus"]]
    assert order[:3] == [("T4", 0.5), ("H100 80GB", 1.0), ("RTX 4090", 2.0)]
    assert all(price is None for _, price in order[3:])
    shipped = as_json("plan", str(saved), "--list-gpus", "--goal", "cheapest")
    assert shipped["prices"]["date"] and shipped["prices"]["source"]
    priced = [g["price_per_hour"] for g in shipped["gpus"] if g["price_per_hour"] is not None]
    assert priced == sorted(priced)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"H100": 2}', '"prices" object'),
        ('{"prices": {"H100": -1}}', "positive number"),
        ('{"prices": {"Voodoo 2": 1}}', "not a GPU of the catalog"),
    ],
)
def test_a_bad_price_file_is_one_line(saved: Path, tmp_path: Path, content: str, message: str) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    line = one_error_line(run("plan", str(saved), "--list-gpus", "--prices", str(prices)))
    assert message in line


def test_cheapest_needs_the_catalog(saved: Path) -> None:
    assert "--list-gpus" in one_error_line(run("plan", str(saved), "--gpu", "A10", "--goal", "cheapest"))


@pytest.mark.parametrize("strategy", ["zero1", "zero2", "zero3", "fsdp"])
def test_sharded_optimizers_step_over_their_shard(saved: Path, strategy: str) -> None:
    """Under ZeRO/FSDP each GPU updates only its shard: the optimizer step's temporaries are divided by
    the GPU count like the state (DDP keeps them whole)."""
    from memadvise.analyzer import Scenario
    from memadvise.analyzer.estimate import estimate_blocks
    from memadvise.model.profile import Category, Phase
    from memadvise.model.scenario import parse_strategy

    profile = load_profile(saved)
    assert profile.program is not None
    span = next((a, b) for p, _, a, b in profile.program.phases if p == Phase.OPTIMIZER.value)

    def step_temporaries(gpus: int, name: str) -> float:
        _, blocks = estimate_blocks(profile, Scenario(gpus=gpus, strategy=parse_strategy(name)))
        # Traced blocks sit on whole event positions; ZeRO-3's all-gather for the next forward pass is
        # placed half an event before it, at the optimizer phase's end, and is not the step's.
        traced = blocks.alloc == np.floor(blocks.alloc)
        in_step = (blocks.alloc >= span[0]) & (blocks.alloc < span[1]) & traced
        mask = blocks.is_category(Category.TEMPORARIES) & in_step
        return float(blocks.size[mask].sum())

    whole = step_temporaries(8, "ddp")
    assert whole > 0
    assert step_temporaries(8, strategy) == pytest.approx(whole / 8)


def test_what_would_fit_prints_commands_that_give_its_figures(saved: Path) -> None:
    alone = as_json("estimate", str(saved), "--batch-size", "1")["peak_bytes"]
    budget = int(alone * 0.7)
    plan = as_json("plan", str(saved), "--gpu", f"{budget}B", "--reserve", "0", "--precision", "fp32")
    assert plan["recommendation"] is None
    sharded = [line for line in plan["suggestions"] if "ZeRO-3" in line]
    assert sharded, plan["suggestions"]
    command = sharded[0][sharded[0].index("(") + 1 : sharded[0].rindex(")")]
    words = shlex.split(command)
    assert words[:2] == ["memadvise", "estimate"] and "--strategy" in words
    assert as_json(*words[1:])["peak_bytes"] <= budget

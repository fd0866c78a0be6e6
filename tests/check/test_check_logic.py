"""Memory checks without running a model: tolerance, comparison, baselines, config and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from memadvise.check import (
    Baseline,
    BaselineEntry,
    CheckResult,
    CheckRun,
    CheckTarget,
    Status,
    Tolerance,
    compare,
    find_config,
    layer_changes,
    load_baseline,
    load_config,
    plan_checks,
)
from memadvise.errors import BaselineError, CheckConfigError, UsageError
from memadvise.model.profile import LayerStats, Profile
from memadvise.reporters.check_report import check_dict, escape_property, github_annotations, render_check

MiB = 2**20


def make_profile(peak: int = 100 * MiB, body: int = 10 * MiB, **figures: int) -> Profile:
    """A hand-built profile: two Linear layers, ``body`` holding ``body`` bytes of parameters."""
    layers = (
        LayerStats("", "Net"),
        LayerStats("body", "Linear", param_bytes=body, grad_bytes=body, optimizer_state_bytes=2 * body),
        LayerStats("head", "Linear", param_bytes=MiB, grad_bytes=MiB, optimizer_state_bytes=2 * MiB),
        LayerStats("act", "ReLU", activation_bytes=5 * MiB),
    )
    values: dict[str, Any] = {
        "param_bytes": body + MiB,
        "grad_bytes": body + MiB,
        "optimizer_state_bytes": 2 * (body + MiB),
        "activation_bytes": 5 * MiB,
        **figures,
    }
    return Profile(
        model="net",
        batch_size=4,
        mode="train",
        device="cpu",
        optimizer="adamw",
        peak_bytes=peak,
        peak_phase="backward",
        peak_step=1,
        peak_op="op",
        peak_module="body",
        peak_breakdown={},
        buffer_bytes=0,
        input_bytes=0,
        steps=2,
        layers=layers,
        torch_version="2.14.1",
        **values,
    )


def make_target(tmp_path: Path, tolerance: str = "2%") -> CheckTarget:
    tol = Tolerance.parse(tolerance)
    return CheckTarget(tmp_path / "net.py", "build_model", 4, "train", "adamw", None, tol)


# -- tolerance --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "percent", "size"),
    [
        ("2%", 2.0, None),
        ("50MiB", None, 50 * MiB),
        ("2%,50MiB", 2.0, 50 * MiB),
        ("50MB + 0.5%", 0.5, 50 * 10**6),
        ("0%", 0.0, None),
        ("1024", None, 1024),
    ],
)
def test_tolerance_parse(text: str, percent: float | None, size: int | None) -> None:
    assert Tolerance.parse(text) == Tolerance(percent, size)


@pytest.mark.parametrize("text", ["", "%", "abc", "-1%", "2%,3%", "1MiB,2MiB", "nan%", "2 percent"])
def test_tolerance_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="cannot read tolerance"):
        Tolerance.parse(text)


def test_tolerance_allows_the_larger_of_percent_and_size() -> None:
    both = Tolerance.parse("2%,1MiB")
    assert both.allowed(100 * MiB) == 2 * MiB
    assert both.allowed(10 * MiB) == MiB
    assert str(both) == "2% or 1.0 MiB"


# -- comparison -------------------------------------------------------------------------------------
def test_compare_flags_only_changes_over_tolerance(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    entry = BaselineEntry.from_profile(target, make_profile(), tmp_path)
    grown = make_profile(peak=102 * MiB + 1, activation_bytes=5 * MiB + 1)
    changes = {c.figure: c for c in compare(entry, grown, Tolerance.parse("2%"))}
    assert changes["peak"].status is Status.REGRESSED
    assert changes["peak"].change == 2 * MiB + 1
    assert changes["peak"].percent == pytest.approx(2.0, rel=1e-5)
    assert changes["activations"].status is Status.WITHIN
    assert changes["parameters"].status is Status.UNCHANGED
    at_limit = compare(entry, make_profile(peak=102 * MiB), Tolerance.parse("2%"))[0]
    assert at_limit.status is Status.WITHIN  # exactly at the tolerance is not a regression
    shrunk = compare(entry, make_profile(peak=90 * MiB), Tolerance.parse("2%"))[0]
    assert shrunk.status is Status.IMPROVED and shrunk.change == -10 * MiB


def test_layer_changes_name_the_layer_that_moved_most(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    old = BaselineEntry.from_profile(target, make_profile(), tmp_path)
    new = BaselineEntry.from_profile(target, make_profile(body=11 * MiB), tmp_path)
    changes = layer_changes(old, new)
    assert [(c.name, c.type, c.change) for c in changes] == [("body", "Linear", 4 * MiB)]
    assert layer_changes(old, new, "param_bytes")[0].change == MiB
    assert layer_changes(old, new, "activation_bytes") == []
    assert "" not in old.layers  # layers holding nothing are not stored


def test_check_result_status(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    entry = BaselineEntry.from_profile(target, make_profile(), tmp_path)

    def result(prof: Profile) -> CheckResult:
        new = BaselineEntry.from_profile(target, prof, tmp_path)
        return CheckResult(target, new, entry, tuple(compare(entry, prof, target.tolerance)))

    assert result(make_profile()).status is Status.UNCHANGED
    assert result(make_profile(peak=101 * MiB)).status is Status.WITHIN
    assert result(make_profile(peak=90 * MiB)).status is Status.IMPROVED
    assert result(make_profile(peak=90 * MiB, body=12 * MiB)).status is Status.REGRESSED
    assert CheckResult(target, entry, None).status is Status.NEW


# -- baseline file ----------------------------------------------------------------------------------
def test_baseline_json_is_sorted_and_round_trips(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    entry = BaselineEntry.from_profile(target, make_profile(), tmp_path)
    baseline = Baseline().with_entries([entry])
    text = baseline.to_json()
    assert text.endswith("}\n") and json.loads(text)["format"] == "memadvise-baseline"
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    baseline.save(tmp_path / "b.json")
    again = load_baseline(tmp_path / "b.json")
    assert again == baseline and again.to_json() == text
    assert entry.key == "net.py:build_model|batch=4|mode=train|optimizer=adamw|device=auto"
    assert entry.torch_version == "2.14.1" and entry.measured_device == "cpu"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found; run `memadvise check --update` to create it"),
        ("{", "is not valid JSON (line 1"),
        ("[1, 2]", "is not a memadvise baseline file"),
        ('{"format": "memadvise-baseline", "schema_version": 99}', "has schema_version 99"),
        (
            '{"format": "memadvise-baseline", "schema_version": 1, "entries": {"k": {"model": "m.py"}}}',
            "entry 'k' is malformed",
        ),
    ],
)
def test_load_baseline_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        load_baseline(path)
    assert "\n" not in str(info.value)


# -- config and planning ----------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_find_config_walks_up_to_the_repository_root(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.memadvise.check]\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) is None  # stops at the folder holding .git
    write(repo / "pyproject.toml", "[project]\nname = 'x'\n")
    assert find_config(deep) is None  # a pyproject.toml without [tool.memadvise] is passed over
    write(repo / "a" / "pyproject.toml", "[tool.memadvise]\n")
    assert find_config(deep) == repo / "a" / "pyproject.toml"
    write(deep / "memadvise.toml", "")
    assert find_config(deep) == deep / "memadvise.toml"


def test_plan_merges_command_line_over_config(tmp_path: Path) -> None:
    write(tmp_path / "m.py", "")
    config = load_config(
        write(
            tmp_path / "pyproject.toml",
            """
[tool.memadvise.check]
baseline = "ci/base.json"
tolerance = "2%"
batch_sizes = [2, 4]
optimizer = "sgd"
device = "auto"
models = ["m.py", { path = "m.py:build_big", modes = ["train", "inference"], tolerance = "5%,1MiB" }]
""",
        )
    )
    assert config.baseline == tmp_path / "ci" / "base.json"
    plan = plan_checks([], config=config)
    assert plan.baseline == tmp_path / "ci" / "base.json"
    labels = [(t.factory, t.batch_size, t.mode, t.optimizer, str(t.tolerance)) for t in plan.targets]
    assert labels == [
        ("build_model", 2, "train", "sgd", "2%"),
        ("build_model", 4, "train", "sgd", "2%"),
        ("build_big", 2, "train", "sgd", "5% or 1.0 MiB"),
        ("build_big", 4, "train", "sgd", "5% or 1.0 MiB"),
        ("build_big", 2, "inference", "none", "5% or 1.0 MiB"),
        ("build_big", 4, "inference", "none", "5% or 1.0 MiB"),
    ]
    cli = plan_checks([], config=config, batch_size=8, tolerance="1%", baseline=tmp_path / "other.json")
    assert {t.batch_size for t in cli.targets} == {8} and {str(t.tolerance) for t in cli.targets} == {"1%"}
    assert cli.baseline == tmp_path / "other.json"
    given = plan_checks([str(tmp_path / "m.py"), str(tmp_path / "m.py")], config=config, mode="inference")
    assert [(t.batch_size, t.mode, t.optimizer) for t in given.targets] == [
        (2, "inference", "none"),
        (4, "inference", "none"),
    ]


def test_plan_defaults_without_config(tmp_path: Path) -> None:
    write(tmp_path / "m.py", "")
    (target,) = plan_checks([str(tmp_path / "m.py")], baseline=tmp_path / "b.json").targets
    assert (target.batch_size, target.mode, target.optimizer, target.device, str(target.tolerance)) == (
        1,
        "train",
        "adamw",
        None,
        "2%",
    )
    with pytest.raises(UsageError, match="no baseline file"):
        plan_checks([str(tmp_path / "m.py")])
    with pytest.raises(UsageError, match="nothing to check"):
        plan_checks([], baseline=tmp_path / "b.json")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[tool.memadvise.check]\nbatch_sizes = [0]\n", "batch sizes must be integers of at least 1"),
        ("[tool.memadvise.check]\nbatch_sizes = [99999999999]\n", "at most 16,777,216"),
        ("[tool.memadvise.check]\nbatch_size = 2\nbatch_sizes = [2]\n", "not both"),
        ("[tool.memadvise.check]\nmodes = ['training']\n", "unknown mode 'training'"),
        ("[tool.memadvise.check]\noptimizer = 'lion'\n", "unknown optimizer 'lion'"),
        ("[tool.memadvise.check]\ndevice = 'tpu'\n", "unknown device 'tpu'"),
        ("[tool.memadvise.check]\ntolerance = 0.02\n", "tolerance must be a string"),
        ("[tool.memadvise.check]\ntolerance = '2 pc'\n", "cannot read tolerance"),
        ("[tool.memadvise.check]\nmodels = [{ batch_size = 2 }]\n", r"models\[0\]: give a path"),
        ("[tool.memadvise.check]\nmodels = [{ path = 'm.py', batchsize = 2 }]\n", "unknown key 'batchsize'"),
        ("[tool.memadvise]\ncheck = 3\n", "must be a table"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path / "pyproject.toml", body)
    with pytest.raises(CheckConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path} [tool.memadvise.check]")


# -- reports ----------------------------------------------------------------------------------------
def make_run(tmp_path: Path, *, updated: bool = False) -> CheckRun:
    target = make_target(tmp_path)
    old = BaselineEntry.from_profile(target, make_profile(), tmp_path)
    prof = make_profile(peak=110 * MiB, body=11 * MiB)
    new = BaselineEntry.from_profile(target, prof, tmp_path)
    result = CheckResult(target, new, old, tuple(compare(old, prof, target.tolerance)), ("torch differs",))
    return CheckRun(tmp_path / "base.json", (result,), updated=updated)


def test_rendered_report_on_a_fixed_width_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render_check(make_run(tmp_path)))
    text = console.export_text()
    assert "REGRESSED  net.py [batch 4 · train · adamw · auto]  (tolerance 2%)" in text
    assert "peak             100.0 MiB  →  110.0 MiB  +10,485,760 B  +10.0%  regressed" in text
    assert "layers that changed most: body (Linear) +4.0 MiB" in text
    assert "FAILED: memory regression in 1 of 1 check." in text


def test_json_report_and_annotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = check_dict(make_run(tmp_path))
    assert data["status"] == "regressed" and data["regressions"] == 4  # all but activations
    peak = data["results"][0]["changes"][0]
    assert (peak["old"], peak["new"], peak["percent"]) == (100 * MiB, 110 * MiB, 10.0)
    assert peak["layers"][0]["name"] == "body"
    lines = github_annotations(make_run(tmp_path), workspace=tmp_path)
    assert lines[0] == "::warning file=net.py,title=memadvise%3A baseline measured elsewhere::torch differs"
    assert lines[1].startswith("::error file=net.py,title=memory regression%3A peak%2C parameters")
    assert "(+10,485,760 B, +10.0%25)" in lines[1] and "\n" not in lines[1]
    accepted = github_annotations(make_run(tmp_path, updated=True))
    assert accepted[1].startswith("::warning ")  # --update accepts: no error annotation
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


README_EXAMPLE = """
[tool.memadvise.check]
baseline = "ci/memory-baseline.json"   # relative to this file; commit it
tolerance = "2%"                       # or "50MiB", or "2%,50MiB" (whichever is larger)
batch_sizes = [8]                      # defaults for every model below
modes = ["train"]
optimizer = "adamw"
device = "cpu"                         # cpu, cuda or auto

[[tool.memadvise.check.models]]
path = "models/classifier.py"

[[tool.memadvise.check.models]]
path = "models/lm.py:build_small"      # file.py:factory
batch_sizes = [1, 4]                   # this model's own settings
modes = ["train", "inference"]
tolerance = "5%"
"""


def test_the_readme_config_example(tmp_path: Path) -> None:
    write(tmp_path / "models" / "classifier.py", "")
    write(tmp_path / "models" / "lm.py", "")
    plan = plan_checks([], config=load_config(write(tmp_path / "pyproject.toml", README_EXAMPLE)))
    assert plan.baseline == tmp_path / "ci" / "memory-baseline.json"
    assert [(t.path.name, t.batch_size, t.mode, t.device, str(t.tolerance)) for t in plan.targets] == [
        ("classifier.py", 8, "train", "cpu", "2%"),
        ("lm.py", 1, "train", "cpu", "5%"),
        ("lm.py", 4, "train", "cpu", "5%"),
        ("lm.py", 1, "inference", "cpu", "5%"),
        ("lm.py", 4, "inference", "cpu", "5%"),
    ]

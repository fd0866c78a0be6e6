"""``memadvise check`` end to end on a tiny model: exit codes, messages, baselines, config, CI output."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from pytest import MonkeyPatch

from memadvise.check import load_baseline

TINY = "models/tiny_mlp.py"
BASE = "memory-baseline.json"
Check = Callable[..., Result]


def record(memcheck: Check, *args: str) -> Result:
    result = memcheck(TINY, "--baseline", BASE, "-b", "4", "--update", *args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memadvise: error: ")
    return lines[0]


def test_unchanged_model_passes(workdir: Path, memcheck: Check) -> None:
    record(memcheck)
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 0, result.output
    assert "UNCHANGED" in result.stdout and "PASSED" in result.stdout
    assert result.stderr == ""


def test_widening_one_layer_by_10_percent_fails_and_names_it(
    workdir: Path, memcheck: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")  # body: 64 → 70 features
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "REGRESSED" in out and "models/tiny_mlp.py [batch 4 · train · adamw · auto]" in out
    for figure in ("peak", "parameters", "activations", "gradients", "optimizer state"):
        assert figure in out
    assert "→" in out and "+1,752 B" in out and "+6.4%" in out  # parameters: bytes and percent
    assert "layers that changed most: body (Linear)" in out  # the widened layer first
    assert "FAILED" in out and "--update" in out


def test_shrink_passes_and_is_reported(workdir: Path, memcheck: Check, monkeypatch: MonkeyPatch) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "48")
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 0, result.output
    assert "IMPROVED" in result.stdout and "improved" in result.stdout
    assert "layers that changed most: body (Linear) -" in result.stdout
    assert "record the lower figures" in result.stdout


def test_growth_within_tolerance_passes(workdir: Path, memcheck: Check, monkeypatch: MonkeyPatch) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")
    result = memcheck(TINY, "--baseline", BASE, "-b", "4", "--tolerance", "15%")
    assert result.exit_code == 0, result.output
    assert "WITHIN TOLERANCE" in result.stdout
    sized = memcheck(TINY, "--baseline", BASE, "-b", "4", "--tolerance", "1%,1KiB")
    assert sized.exit_code == 1  # the larger of 1% and 1 KiB is still less than the growth


def test_missing_baseline_exits_2_with_one_line(workdir: Path, memcheck: Check) -> None:
    result = memcheck(TINY, "--baseline", BASE)
    assert result.exit_code == 2
    line = one_line(result)
    assert f"'{BASE}' not found" in line and "memadvise check --update" in line
    assert result.stdout == ""


def test_corrupt_baseline_exits_2_update_leaves_it_then_recreates_it_once_deleted(
    workdir: Path, memcheck: Check
) -> None:
    (workdir / BASE).write_text('{"entries": {', encoding="utf-8")
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 2
    assert "not valid JSON" in one_line(result) and "delete it" in one_line(result)
    refused = memcheck(TINY, "--baseline", BASE, "-b", "4", "--update")
    assert refused.exit_code == 2 and "not a memadvise baseline" in one_line(refused)
    assert (workdir / BASE).read_text(encoding="utf-8") == '{"entries": {'
    (workdir / BASE).unlink()
    record(memcheck)
    assert memcheck(TINY, "--baseline", BASE, "-b", "4").exit_code == 0


def test_update_creates_the_baseline_then_check_passes(workdir: Path, memcheck: Check) -> None:
    result = record(memcheck)
    assert "NEW" in result.stdout and "updated" in result.stdout
    baseline = load_baseline(workdir / BASE)
    (entry,) = baseline.entries.values()
    assert entry.key == "models/tiny_mlp.py:build_model|batch=4|mode=train|optimizer=adamw|device=auto"
    assert set(entry.layers) == {"stem", "act", "body", "act2", "head"}
    assert entry.figures["peak_bytes"] > entry.figures["param_bytes"] > 0
    assert memcheck(TINY, "--baseline", BASE, "-b", "4").exit_code == 0


def test_update_accepts_a_regression(workdir: Path, memcheck: Check, monkeypatch: pytest.MonkeyPatch) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")
    accepted = record(memcheck)
    assert "REGRESSED" in accepted.stdout and "updated" in accepted.stdout
    assert memcheck(TINY, "--baseline", BASE, "-b", "4").exit_code == 0


def test_two_runs_give_byte_identical_baselines(workdir: Path, memcheck: Check) -> None:
    args = (TINY, f"{TINY}:build_small", "-b", "2", "--update")
    assert memcheck(*args, "--baseline", "first.json").exit_code == 0
    # the second run in a fresh process, with another hash seed
    command = [sys.executable, "-m", "memadvise", "check", *args, "--baseline", "second.json"]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    first = (workdir / "first.json").read_bytes()
    assert first == (workdir / "second.json").read_bytes()
    assert memcheck(*args, "--baseline", "first.json").exit_code == 0  # rewriting changes nothing
    assert (workdir / "first.json").read_bytes() == first
    text = first.decode()
    assert not re.search(r"\d{4}-\d{2}-\d{2}T", text), "no timestamps"
    host = socket.gethostname()
    assert len(host) < 4 or host not in text, "no machine names"
    data = json.loads(text)
    assert list(data) == sorted(data) and list(data["entries"]) == sorted(data["entries"])


def test_entry_missing_from_existing_baseline_exits_2(workdir: Path, memcheck: Check) -> None:
    record(memcheck)
    result = memcheck(TINY, "--baseline", BASE, "-b", "8")
    assert result.exit_code == 2
    line = one_line(result)
    assert "no entry for models/tiny_mlp.py [batch 8" in line and "--update" in line
    assert memcheck(TINY, "--baseline", BASE, "-b", "8", "--update").exit_code == 0
    assert len(load_baseline(workdir / BASE).entries) == 2  # the batch-4 entry is kept


@pytest.mark.parametrize("tolerance", ["two percent", "-2%", "2%,3%", "5XB"])
def test_bad_tolerance_exits_2(workdir: Path, memcheck: Check, tolerance: str) -> None:
    result = memcheck(TINY, "--baseline", BASE, "--tolerance", tolerance)
    assert result.exit_code == 2
    assert "cannot read tolerance" in one_line(result)


def test_no_models_and_no_baseline_exit_2(workdir: Path, memcheck: Check) -> None:
    assert "nothing to check" in one_line(memcheck("--baseline", BASE))
    assert "no baseline file" in one_line(memcheck(TINY))
    assert "not found" in one_line(memcheck("models/nope.py", "--baseline", BASE))


def test_json_format(workdir: Path, memcheck: Check, monkeypatch: pytest.MonkeyPatch) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")
    result = memcheck(TINY, "--baseline", BASE, "-b", "4", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["status"] == "regressed" and data["regressions"] == 5
    (res,) = data["results"]
    peak = res["changes"][0]
    assert peak["figure"] == "peak" and peak["change"] == peak["new"] - peak["old"] > peak["allowed"]
    assert res["layers"][0]["name"] == "body"
    assert "memory regression in models/tiny_mlp.py" in res["message"]


def test_github_annotations_under_actions(workdir: Path, memcheck: Check, monkeypatch: MonkeyPatch) -> None:
    record(memcheck)
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workdir))
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1
    title = "title=memory regression%3A peak%2C parameters%2C activations"
    assert errors[0].startswith(f"::error file=models/tiny_mlp.py,{title}")
    assert "::memory regression in models/tiny_mlp.py" in errors[0] and "body (Linear)" in errors[0]
    quiet = memcheck(TINY, "--baseline", BASE, "-b", "4", "--no-annotations")
    assert "::error" not in quiet.stderr


def test_metadata_difference_is_warned_about(workdir: Path, memcheck: Check) -> None:
    record(memcheck)
    path = workdir / BASE
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["metadata"] = {"torch_version": "1.0.0", "device": "cuda:0"}
    path.write_text(json.dumps(data))
    result = memcheck(TINY, "--baseline", BASE, "-b", "4")
    assert result.exit_code == 0
    assert "memadvise: warning:" in result.stderr
    assert "torch 1.0.0" in result.stderr and "device cuda:0 (now cpu)" in result.stderr


PYPROJECT = """
[project]
name = "someone-elses-model"

[tool.memadvise.check]
baseline = "ci/memory-baseline.json"
tolerance = "2%"
batch_sizes = [2, 4]
models = [
  "models/tiny_mlp.py",
  { path = "models/tiny_mlp.py:build_small", batch_size = 1, modes = ["train", "inference"] },
]
"""


def test_plain_check_runs_what_pyproject_lists(
    workdir: Path, memcheck: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (workdir / "sub").mkdir()
    monkeypatch.chdir(workdir / "sub")  # found from a subfolder; paths are relative to pyproject.toml
    created = memcheck("--update")
    assert created.exit_code == 0, created.output + created.stderr
    entries = load_baseline(workdir / "ci" / "memory-baseline.json").entries
    assert sorted(entries) == [
        "../models/tiny_mlp.py:build_model|batch=2|mode=train|optimizer=adamw|device=auto",
        "../models/tiny_mlp.py:build_model|batch=4|mode=train|optimizer=adamw|device=auto",
        "../models/tiny_mlp.py:build_small|batch=1|mode=inference|optimizer=none|device=auto",
        "../models/tiny_mlp.py:build_small|batch=1|mode=train|optimizer=adamw|device=auto",
    ]
    assert memcheck().exit_code == 0
    monkeypatch.setenv("MEMADVISE_TINY_WIDTH", "70")
    failed = memcheck()
    assert failed.exit_code == 1
    assert failed.stdout.count("REGRESSED") == 4


def test_memadvise_toml_and_bad_config(workdir: Path, memcheck: Check) -> None:
    (workdir / "memadvise.toml").write_text(
        '[check]\nbaseline = "base.json"\nmodels = ["models/tiny_mlp.py"]\nmode = "inference"\n'
    )
    assert memcheck("--update").exit_code == 0
    (key,) = load_baseline(workdir / "base.json").entries
    assert "mode=inference" in key
    (workdir / "memadvise.toml").write_text('[check]\nbaseline = "base.json"\nbatchsize = 3\n')
    assert "unknown key 'batchsize'" in one_line(memcheck())
    (workdir / "memadvise.toml").write_text("[check\n", encoding="utf-8")
    assert "not valid TOML" in one_line(memcheck())


def test_help_has_examples(memcheck: Check) -> None:
    result = memcheck("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "--update" in result.stdout and "--tolerance" in result.stdout
    assert "[tool.memadvise.check]" in result.stdout  # not swallowed as rich markup

"""Every file reader, fed valid files broken field by field: a clean one-line error, or a result that works.

Property: reading a mutated profile, baseline or check config either raises a ``MemadviseError`` whose
message is one line naming the file, or gives a result that the rest of memadvise uses without
failing (a profile renders in every format and is estimated and planned; a baseline entry is
compared). Anything else — ``TypeError``, ``RecursionError``, ``OverflowError``, a traceback — fails.
Runs are derandomized (a fixed seed) and small, so CI stays stable and fast.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from file_mutations import (
    mutated,
    to_json_text,
    to_toml_text,
    valid_baseline,
    valid_config,
    valid_profile,
)
from hand_built import hand_built_profile
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from memadvise.check import Tolerance, compare, layer_changes, load_baseline, load_config
from memadvise.errors import MemadviseError
from memadvise.model.profile import load_profile

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WORK = Path(tempfile.mkdtemp(prefix="memadvise-fuzz-"))


def one_line_error(exc: MemadviseError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and message.strip(), message
    assert path.name in message, message


def use_profile(path: Path) -> None:
    """What the commands do with a profile they read: every report, an estimate, a plan."""
    from memadvise.analyzer import Scenario, estimate
    from memadvise.planner import Goal, Pins, budget_for, search
    from memadvise.reporters import reporter_for

    profile = load_profile(path)
    for name, options in (("table", {"tree": True}), ("json", {}), ("csv", {}), ("html", {})):
        reporter_for(name, **options).render(profile)
    reporter_for("csv", table="timeline").render(profile)
    result = estimate(profile, Scenario(batch_size=4))
    reporter_for("table").render(result)
    reporter_for("json").render(result)
    if profile.mode == "train":
        search(profile, budget_for("24GB"), Pins(), Goal.MAX_BATCH)


@FUZZ
@given(mutated(valid_profile()))
def test_mutated_profiles(data: dict[str, Any]) -> None:
    path = WORK / "profile.json"
    path.write_text(to_json_text(data), encoding="utf-8")
    try:
        use_profile(path)
    except MemadviseError as exc:
        one_line_error(exc, path)


@FUZZ
@given(mutated(valid_baseline()))
def test_mutated_baselines(data: dict[str, Any]) -> None:
    path = WORK / "memory-baseline.json"
    path.write_text(to_json_text(data), encoding="utf-8")
    try:
        baseline = load_baseline(path)
    except MemadviseError as exc:
        one_line_error(exc, path)
        return
    profile = hand_built_profile()
    for entry in baseline.entries.values():
        compare(entry, profile, Tolerance.parse("2%"))
        layer_changes(entry, entry)


@FUZZ
@given(mutated(valid_config()))
def test_mutated_configs(data: dict[str, Any]) -> None:
    path = WORK / "pyproject.toml"
    path.write_text(to_toml_text(data), encoding="utf-8")
    try:
        config = load_config(path)
    except MemadviseError as exc:
        one_line_error(exc, path)
        return
    for _model, settings_ in config.models:
        over = settings_.over(config.settings)
        assert over.batch_sizes is None or all(1 <= b <= 2**31 for b in over.batch_sizes)


def test_the_valid_files_read() -> None:
    """The starting points are valid: the fuzz tests break files that do read."""
    path = WORK / "valid.json"
    path.write_text(to_json_text(valid_profile()), encoding="utf-8")
    use_profile(path)
    path.write_text(to_json_text(valid_baseline()), encoding="utf-8")
    assert load_baseline(path).entries
    path = WORK / "pyproject.toml"
    path.write_text(to_toml_text(valid_config()), encoding="utf-8")
    assert len(load_config(path).models) == 2


# -- through the command line -------------------------------------------------------------------------
def _broken_profiles() -> dict[str, dict[str, Any]]:
    valid = valid_profile()
    cases: dict[str, dict[str, Any]] = {
        "peak as a string": {**valid, "peak_bytes": "908"},
        "negative program size": {**valid, "program": {**valid["program"], "size": [-400, 8, 40, 60, 400]}},
        "mode destroy": {**valid, "mode": "destroy"},
        "timeline of other lengths": {**valid, "timeline": {**valid["timeline"], "step": [0]}},
    }
    return cases


@pytest.mark.parametrize("command", ["report", "estimate", "plan"])
@pytest.mark.parametrize("case", list(_broken_profiles()))
def test_commands_give_one_line_for_a_broken_profile(command: str, case: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(to_json_text(_broken_profiles()[case]), encoding="utf-8")
    args = [command, str(path)] + (["--gpu", "24GB"] if command == "plan" else [])
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), result.stderr
    assert "broken.json" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("what", "entries"),
    [("entries a list", []), ("entries a string", "x"), ("a figure NaN", "nan"), ("deep nesting", "deep")],
)
def test_check_gives_one_line_for_a_broken_baseline(what: str, entries: Any, tmp_path: Path) -> None:
    data = valid_baseline()
    if entries == "nan":
        key = next(iter(data["entries"]))
        data["entries"][key]["figures"]["peak_bytes"] = float("nan")
    elif entries == "deep":
        data["entries"] = "__deep_nesting__"
    else:
        data["entries"] = entries
    baseline = tmp_path / "memory-baseline.json"
    baseline.write_text(to_json_text(data), encoding="utf-8")
    model = Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py"
    result = CliRunner().invoke(_app(), ["check", str(model), "--baseline", str(baseline)])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "memory-baseline.json" in lines[0], result.stderr


def _app() -> Any:
    from memadvise.cli import app

    return app

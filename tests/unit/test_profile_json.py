"""A ``Profile`` survives a JSON round trip; unreadable profile files give one-line ProfileFileErrors."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import memadvise
from memadvise import LayerStats, Profile, ProfileFileError, load_profile
from memadvise.api import profile_model
from memadvise.model.profile import SCHEMA_VERSION


@pytest.fixture(scope="module")
def traced() -> Profile:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.BatchNorm1d(10), nn.Linear(10, 2))
    return profile_model(model, torch.randn(4, 6), name="round-trip", batch_size=4)


def test_round_trip_through_a_file_is_equal(traced: Profile, tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    traced.save(path)
    loaded = load_profile(path)
    assert loaded == traced
    # equality above covers nested tuples and dicts; spot-check the types came back as declared
    assert isinstance(loaded.layers, tuple) and all(isinstance(layer, LayerStats) for layer in loaded.layers)
    assert isinstance(loaded.timeline.index, tuple)
    assert all(isinstance(col, tuple) for col in loaded.timeline.bytes.values())
    assert loaded.timeline.totals() == traced.timeline.totals()


def test_round_trip_accepts_a_path_given_as_str(traced: Profile, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    traced.save(str(path))
    assert load_profile(str(path)) == traced


def test_saved_file_is_one_json_object_with_integer_bytes(traced: Profile, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    traced.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert data["schema_version"] == SCHEMA_VERSION
    assert {f.name for f in fields(Profile)} == set(data)
    for key, value in data.items():
        if key.endswith("_bytes"):
            assert type(value) is int, key
    assert all(type(v) is int for v in data["peak_breakdown"].values())


def test_dict_round_trip_is_equal(traced: Profile) -> None:
    assert Profile.from_dict(json.loads(traced.to_json())) == traced
    assert Profile.from_dict(json.loads(traced.to_json(indent=None))) == traced


def test_public_names_resolve_to_the_library_functions() -> None:
    from memadvise.api import profile_file
    from memadvise.reporters.tables import to_dataframe

    assert memadvise.profile_model is profile_model
    assert memadvise.profile_file is profile_file
    assert memadvise.to_dataframe is to_dataframe
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(memadvise, "no_such_name")  # noqa: B009


def test_unknown_keys_are_ignored(traced: Profile) -> None:
    data = traced.to_dict()
    data["added_by_a_newer_memadvise"] = {"x": 1}
    assert Profile.from_dict(data) == traced


def test_changed_value_breaks_equality(traced: Profile) -> None:
    data = traced.to_dict()
    data["layers"][1]["param_bytes"] += 1
    assert Profile.from_dict(data) != traced


# -- errors -------------------------------------------------------------------------------------


def _one_line_error(path: Path | str) -> str:
    with pytest.raises(ProfileFileError) as info:
        load_profile(path)
    message = str(info.value)
    assert message and "\n" not in message
    assert isinstance(info.value, memadvise.MemadviseError)
    return message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    message = _one_line_error(path)
    assert "absent.json" in message and "not found" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = _one_line_error(tmp_path)
    assert str(tmp_path) in message


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1,\n  "model": ', encoding="utf-8")
    message = _one_line_error(path)
    assert "broken.json" in message and "not valid JSON" in message
    assert "line 2" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("", encoding="utf-8")
    assert "empty.json" in _one_line_error(path)


@pytest.mark.parametrize("payload", [[], [1, 2], "a string", 42, None])
def test_json_that_is_not_an_object(tmp_path: Path, payload: Any) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    message = _one_line_error(path)
    assert "list.json" in message and "JSON object" in message


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_schema_version(traced: Profile, tmp_path: Path, version: Any) -> None:
    data = traced.to_dict()
    data["schema_version"] = version
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    message = _one_line_error(path)
    assert "schema_version" in message
    assert repr(version) in message and str(SCHEMA_VERSION) in message


def test_missing_schema_version(traced: Profile, tmp_path: Path) -> None:
    data = traced.to_dict()
    del data["schema_version"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "schema_version None" in _one_line_error(path)


def test_missing_required_field(traced: Profile, tmp_path: Path) -> None:
    data = traced.to_dict()
    del data["peak_bytes"]
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "peak_bytes" in _one_line_error(path)


def test_layer_with_unexpected_field(traced: Profile, tmp_path: Path) -> None:
    data = traced.to_dict()
    data["layers"][0]["colour"] = "blue"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "colour" in _one_line_error(path)


def test_binary_file_is_a_profile_file_error(tmp_path: Path) -> None:
    path = tmp_path / "profile.pt"
    path.write_bytes(b"\x80\x02\xff\xfe binary pickle bytes")
    _one_line_error(path)


def test_timeline_of_the_wrong_shape_is_a_profile_file_error(traced: Profile, tmp_path: Path) -> None:
    data = traced.to_dict()
    data["timeline"] = [1, 2, 3]
    path = tmp_path / "shape.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    _one_line_error(path)

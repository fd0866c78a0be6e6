"""Valid files of every kind memadvise reads, and hypothesis strategies that break them field by field.

A mutation picks a field of a valid file (by its path) and replaces it with a value of another type, a
huge, negative or non-finite number, a string with control characters, deep nesting — or deletes it,
or appends a bad item to a list. The text is written as JSON (or TOML) the way a careless or hostile
writer would: ``NaN``, ``Infinity`` and numbers beyond a float are allowed.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any

from hand_built import check_run, hand_built_profile  # tests/ is on sys.path (tests/conftest.py)
from hypothesis import strategies as st

from memadvise.check import Baseline
from memadvise.model.profile import Health, HealthFlag, HostMemory, LayerHealth, Leak

DEEP = "__deep_nesting__"
HUGE = "__huge_integer__"
DELETE = object()


def valid_profile() -> dict[str, Any]:
    """The hand-built profile with every optional part filled in (health, host memory, leaks), as JSON
    would hold it."""
    profile = replace(
        hand_built_profile(),
        leaks=(Leak(bytes_per_step=64, module="fc", op="aten::mm", source="m.py:3", tensors_per_step=1.0),),
        live_after_step=(908, 972),
        health=Health(
            layers=(LayerHealth(name="fc", max_abs_activation=3.5, grad_norm=0.1, max_abs_grad=0.2),),
            flags=(HealthFlag("overflow", "fc", "float16", 7e4, "max |activation| 7e4 > 65504"),),
            advice=("use bf16",),
        ),
        host_memory=HostMemory(2, 2, True, 8, 32, 40, 72),
        assumptions=("an assumption",),
    )
    return json.loads(profile.to_json())


def valid_baseline() -> dict[str, Any]:
    run = check_run()
    return json.loads(Baseline().with_entries(r.new for r in run.results).to_json())


def valid_config() -> dict[str, Any]:
    return {
        "tool": {
            "memadvise": {
                "check": {
                    "baseline": "memory-baseline.json",
                    "batch_sizes": [1, 2],
                    "modes": ["train", "inference"],
                    "optimizer": "adamw",
                    "device": "cpu",
                    "tolerance": "2%,50MiB",
                    "models": ["m.py", {"path": "m.py:build_large", "batch_size": 2, "tolerance": "5%"}],
                }
            }
        }
    }


def field_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field of ``data`` (the first three items of each list), as key paths."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += field_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for k, value in enumerate(data[:3]):
            found += field_paths(value, (*prefix, k))
    return found


control_text = st.lists(
    st.sampled_from(["a", "=", "[bold]", "\x1b[31m", "\n", "\x00", "\u202e", "é", "-", "@"]), max_size=6
).map("".join)
bad_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 2**60, 2**60 + 1, 2**63, HUGE, DEEP]),
    st.floats(allow_nan=True, allow_infinity=True),
    control_text,
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(control_text, st.integers(-3, 3), max_size=2),
)


@st.composite
def mutated(draw: Any, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` with one to three fields changed, deleted or given an extra bad item."""
    data = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in field_paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "append"]))
        if action == "delete":
            del parent[key]
        elif action == "append" and isinstance(parent[key], list):
            parent[key].append(draw(bad_values))
        else:
            parent[key] = draw(bad_values)
    return data


def to_json_text(data: Any) -> str:
    text = json.dumps(data, allow_nan=True)
    text = text.replace(json.dumps(HUGE), "9" * 400)
    return text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)


def _toml_value(value: Any) -> str | None:
    if value is None:
        return None  # TOML has no null: the key is left out
    if value == DEEP:
        return "[" * 5_000 + "]" * 5_000
    if value == HUGE:
        return "9" * 400
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        items = [_toml_value(v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    pairs = [(json.dumps(str(k)), _toml_value(v)) for k, v in value.items()]
    return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"


def to_toml_text(data: dict[str, Any]) -> str:
    """A TOML document of ``data``: one ``key = value`` line per top-level key, inline tables below."""
    values = ((k, _toml_value(v)) for k, v in data.items())
    lines = [f"{json.dumps(k)} = {v}" for k, v in values if v is not None]
    return "\n".join(lines) + "\n"

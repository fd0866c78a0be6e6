"""What every file memadvise reads must look like: one declarative schema per file kind, one validator.

The file kinds: a saved profile (:data:`PROFILE`), a baseline (:data:`BASELINE`), the check table of
pyproject.toml / memadvise.toml (:data:`CHECK_CONFIG`) and the GPU catalog (:data:`GPU_CATALOG`).
A schema is built from a few node types (:class:`Int`, :class:`Float`, :class:`Str`, :class:`Bool`,
:class:`Opt`, :class:`List`, :class:`Row`, :class:`Dict`, :class:`Obj`); :func:`validate` walks a
parsed file against one and raises :class:`SchemaError` with the path of the first bad field
(``timeline.bytes.activations[3]``) and what was expected. Every size is bounded by
:data:`memadvise.model.units.MAX_BYTES` (1 EiB), every count by :data:`MAX_COUNT`, floats must be
finite, strings are bounded in length. Keys a schema does not name are ignored (newer files stay
readable), except where a table says otherwise.

:func:`read_json` parses JSON text the same way for every JSON file: ``NaN``/``Infinity`` and
nesting too deep for the parser are errors, not values or crashes.

This module imports nothing beyond the standard library and :mod:`memadvise.model`'s enums.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memadvise.model.enums import CATEGORIES, Mode, OptimizerName, Phase
from memadvise.model.units import MAX_BYTES

#: The largest count (batch size, step, event position, FLOPs) a file may hold.
MAX_COUNT = 2**62
#: The longest string a file may hold (names, notes, operator names).
MAX_STR = 100_000


class SchemaError(Exception):
    """A value does not fit its schema: ``path`` says where (``layers[2].name``), ``expected`` what."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path or '(top level)'}: {expected}")
        self.path = path
        self.expected = expected


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    plain = key.replace("_", "").replace("-", "").isalnum() and len(key) <= 60
    shown = key if plain else json.dumps(key[:60])
    return f"{path}.{shown}" if path else shown


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Node:
    """A schema node: :meth:`check` raises :class:`SchemaError` when ``value`` at ``path`` does not fit."""

    def check(self, value: Any, path: str) -> None:  # pragma: no cover - every node overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Node):
    """An integer (not a boolean) from ``lo`` to ``hi``."""

    lo: int = 0
    hi: int = MAX_COUNT

    def describe(self) -> str:
        if self.hi >= MAX_COUNT:
            return f"an integer ≥ {self.lo}"
        if self.hi == MAX_BYTES and self.lo == 0:
            return "an integer from 0 to 1 EiB"
        return f"an integer from {self.lo} to {self.hi}"

    def ok(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def check(self, value: Any, path: str) -> None:
        if not self.ok(value):
            raise SchemaError(path, f"expected {self.describe()}, not {_shown(value)}")


#: A byte count: 0 to 1 EiB.
SIZE = Int(0, MAX_BYTES)
#: A count: 0 and up (bounded by MAX_COUNT).
COUNT = Int(0)


@dataclass(frozen=True)
class Float(Node):
    """A finite number (integers too) from ``lo`` to ``hi``."""

    lo: float = -float(MAX_BYTES)
    hi: float = float(MAX_BYTES)

    def ok(self, value: Any) -> bool:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (isinstance(value, float) or abs(value) <= MAX_BYTES)
            and math.isfinite(value)
            and self.lo <= value <= self.hi
        )

    def check(self, value: Any, path: str) -> None:
        if not self.ok(value):
            bounds = "" if self.hi == sys.float_info.max else f" from {self.lo:g} to {self.hi:g}"
            raise SchemaError(path, f"expected a finite number{bounds}, not {_shown(value)}")


@dataclass(frozen=True)
class Str(Node):
    """A string of at most ``max_len`` characters, one of ``choices`` when given."""

    choices: tuple[str, ...] | None = None
    max_len: int = MAX_STR

    def ok(self, value: Any) -> bool:
        if not isinstance(value, str) or len(value) > self.max_len:
            return False
        return self.choices is None or value in self.choices

    def check(self, value: Any, path: str) -> None:
        if self.ok(value):
            return
        if self.choices is not None and isinstance(value, str):
            shown = ", ".join(repr(c) if c == "" else c for c in self.choices)
            raise SchemaError(path, f"expected one of {shown}, not {_shown(value)}")
        raise SchemaError(
            path, f"expected a string of at most {self.max_len} characters, not {_shown(value)}"
        )


@dataclass(frozen=True)
class Bool(Node):
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise SchemaError(path, f"expected true or false, not {_shown(value)}")


@dataclass(frozen=True)
class Opt(Node):
    """``node`` or null."""

    node: Node

    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.node.check(value, path)


@dataclass(frozen=True)
class List(Node):
    """A list of ``item``; at least ``min_len`` long."""

    item: Node
    min_len: int = 0

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"expected a list, not {_shown(value)}")
        if len(value) < self.min_len:
            raise SchemaError(path, f"expected at least {self.min_len} item(s)")
        item = self.item
        if _column_ok(item, value):  # long columns in C-speed passes; the slow path names the bad item
            return
        fast = getattr(item, "ok", None)
        if fast is not None and all(map(fast, value)):
            return
        for k, v in enumerate(value):
            item.check(v, f"{path}[{k}]")


def _column_ok(item: Node, value: Sequence[Any]) -> bool:
    """Whether every item of a plain column fits a scalar node, checked with built-ins only (a program
    has columns of 100k blocks); ``False`` means "not known", not "bad"."""
    if not value:
        return True
    types = set(map(type, value))
    if isinstance(item, Int):
        return types <= {int} and min(value) >= item.lo and max(value) <= item.hi
    if isinstance(item, Float):
        return (
            types <= {int, float}
            and min(value) >= item.lo
            and max(value) <= item.hi
            and all(map(math.isfinite, value))
        )
    if isinstance(item, Str):
        return (
            types <= {str}
            and max(map(len, value)) <= item.max_len
            and (item.choices is None or set(value) <= set(item.choices))
        )
    return False


@dataclass(frozen=True)
class Row(Node):
    """A fixed-length list whose items have their own schemas, e.g. ``["forward", 0, 0, 3]``."""

    items: tuple[Node, ...]

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, (list, tuple)) or len(value) != len(self.items):
            raise SchemaError(path, f"expected a list of {len(self.items)} items, not {_shown(value)}")
        for k, (node, v) in enumerate(zip(self.items, value, strict=True)):
            node.check(v, f"{path}[{k}]")


@dataclass(frozen=True)
class Dict(Node):
    """An object with string keys (``keys``: the allowed ones, when given) and ``value`` values."""

    value: Node
    keys: tuple[str, ...] | None = None

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, not {_shown(value)}")
        for k, v in value.items():
            if len(k) > MAX_STR:
                raise SchemaError(path, f"expected keys of at most {MAX_STR} characters")
            if self.keys is not None and k not in self.keys:
                raise SchemaError(_join(path, k), f"unknown key; expected one of {', '.join(self.keys)}")
            self.value.check(v, _join(path, k))


Check = Callable[[Mapping[str, Any], str], None]


@dataclass(frozen=True)
class Obj(Node):
    """An object with ``required`` and ``optional`` fields; ``checks`` test fields against each other."""

    required: Mapping[str, Node] = field(default_factory=dict)
    optional: Mapping[str, Node] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, not {_shown(value)}")
        for name, node in self.required.items():
            if name not in value:
                raise SchemaError(_join(path, name), "missing")
            node.check(value[name], _join(path, name))
        for name, node in self.optional.items():
            if name in value:
                node.check(value[name], _join(path, name))
        for fn in self.checks:
            fn(value, path)


def _shown(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value)
        if len(text) <= 40:
            return text
        return (
            f"an integer of {len(text)} digits"
            if isinstance(value, int)
            else f"{_kind(value)} of {len(text)} characters"
        )
    return _kind(value)


def validate(data: Any, schema: Node, root: str = "") -> None:
    """Raise :class:`SchemaError` naming the first field of ``data`` that does not fit ``schema``
    (paths start at ``root``: the place of ``data`` in its file)."""
    schema.check(data, root)


def field_path(*keys: str | int) -> str:
    """The path of a field as :class:`SchemaError` writes it: ``entries."a b".figures``."""
    path = ""
    for key in keys:
        path = _join(path, key)
    return path


def read_json(text: str) -> Any:
    """Parse JSON text as every memadvise reader does: ``NaN``, ``Infinity`` and numbers that overflow a
    float are errors, and so is nesting deeper than the parser can follow.

    Raises ``ValueError`` with a short reason that follows the file's name (``is not valid JSON …``).
    """

    def constant(name: str) -> Any:
        raise ValueError(f"holds {name}, which is not a number memadvise reads")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"holds the number {text[:20]}, too large to read")
        return value

    try:
        return json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ValueError("is nested too deeply to be a file memadvise wrote") from None


# -- cross-field checks ------------------------------------------------------------------------------
def same_length(*names: str, may_be_empty: Sequence[str] = ()) -> Check:
    """The lists ``names`` (those present) have one length; those in ``may_be_empty`` may also be empty."""

    def check(value: Mapping[str, Any], path: str) -> None:
        first = names[0]
        n = len(value.get(first, ()))
        for name in names[1:]:
            if name not in value:
                continue
            m = len(value[name])
            if m != n and not (name in may_be_empty and m == 0):
                raise SchemaError(_join(path, name), f"expected {n} items (as many as {first}), not {m}")

    return check


def indexes(column: str, table: str | int) -> Check:
    """Every item of the integer list ``column`` is a position in the list ``table`` (or below the
    number ``table``); ``column`` items may be rows, whose first item is the index."""

    def check(value: Mapping[str, Any], path: str) -> None:
        size = table if isinstance(table, int) else len(value.get(table, ()))
        items = value.get(column, ())
        if items and not isinstance(items[0], (list, tuple)) and 0 <= min(items) and max(items) < size:
            return
        for k, item in enumerate(items):
            index = item[0] if isinstance(item, (list, tuple)) else item
            if not 0 <= index < size:
                where = f"{_join(path, column)}[{k}]" + ("[0]" if isinstance(item, (list, tuple)) else "")
                what = f"the {size} entries of {table}" if isinstance(table, str) else f"0 to {size - 1}"
                raise SchemaError(where, f"expected an index into {what}, not {index}")

    return check


def _positions(value: Mapping[str, Any], path: str) -> None:
    """Block positions lie within the trace's events; a freed block is freed after its allocation."""
    n = value["n_events"]
    for name in ("alloc", "free"):
        column = value[name]
        if not column or (min(column) >= -1 and max(column) < n):
            continue
        for k, pos in enumerate(column):
            if pos != -1 and not 0 <= pos < n:
                raise SchemaError(
                    f"{_join(path, name)}[{k}]", f"expected -1 or a position below {n}, not {pos}"
                )
    pairs = list(zip(value["alloc"], value["free"], strict=False))
    if not any(f >= 0 and f < a for a, f in pairs):
        pairs = []
    for k, (a, f) in enumerate(pairs):
        if f >= 0 and f < a:
            raise SchemaError(
                f"{_join(path, 'free')}[{k}]", f"expected a position after alloc ({a}), not {f}"
            )
    for name in ("phases", "forward_calls", "backward_nodes"):
        for k, row in enumerate(value.get(name, ())):
            start, end = row[2], row[3]
            if not 0 <= start <= end <= n:
                raise SchemaError(
                    f"{_join(path, name)}[{k}]", f"expected 0 ≤ start ≤ end ≤ {n}, not {start} and {end}"
                )


def _parameter_bytes(value: Mapping[str, Any], path: str) -> None:
    n = value["itemsize"]
    for d in value["shape"]:
        n *= d
        if n > MAX_BYTES:
            raise SchemaError(_join(path, "shape"), "expected a parameter of at most 1 EiB")


def _timeline_columns(value: Mapping[str, Any], path: str) -> None:
    n = len(value.get("index", ()))
    for name, column in (value.get("bytes") or {}).items():
        if len(column) != n:
            where = _join(_join(path, "bytes"), name)
            raise SchemaError(where, f"expected {n} items (as many as index), not {len(column)}")


# -- the schemas -------------------------------------------------------------------------------------
_PHASES = tuple(p.value for p in Phase)
_STRINGS = List(Str())
_SIZES = List(SIZE)
_POSITION = Int(-1)

PARAMETER = Obj(
    required={"module": Str(), "name": Str(), "shape": List(COUNT), "dtype": Str(), "itemsize": Int(1, 64)},
    optional={"trainable": Bool(), "users": _STRINGS},
    checks=(_parameter_bytes,),
)
_RANGE = Row((COUNT, COUNT, COUNT, COUNT))
PROGRAM = Obj(
    required={
        "batch_size": COUNT,
        "n_events": COUNT,
        "modules": _STRINGS,
        "ops": _STRINGS,
        "dtypes": _STRINGS,
        "alloc": List(_POSITION),
        "free": List(_POSITION),
        "size": _SIZES,
        "category": List(Int(0, len(CATEGORIES) - 1)),
        "module": List(COUNT),
        "op": List(COUNT),
    },
    optional={
        "dtype": List(COUNT),
        "phases": List(Row((Str(_PHASES), COUNT, COUNT, COUNT))),
        "forward_calls": List(_RANGE),
        "backward_nodes": List(_RANGE),
        "per_sample": List(Float()),
        "scaling": Str(("traced", "assumed")),
        "scaling_batch_size": COUNT,
        "module_flops": Opt(Dict(COUNT)),
        "forward_flops": COUNT,
        "parameters": List(PARAMETER),
    },
    checks=(
        same_length(
            "size",
            "alloc",
            "free",
            "category",
            "module",
            "op",
            "dtype",
            "per_sample",
            may_be_empty=("dtype", "per_sample"),
        ),
        indexes("module", "modules"),
        indexes("op", "ops"),
        indexes("dtype", "dtypes"),
        indexes("forward_calls", "modules"),
        indexes("backward_nodes", "modules"),
        _positions,
    ),
)

LAYER = Obj(
    required={"name": Str(), "type": Str()},
    optional={
        name: SIZE if name != "calls" else COUNT
        for name in (
            "calls",
            "param_bytes",
            "buffer_bytes",
            "grad_bytes",
            "optimizer_state_bytes",
            "activation_bytes",
            "output_bytes",
            "forward_temp_bytes",
            "backward_temp_bytes",
        )
    },
)
TIMELINE = Obj(
    optional={
        "index": List(COUNT),
        "step": List(COUNT),
        "phase": _STRINGS,
        "op": _STRINGS,
        "module": _STRINGS,
        "bytes": Dict(_SIZES, CATEGORIES),
    },
    checks=(same_length("index", "step", "phase", "op", "module"), _timeline_columns),
)
_RATIO = Float(0.0, 1.0)
#: Any finite number: activations and gradients may be far beyond a byte count before they overflow fp32.
_MEASURED = Float(-sys.float_info.max, sys.float_info.max)
HEALTH = Obj(
    optional={
        "layers": List(
            Obj(
                required={"name": Str()},
                optional={
                    "max_abs_activation": Opt(_MEASURED),
                    "nonfinite": Str(("", "nan", "inf")),
                    "grad_norm": Opt(_MEASURED),
                    "max_abs_grad": Opt(_MEASURED),
                    "grad_below_fp16_normal": _RATIO,
                    "grad_below_fp16_subnormal": _RATIO,
                },
            )
        ),
        "flags": List(
            Obj(
                required={"kind": Str(), "module": Str()},
                optional={"dtype": Str(), "value": _MEASURED, "detail": Str()},
            )
        ),
        "advice": _STRINGS,
    }
)
HOST_MEMORY = Obj(
    required={
        "workers": COUNT,
        "prefetch_factor": COUNT,
        "pin_memory": Bool(),
        "batch_bytes": SIZE,
        "prefetched_bytes": SIZE,
        "pinned_bytes": SIZE,
        "total_bytes": SIZE,
    },
    optional={"source": Str()},
)
PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16")

#: A saved profile (``Profile.to_dict``).
PROFILE = Obj(
    required={
        "schema_version": Int(1, 1),
        "model": Str(),
        "batch_size": Int(1),
        "mode": Str(tuple(m.value for m in Mode)),
        "device": Str(),
        "optimizer": Str(tuple(o.value for o in OptimizerName)),
        "peak_bytes": SIZE,
        "peak_phase": Str(),
        "peak_step": COUNT,
        "peak_op": Str(),
        "peak_module": Str(),
        "peak_breakdown": Dict(SIZE, CATEGORIES),
        "param_bytes": SIZE,
        "buffer_bytes": SIZE,
        "input_bytes": SIZE,
        "grad_bytes": SIZE,
        "optimizer_state_bytes": SIZE,
        "activation_bytes": SIZE,
        "steps": Int(1),
    },
    optional={
        "layers": List(LAYER),
        "peak_holders": List(Obj(required={"category": Str(), "module": Str(), "bytes": SIZE})),
        "timeline": Opt(TIMELINE),
        "untracked_bytes": SIZE,
        "trace": Str(("real", "fake")),
        "precision": Str(PRECISIONS),
        "train_loop": Str(("tutorial", "lean", "train_step", "")),
        "seq_len": Opt(Int(1)),
        "fsdp_ranks": COUNT,
        "assumptions": _STRINGS,
        "live_after_step": _SIZES,
        "leak_bytes_per_step": SIZE,
        "leaks": List(
            Obj(
                required={"bytes_per_step": SIZE, "module": Str(), "op": Str()},
                optional={"source": Str(), "tensors_per_step": Float(0.0)},
            )
        ),
        "health": Opt(HEALTH),
        "host_memory": Opt(HOST_MEMORY),
        "program": Opt(PROGRAM),
        "torch_version": Str(),
        "created": Str(),
    },
)

BASELINE_FIGURES = ("peak_bytes", "param_bytes", "activation_bytes", "grad_bytes", "optimizer_state_bytes")
BASELINE_LAYER_FIELDS = (
    "param_bytes",
    "buffer_bytes",
    "grad_bytes",
    "optimizer_state_bytes",
    "activation_bytes",
)
BASELINE_ENTRY = Obj(
    required={
        "model": Str(),
        "factory": Str(),
        "batch_size": Int(1),
        "mode": Str(tuple(m.value for m in Mode)),
        "optimizer": Str(tuple(o.value for o in OptimizerName)),
        "device": Str(("auto", "cpu", "cuda")),
        "figures": Obj(required={name: SIZE for name in BASELINE_FIGURES}),
    },
    optional={
        "layers": Dict(Obj(optional={"type": Str(), **{f: SIZE for f in BASELINE_LAYER_FIELDS}})),
        "metadata": Obj(optional={"torch_version": Str(), "device": Str()}),
        "inputs": Obj(optional={"image_size": Int(1), "seq_len": Int(1), "task": Str(max_len=40)}),
    },
)
#: A baseline file (``Baseline.to_json``), once its format and schema_version are known to match; the
#: reader checks each entry against :data:`BASELINE_ENTRY` on its own, to name the entry at fault.
BASELINE = Obj(optional={"entries": Opt(Dict(Obj()))})

MAX_BATCH = 2**31
_CHECK_SHARED: dict[str, Node] = {
    "batch_size": Int(1, MAX_BATCH),
    "batch_sizes": List(Int(1, MAX_BATCH), min_len=1),
    "mode": Str(),
    "modes": List(Str(), min_len=1),
    "optimizer": Str(),
    "device": Str(),
    "tolerance": Str(max_len=200),
    "seq_len": Int(1, MAX_BATCH),
    "image_size": Int(1, MAX_BATCH),
    "task": Str(max_len=40),
}


@dataclass(frozen=True)
class _Either(Node):
    """A path string or a table (the config's models)."""

    text: Node
    table: Node

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            self.text.check(value, path)
        elif isinstance(value, dict):
            self.table.check(value, path)
        else:
            raise SchemaError(
                path, f'expected a path string or a table with path = "model.py", not {_shown(value)}'
            )


#: The check table of ``[tool.memadvise.check]`` (pyproject.toml) or ``[check]`` (memadvise.toml); the
#: values' meaning (mode names, tolerances) is read by :mod:`memadvise.check.config`.
CHECK_CONFIG = Obj(
    optional={
        **_CHECK_SHARED,
        "baseline": Str(max_len=4096),
        "models": List(
            _Either(Str(max_len=4096), Obj(required={"path": Str(max_len=4096)}, optional=_CHECK_SHARED))
        ),
    }
)

#: The GPU catalog (``memadvise/planner/data/gpus.json``): a list of cards.
GPU_CATALOG = List(
    Obj(
        required={
            "name": Str(max_len=200),
            "memory_bytes": Int(1, MAX_BYTES),
            "bf16": Bool(),
            "bandwidth_gbps": Float(0.0, 1e6),
            "architecture": Str(("volta", "turing", "ampere", "ada", "hopper", "blackwell")),
            "compute_capability": Str(max_len=10),
            "kind": Str(("consumer", "datacenter")),
        },
        optional={
            "aliases": List(Str(max_len=200)),
            "fp16_tflops": Opt(Float(0.0, 1e6)),
            "bf16_tflops": Opt(Float(0.0, 1e6)),
            "note": Str(),
        },
    ),
    min_len=1,
)

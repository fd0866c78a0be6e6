"""The allocation program of a trace: every block of memory, when it lived, what it was for.

A ``Program`` is what lets the analyzer answer what-ifs from a saved profile without running the
model: it replays the traced steps' allocations with changed sizes and lifetimes. Positions count
allocator events from the start of the trace (``-1``: alive before it; ``free == -1``: still alive at
the end). Columns are parallel tuples so a profile with 100k blocks stays a compact JSON file.

``per_sample`` holds, for every block, how many bytes it grows per extra sample in the batch. It comes
from a second trace at another batch size whose blocks line up one-to-one with the first
(``scaling == "traced"``); when the traces do not line up, or only one exists, the analyzer assumes
activations, temporaries and inputs grow in proportion to the batch (``scaling == "assumed"``).
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import asdict, dataclass, replace
from typing import Any

from memadvise.model.enums import CATEGORIES, Category

SCALING_TRACED = "traced"
SCALING_ASSUMED = "assumed"


@dataclass(frozen=True)
class ParamInfo:
    """One parameter, in ``model.parameters()`` order: its owner module, shape and dtype."""

    module: str
    name: str
    shape: tuple[int, ...]
    dtype: str
    itemsize: int
    trainable: bool = True
    users: tuple[str, ...] = ()  # every module that registers it (tied weights have several)

    @property
    def nbytes(self) -> int:
        n = self.itemsize
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Program:
    """Blocks (parallel columns) plus the ranges that place them in phases and modules.

    * ``category``: index into :data:`memadvise.model.enums.CATEGORIES`; ``module`` and ``op`` index into
      the ``modules`` and ``ops`` name tables; ``dtype`` into ``dtypes`` (``""``: not known, the
      operator's compute type is assumed).
    * ``phases``: ``(phase, step, start, end)`` event positions, ``end`` exclusive.
    * ``forward_calls``: ``(module index, step, start, end)`` for every forward call of a module.
    * ``backward_nodes``: ``(module index, step, start, end)`` for every backward node that runs a
      module's operators' derivatives.
    * ``module_flops``: forward FLOPs per module and per step (matrix products and convolutions,
      children included), when they were counted.
    """

    batch_size: int
    n_events: int
    modules: tuple[str, ...]
    ops: tuple[str, ...]
    dtypes: tuple[str, ...]
    alloc: tuple[int, ...]
    free: tuple[int, ...]
    size: tuple[int, ...]
    category: tuple[int, ...]
    module: tuple[int, ...]
    op: tuple[int, ...]
    dtype: tuple[int, ...]
    phases: tuple[tuple[str, int, int, int], ...] = ()
    forward_calls: tuple[tuple[int, int, int, int], ...] = ()
    backward_nodes: tuple[tuple[int, int, int, int], ...] = ()
    per_sample: tuple[float, ...] = ()
    scaling: str = SCALING_ASSUMED
    scaling_batch_size: int = 0
    module_flops: dict[str, int] | None = None
    forward_flops: int = 0
    parameters: tuple[ParamInfo, ...] = ()

    def __len__(self) -> int:
        return len(self.size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        data["parameters"] = [
            {**asdict(p), "shape": list(p.shape), "users": list(p.users)} for p in self.parameters
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Program:
        kwargs = dict(data)
        for key in ("modules", "ops", "dtypes", "alloc", "free", "size", "category", "module", "op"):
            kwargs[key] = tuple(data[key])
        kwargs["dtype"] = tuple(data.get("dtype", ()))
        kwargs["per_sample"] = tuple(data.get("per_sample", ()))
        for key in ("phases", "forward_calls", "backward_nodes"):
            kwargs[key] = tuple(tuple(r) for r in data.get(key, ()))
        kwargs["parameters"] = tuple(
            ParamInfo(**{**p, "shape": tuple(p["shape"]), "users": tuple(p.get("users", ()))})
            for p in data.get("parameters", ())
        )
        return cls(**kwargs)


class _Table:
    """Names to small integers, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        return self.index.setdefault(name, len(self.index))

    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


def _positions(times: list[int], start: int, end: int) -> tuple[int, int]:
    """Event positions [first, last+1) of the events whose time lies in [start, end]."""
    return bisect.bisect_left(times, start), bisect.bisect_right(times, end)


def build_program(
    *,
    times: list[int],
    ops: list[str],
    blocks: list[tuple[int, int, int, str, str, str]],
    phase_ranges: list[tuple[str, int, int, int]],
    module_ranges: list[tuple[str, int, int]],
    node_ranges: list[tuple[int, int, int]],
    seq_module: dict[int, str],
    batch_size: int,
) -> Program:
    """Assemble the program from blocks ``(alloc, free, size, category, module, dtype)``.

    ``times`` are the events' time stamps (to turn ranges into positions) and ``ops`` their operators;
    a block with ``alloc == -1`` existed before the trace.
    """
    modules, op_names, dtypes = _Table(), _Table(), _Table()
    dtypes("")
    cols: dict[str, list[int]] = {
        k: [] for k in ("alloc", "free", "size", "category", "module", "op", "dtype")
    }
    cat_index = {c: k for k, c in enumerate(CATEGORIES)}
    for alloc, free, size, category, module, dtype in blocks:
        cols["alloc"].append(alloc)
        cols["free"].append(free)
        cols["size"].append(size)
        cols["category"].append(cat_index[category])
        cols["module"].append(modules(module))
        cols["op"].append(op_names(ops[alloc] if alloc >= 0 else ""))
        cols["dtype"].append(dtypes(dtype))
    phases = []
    for phase, step, start, end in phase_ranges:
        first, stop = _positions(times, start, end)
        phases.append((phase, step, first, stop))
    phases.sort(key=lambda r: r[2])

    def step_at(position: int) -> int:
        step = 0
        for _, s, first, _stop in phases:
            if first <= position:
                step = s
        return step

    forward_calls = []
    for name, start, end in module_ranges:
        first, stop = _positions(times, start, end)
        forward_calls.append((modules(name), step_at(first), first, stop))
    backward_nodes = []
    for seq, start, end in node_ranges:
        owner = seq_module.get(seq)
        if owner is None:
            continue
        first, stop = _positions(times, start, end)
        backward_nodes.append((modules(owner), step_at(first), first, stop))
    return Program(
        batch_size=batch_size,
        n_events=len(times),
        modules=modules.names(),
        ops=op_names.names(),
        dtypes=dtypes.names(),
        phases=tuple(phases),
        forward_calls=tuple(sorted(forward_calls, key=lambda r: r[2])),
        backward_nodes=tuple(sorted(backward_nodes, key=lambda r: r[2])),
        alloc=tuple(cols["alloc"]),
        free=tuple(cols["free"]),
        size=tuple(cols["size"]),
        category=tuple(cols["category"]),
        module=tuple(cols["module"]),
        op=tuple(cols["op"]),
        dtype=tuple(cols["dtype"]),
    )


def _block_keys(program: Program) -> list[tuple[bool, int, str, str, str]]:
    """What must match for two blocks of two traces to be the same block (everything but the size)."""
    return [
        (
            program.alloc[i] < 0,
            program.category[i],
            program.modules[program.module[i]],
            program.ops[program.op[i]],
            program.dtypes[program.dtype[i]],
        )
        for i in range(len(program))
    ]


def assumed_per_sample(program: Program) -> list[float]:
    """Growth per sample of every block when no second trace says: activations, temporaries and
    inputs grow in proportion to the batch, the rest not at all."""
    batch_sized = {
        CATEGORIES.index(c.value) for c in (Category.ACTIVATIONS, Category.TEMPORARIES, Category.INPUTS)
    }
    if program.batch_size <= 0:
        return [0.0] * len(program)
    return [
        size / program.batch_size if category in batch_sized else 0.0
        for size, category in zip(program.size, program.category, strict=True)
    ]


def with_scaling(program: Program, other: Program) -> Program:
    """``program`` with ``per_sample`` fitted from ``other``, a trace of the same steps at another batch.

    Sizes are taken to be affine in the batch size: ``size + per_sample * (B - batch_size)``. Blocks
    are matched in order by what allocated them (category, module, operator, dtype), so a kernel that
    takes an extra buffer at one batch size only leaves that buffer unmatched; unmatched blocks get
    the assumed, proportional growth. When less than 95% of the bytes match, the program is returned
    unchanged (scaling "assumed").
    """
    delta = other.batch_size - program.batch_size
    if delta == 0 or not len(program):
        return program
    matcher = difflib.SequenceMatcher(None, _block_keys(program), _block_keys(other), autojunk=False)
    per_sample = assumed_per_sample(program)
    matched_bytes = 0
    for a, b, n in matcher.get_matching_blocks():
        for k in range(n):
            per_sample[a + k] = (other.size[b + k] - program.size[a + k]) / delta
            matched_bytes += program.size[a + k]
    if matched_bytes < 0.95 * sum(program.size):
        return program
    return replace(
        program, per_sample=tuple(per_sample), scaling=SCALING_TRACED, scaling_batch_size=other.batch_size
    )

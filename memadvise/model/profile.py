"""The ``Profile``: what one trace of a model found, as plain frozen dataclasses.

A profile holds names, shapes, dtypes and byte counts only — never modules or tensors — so it can be
saved as JSON and every later step (analysis, reports, checks) can run from the file alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from memadvise.errors import ProfileFileError
from memadvise.model.enums import CATEGORIES, Category, Mode, OptimizerName, Phase
from memadvise.model.generation import Generation
from memadvise.model.program import Program
from memadvise.model.schema import PROFILE, SchemaError, read_json, validate

SCHEMA_VERSION = 1

__all__ = [
    "CATEGORIES",
    "SCHEMA_VERSION",
    "Category",
    "Health",
    "HealthFlag",
    "Holder",
    "HostMemory",
    "LayerHealth",
    "LayerStats",
    "Leak",
    "MemoryFigures",
    "Mode",
    "OptimizerName",
    "Phase",
    "Profile",
    "Timeline",
    "load_profile",
    "module_label",
    "ROOT_LABEL",
]


#: How every report (terminal, CSV, HTML, the sentences of an estimate) names the model itself, the root
#: module; a saved profile stores it as ``""`` (the name ``named_modules`` gives it).
ROOT_LABEL = "(model)"


def module_label(name: str) -> str:
    """How reports name a module: its qualified name, and :data:`ROOT_LABEL` for the model itself (``""``)."""
    return name if name else ROOT_LABEL


@dataclass(frozen=True)
class LayerStats:
    """Memory of one module (qualified name from ``named_modules``; ``""`` is the root model).

    Parameter, buffer, gradient and optimizer-state bytes are the module's own (not its children's);
    ``activation_bytes`` are the tensors it saved for backward that were alive at the end of the forward
    pass; ``output_bytes`` the storage of what its forward returned (summed over calls in one step);
    ``forward_temp_bytes`` / ``backward_temp_bytes`` the highest rise of live memory above the level at
    entry while its forward (its backward operators) ran.
    """

    name: str
    type: str
    calls: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    grad_bytes: int = 0
    optimizer_state_bytes: int = 0
    activation_bytes: int = 0
    output_bytes: int = 0
    forward_temp_bytes: int = 0
    backward_temp_bytes: int = 0


@dataclass(frozen=True)
class Holder:
    """Bytes of one category held by one module at the peak."""

    category: str
    module: str
    bytes: int


@dataclass(frozen=True)
class Timeline:
    """Live bytes by category, sampled after operators (column-wise to keep files small).

    ``index`` counts operators from the start of the trace; samples may be thinned out for long traces,
    but the peak sample is always kept.
    """

    index: tuple[int, ...] = ()
    step: tuple[int, ...] = ()
    phase: tuple[str, ...] = ()
    op: tuple[str, ...] = ()
    module: tuple[str, ...] = ()
    bytes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def totals(self) -> list[int]:
        """Total live bytes at each sample."""
        columns = list(self.bytes.values())
        return [sum(col[i] for col in columns) for i in range(len(self.index))]


@dataclass(frozen=True)
class Leak:
    """Memory allocated in one step that is still alive at the end of every later step.

    ``module`` and ``op`` are where the surviving tensors were created (``<loss>`` for code outside any
    module, such as a ``train_step``); ``source`` is the user's ``file:line`` when it was found.
    """

    bytes_per_step: int
    module: str
    op: str
    source: str = ""
    tensors_per_step: float = 0.0


@dataclass(frozen=True)
class LayerHealth:
    """Numerical figures of one module: its outputs' largest magnitude and its own gradients.

    ``max_abs_activation`` is over every call and step (``None`` when not measured or not finite);
    ``nonfinite`` is ``"nan"`` or ``"inf"`` when an output held one. Gradient figures are from the last
    step: the norm and largest magnitude of the module's own parameters' gradients, and the fractions of
    their nonzero values below fp16's smallest normal (6.1e-5) and smallest subnormal (6.0e-8).
    """

    name: str
    max_abs_activation: float | None = None
    nonfinite: str = ""
    grad_norm: float | None = None
    max_abs_grad: float | None = None
    grad_below_fp16_normal: float = 0.0
    grad_below_fp16_subnormal: float = 0.0


@dataclass(frozen=True)
class HealthFlag:
    """One numerical problem: ``kind`` is overflow, grad_subnormal, grad_underflow, nonfinite,
    vanishing_gradients or exploding_gradients; ``dtype`` the precision it concerns ("" for all)."""

    kind: str
    module: str
    dtype: str = ""
    value: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Health:
    """Numerical health gathered during the trace (``memadvise profile --health``), with advice."""

    layers: tuple[LayerHealth, ...] = ()
    flags: tuple[HealthFlag, ...] = ()
    advice: tuple[str, ...] = ()

    def flagged(self, kind: str, dtype: str | None = None) -> list[HealthFlag]:
        """The flags of one kind (and precision, when given)."""
        return [f for f in self.flags if f.kind == kind and (dtype is None or f.dtype == dtype)]


@dataclass(frozen=True)
class HostMemory:
    """Host RAM that data loading holds beside the step: prefetched and pinned batches.

    ``source`` says where the loader settings came from: ``options`` or ``make_dataloader``.
    """

    workers: int
    prefetch_factor: int
    pin_memory: bool
    batch_bytes: int
    prefetched_bytes: int
    pinned_bytes: int
    total_bytes: int
    source: str = "options"


@dataclass(frozen=True)
class MemoryFigures:
    """The figures of one run of a model, measured (:class:`Profile`) or predicted (an analyzer
    ``Estimate``): the same names, meanings and units (bytes) in both.

    The peak: its bytes, where it happened (``peak_phase`` of step ``peak_step``, while ``peak_op`` of
    ``peak_module`` ran; ``""`` where not known) and what was alive by category (``peak_breakdown``).
    The totals: parameters, buffers, one batch of inputs, gradients, optimizer state, and the
    activations saved for backward at the end of the forward pass.
    """

    model: str
    batch_size: int
    mode: str
    device: str
    optimizer: str
    peak_bytes: int
    peak_phase: str
    peak_step: int
    peak_op: str
    peak_module: str
    peak_breakdown: dict[str, int]
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    activation_bytes: int


@dataclass(frozen=True)
class Profile(MemoryFigures):
    """One traced model: its exact peak, what held it, per-layer memory and the timeline.

    With more than two steps (``--steps K``), the peak, its holders, the timeline and the layers still
    cover the first two steps only (so they do not depend on K); ``live_after_step`` covers all K steps
    and ``leaks`` lists memory that survives from one step to the end of every later one.
    """

    steps: int
    layers: tuple[LayerStats, ...] = ()
    peak_holders: tuple[Holder, ...] = ()
    timeline: Timeline = field(default_factory=Timeline)
    untracked_bytes: int = 0
    trace: str = "real"
    precision: str = "fp32"
    # training loop traced: "tutorial" (output and loss alive through step() and zero_grad()), "lean"
    # (freed after backward()), "train_step" (the model file's own); "" for inference
    train_loop: str = "tutorial"
    seq_len: int | None = None
    fsdp_ranks: int = 0  # > 0: one rank of FSDP2 over that many ranks was traced
    assumptions: tuple[str, ...] = ()
    live_after_step: tuple[int, ...] = ()
    leak_bytes_per_step: int = 0
    leaks: tuple[Leak, ...] = ()
    health: Health | None = None
    host_memory: HostMemory | None = None
    program: Program | None = None
    kv_cache_bytes: int = 0  # generation: dense KV cache of prompt + new tokens, by formula (else 0)
    generation: Generation | None = None  # generation: cache layout, per-step figures (mode generate)
    torch_version: str = ""
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (integers in bytes)."""
        data = {"schema_version": self.schema_version, **asdict(replace(self, program=None))}
        data["program"] = None if self.program is None else self.program.to_dict()
        data["assumptions"] = list(self.assumptions)
        data["layers"] = [asdict(layer) for layer in self.layers]
        data["peak_holders"] = [asdict(h) for h in self.peak_holders]
        data["live_after_step"] = list(self.live_after_step)
        data["leaks"] = [asdict(leak) for leak in self.leaks]
        if self.health is not None:
            data["health"] = {
                "layers": [asdict(layer) for layer in self.health.layers],
                "flags": [asdict(flag) for flag in self.health.flags],
                "advice": list(self.health.advice),
            }
        data["timeline"] = {
            "index": list(self.timeline.index),
            "step": list(self.timeline.step),
            "phase": list(self.timeline.phase),
            "op": list(self.timeline.op),
            "module": list(self.timeline.module),
            "bytes": {k: list(v) for k, v in self.timeline.bytes.items()},
        }
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text; the program's long columns stay on one line each to keep files small."""
        data = self.to_dict()
        if data["program"] is None:
            return json.dumps(data, indent=indent, sort_keys=False)
        program = data.pop("program")
        text = json.dumps(data, indent=indent, sort_keys=False)
        if indent is None:
            return text[:-1] + ', "program": ' + json.dumps(program) + "}"
        lines = ",\n".join(f"{' ' * 2 * indent}{json.dumps(k)}: {json.dumps(v)}" for k, v in program.items())
        return text[:-2] + f',\n{" " * indent}"program": {{\n{lines}\n{" " * indent}}}\n}}'

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "profile") -> Profile:
        """A profile from :meth:`to_dict`'s output, checked against :data:`memadvise.model.schema.PROFILE`;
        a bad field is one :class:`ProfileFileError` naming ``source`` and the field's path."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            shown = (
                version
                if version is None or isinstance(version, (int, str)) and len(str(version)) < 20
                else "…"
            )
            raise ProfileFileError(
                f"{source} has schema_version {shown!r}; this memadvise reads schema_version {SCHEMA_VERSION}"
            )
        try:
            validate(data, PROFILE)
        except SchemaError as exc:
            raise ProfileFileError(f"{source}: {exc}") from None
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "train_loop" not in kwargs:  # saved before the tutorial loop became the default
            kwargs["train_loop"] = "lean" if data.get("mode") == "train" else ""
        try:
            kwargs["assumptions"] = tuple(data.get("assumptions", ()))
            kwargs["layers"] = tuple(LayerStats(**layer) for layer in data.get("layers", ()))
            kwargs["peak_holders"] = tuple(Holder(**h) for h in data.get("peak_holders", ()))
            kwargs["live_after_step"] = tuple(data.get("live_after_step", ()))
            kwargs["leaks"] = tuple(Leak(**leak) for leak in data.get("leaks", ()))
            health = data.get("health")
            kwargs["health"] = (
                None
                if health is None
                else Health(
                    layers=tuple(LayerHealth(**layer) for layer in health.get("layers", ())),
                    flags=tuple(HealthFlag(**flag) for flag in health.get("flags", ())),
                    advice=tuple(health.get("advice", ())),
                )
            )
            program = data.get("program")
            kwargs["program"] = None if program is None else Program.from_dict(program)
            kwargs["generation"] = Generation.from_dict(data.get("generation"))
            host = data.get("host_memory")
            kwargs["host_memory"] = None if host is None else HostMemory(**host)
            tl = data.get("timeline") or {}
            kwargs["timeline"] = Timeline(
                index=tuple(tl.get("index", ())),
                step=tuple(tl.get("step", ())),
                phase=tuple(tl.get("phase", ())),
                op=tuple(tl.get("op", ())),
                module=tuple(tl.get("module", ())),
                bytes={k: tuple(v) for k, v in (tl.get("bytes") or {}).items()},
            )
            return cls(**kwargs)
        except (TypeError, AttributeError, ValueError) as exc:
            raise ProfileFileError(f"{source} has missing or misshapen fields: {exc}") from None


def load_profile(path: str | Path) -> Profile:
    """Read a profile saved with ``memadvise profile --format json --output FILE`` or ``Profile.save``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileFileError(f"profile file '{p}' not found") from None
    except OSError as exc:
        raise ProfileFileError(f"cannot read profile file '{p}': {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileFileError(f"profile file '{p}' is not a text (UTF-8 JSON) file") from None
    try:
        data = read_json(text)
    except ValueError as exc:
        raise ProfileFileError(f"profile file '{p}' {exc}") from None
    if not isinstance(data, dict):
        raise ProfileFileError(f"profile file '{p}' does not hold a JSON object")
    return Profile.from_dict(data, source=str(p))

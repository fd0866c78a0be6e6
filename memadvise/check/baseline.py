"""Memory regression checks: baselines, comparison, and the run over the checked models.

Pure logic without torch: a baseline is a JSON file of entries, one per model file × factory × batch
size × mode × optimizer × device; :func:`compare` turns an entry and a new :class:`Profile` into
:class:`FigureChange` rows. Only :func:`run_checks` profiles models (it imports the tracer lazily).

The file is deterministic: keys sorted, no timestamps, no host names. ``torch_version`` and the device
the figures were measured on are kept per entry as metadata: not compared, only warned about.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from memadvise.capture.targets import is_model_target, is_named_target, split_target
from memadvise.check.config import (
    CheckConfig,
    Settings,
    Tolerance,
    parse_count,
    parse_device,
    parse_mode,
    parse_optimizer,
    parse_task,
)
from memadvise.check.safe_write import real_target, replace_text, update_locked, writable_problem
from memadvise.errors import BaselineError, ModelFileError, UsageError
from memadvise.model.limits import MAX_IMAGE_SIZE, MAX_SEQ_LEN
from memadvise.model.profile import Mode, OptimizerName, Profile
from memadvise.model.schema import BASELINE, BASELINE_ENTRY, SchemaError, field_path, read_json, validate

BASELINE_FORMAT = "memadvise-baseline"
BASELINE_SCHEMA = 1
DEFAULT_TOLERANCE = "2%"
UPDATE_HINT = "memadvise check --update"

#: (label, Profile field) of every compared figure, in report order.
FIGURES: tuple[tuple[str, str], ...] = (
    ("peak", "peak_bytes"),
    ("parameters", "param_bytes"),
    ("activations", "activation_bytes"),
    ("gradients", "grad_bytes"),
    ("optimizer state", "optimizer_state_bytes"),
)
#: Per-layer fields kept in a baseline; a figure's layers are ranked by its own field, the peak by all.
LAYER_FIELDS = ("param_bytes", "buffer_bytes", "grad_bytes", "optimizer_state_bytes", "activation_bytes")


# -- what is checked --------------------------------------------------------------------------------
def entry_key(
    model: str,
    factory: str,
    batch_size: int,
    mode: str,
    optimizer: str,
    device: str,
    inputs: Iterable[tuple[str, Any]] = (),
) -> str:
    """The baseline key: ``model.py:factory|batch=8|mode=train|optimizer=adamw|device=auto``, then the
    input options that were given (``|image_size=160|seq_len=512|task=causal-lm``, sorted by name)."""
    extra = "".join(f"|{name}={value}" for name, value in sorted(inputs))
    return f"{model}:{factory}|batch={batch_size}|mode={mode}|optimizer={optimizer}|device={device}{extra}"


#: The options that shape a target's synthesised inputs (Hugging Face configs and names, timm:,
#: torchvision:), by name as in the baseline key and the config, with their label in the report.
INPUT_OPTIONS = {"image_size": "image {}", "seq_len": "seq {}", "task": "{}"}


def relative_to(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` in POSIX form (absolute when on another drive)."""
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def display_path(path: Path) -> str:
    """``path`` as a user in the current folder would type it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True)
class CheckTarget:
    """One model run to check; ``device`` is as asked (``None``: cuda when available, else cpu)."""

    path: Path
    factory: str
    batch_size: int
    mode: str
    optimizer: str
    device: str | None
    tolerance: Tolerance
    inputs: tuple[tuple[str, Any], ...] = ()  # (name, value) of INPUT_OPTIONS given, sorted by name

    @property
    def target(self) -> str:
        return f"{self.path}:{self.factory}"

    @property
    def device_key(self) -> str:
        return self.device or "auto"

    def key(self, base: Path) -> str:
        """The baseline key, with the model path relative to the baseline's folder ``base``."""
        model = str(self.path) if is_named_target(str(self.path)) else relative_to(self.path, base)
        return entry_key(
            model, self.factory, self.batch_size, self.mode, self.optimizer, self.device_key, self.inputs
        )

    @property
    def label(self) -> str:
        """``models/net.py:build_large [batch 8 · train · adamw · auto]`` (``· seq 512`` and the like after
        the batch size when input options were given)."""
        name = display_path(self.path) + ("" if self.factory == "build_model" else f":{self.factory}")
        opt = "" if self.mode == Mode.INFERENCE.value else f" · {self.optimizer}"
        shape = "".join(f" · {INPUT_OPTIONS[k].format(v)}" for k, v in self.inputs)
        return f"{name} [batch {self.batch_size}{shape} · {self.mode}{opt} · {self.device_key}]"


# -- baseline file ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaselineEntry:
    """The figures of one check, with per-layer bytes to name the layers that changed most."""

    model: str
    factory: str
    batch_size: int
    mode: str
    optimizer: str
    device: str
    figures: dict[str, int]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    torch_version: str = ""
    measured_device: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return entry_key(
            self.model, self.factory, self.batch_size, self.mode, self.optimizer, self.device,
            self.inputs.items(),
        )

    @classmethod
    def from_profile(cls, target: CheckTarget, profile: Profile, base: Path) -> BaselineEntry:
        layers: dict[str, dict[str, Any]] = {}
        for layer in profile.layers:
            values = {name: int(getattr(layer, name)) for name in LAYER_FIELDS}
            if any(values.values()):
                layers[layer.name] = {"type": layer.type, **values}
        return cls(
            model=relative_to(target.path, base),
            factory=target.factory,
            batch_size=target.batch_size,
            mode=target.mode,
            optimizer=target.optimizer,
            device=target.device_key,
            figures={name: int(getattr(profile, name)) for _, name in FIGURES},
            layers=layers,
            torch_version=profile.torch_version,
            measured_device=profile.device,
            inputs=dict(target.inputs),
        )

    def to_dict(self) -> dict[str, Any]:
        inputs = {"inputs": dict(self.inputs)} if self.inputs else {}  # none: the file reads as before
        return {
            **inputs,
            "model": self.model,
            "factory": self.factory,
            "batch_size": self.batch_size,
            "mode": self.mode,
            "optimizer": self.optimizer,
            "device": self.device,
            "figures": dict(self.figures),
            "layers": {name: dict(values) for name, values in self.layers.items()},
            "metadata": {"torch_version": self.torch_version, "device": self.measured_device},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineEntry:
        meta = data.get("metadata") or {}
        figures = {name: int(data["figures"][name]) for _, name in FIGURES}
        layers = {
            str(k): {"type": str(v.get("type", "")), **{f: int(v.get(f, 0)) for f in LAYER_FIELDS}}
            for k, v in dict(data.get("layers") or {}).items()
        }
        return cls(
            model=str(data["model"]),
            factory=str(data["factory"]),
            batch_size=int(data["batch_size"]),
            mode=str(data["mode"]),
            optimizer=str(data["optimizer"]),
            device=str(data["device"]),
            figures=figures,
            layers=layers,
            torch_version=str(meta.get("torch_version", "")),
            measured_device=str(meta.get("device", "")),
            inputs=dict(data.get("inputs") or {}),
        )


@dataclass(frozen=True)
class Baseline:
    """All entries of a baseline file, by key."""

    entries: dict[str, BaselineEntry] = field(default_factory=dict)

    def with_entries(self, new: Iterable[BaselineEntry]) -> Baseline:
        """A copy with ``new`` entries added or replaced (other entries are kept)."""
        entries = dict(self.entries)
        entries.update((e.key, e) for e in new)
        return Baseline(entries)

    def to_json(self) -> str:
        """The file's text: sorted keys, two-space indent, a final newline — byte-identical for equal data."""
        data = {
            "format": BASELINE_FORMAT,
            "schema_version": BASELINE_SCHEMA,
            "entries": {key: entry.to_dict() for key, entry in self.entries.items()},
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file beside it, then a rename); a read-only file is refused."""
        problem = writable_problem(path)
        if problem is not None:
            raise BaselineError(f"baseline file '{path}' {problem}")
        try:
            replace_text(path, self.to_json())  # through a symbolic link, keeping the file's mode
        except OSError as exc:
            raise BaselineError(f"cannot write baseline file '{path}': {exc.strerror}") from None


def load_baseline(path: Path) -> Baseline:
    """Read a baseline file; every problem is one :class:`BaselineError` line saying how to fix it."""
    recreate = f"restore it, or delete it and recreate it with `{UPDATE_HINT}`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline file '{path}' not found; run `{UPDATE_HINT}` to create it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline file '{path}': {exc}") from None
    try:
        data = read_json(text)
    except ValueError as exc:
        raise BaselineError(f"baseline file '{path}' {exc}; {recreate}") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"'{path}' is not a memadvise baseline file; {recreate}")
    if data.get("schema_version") != BASELINE_SCHEMA:
        version = data.get("schema_version")
        shown = (
            version if version is None or isinstance(version, (int, str)) and len(str(version)) < 20 else "…"
        )
        raise BaselineError(
            f"baseline file '{path}' has schema_version {shown!r}; this memadvise reads "
            f"{BASELINE_SCHEMA}; recreate it with `{UPDATE_HINT}`"
        )
    try:
        validate(data, BASELINE)
    except SchemaError as exc:
        raise BaselineError(f"baseline file '{path}': {exc}; {recreate}") from None
    entries: dict[str, BaselineEntry] = {}
    for key, raw in (data.get("entries") or {}).items():
        try:
            validate(raw, BASELINE_ENTRY, field_path("entries", key))
        except SchemaError as exc:
            problem = f"entry {key[:60]!r} is malformed: {exc}"
            raise BaselineError(f"baseline file '{path}': {problem}; {recreate}") from None
        entries[key] = BaselineEntry.from_dict(raw)
    return Baseline(entries)


# -- comparison -------------------------------------------------------------------------------------
class Status(str, Enum):
    """The verdict on a figure or a whole check."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    WITHIN = "within tolerance"
    UNCHANGED = "unchanged"
    NEW = "new"


@dataclass(frozen=True)
class FigureChange:
    """One figure, baseline against now; ``allowed`` is the change the tolerance lets through."""

    figure: str
    field: str
    old: int
    new: int
    allowed: int

    @property
    def change(self) -> int:
        return self.new - self.old

    @property
    def percent(self) -> float | None:
        return 100.0 * self.change / self.old if self.old else None

    @property
    def status(self) -> Status:
        if self.change == 0:
            return Status.UNCHANGED
        if abs(self.change) <= self.allowed:
            return Status.WITHIN
        return Status.REGRESSED if self.change > 0 else Status.IMPROVED


@dataclass(frozen=True)
class LayerChange:
    """A module whose bytes moved between the baseline and now."""

    name: str
    type: str
    old: int
    new: int

    @property
    def change(self) -> int:
        return self.new - self.old


def compare(entry: BaselineEntry, profile: Profile, tolerance: Tolerance) -> list[FigureChange]:
    """Every figure of ``profile`` against ``entry``; a figure regresses only when over ``tolerance``."""
    changes = []
    for label, name in FIGURES:
        old = entry.figures[name]
        changes.append(FigureChange(label, name, old, int(getattr(profile, name)), tolerance.allowed(old)))
    return changes


def layer_changes(old: BaselineEntry, new: BaselineEntry, field_name: str | None = None) -> list[LayerChange]:
    """Layers whose bytes changed, largest change first; ``field_name`` picks one figure, else all."""
    fields = LAYER_FIELDS if field_name is None else (field_name,)
    result = []
    for name in sorted(set(old.layers) | set(new.layers)):
        before, after = old.layers.get(name, {}), new.layers.get(name, {})
        a, b = (sum(int(d.get(f, 0)) for f in fields) for d in (before, after))
        if a != b:
            result.append(LayerChange(name, str(after.get("type") or before.get("type", "")), a, b))
    return sorted(result, key=lambda c: (-abs(c.change), c.name))


@dataclass(frozen=True)
class CheckResult:
    """One target checked: its new entry, the old one (``None`` when new) and the figure changes."""

    target: CheckTarget
    new: BaselineEntry
    old: BaselineEntry | None
    changes: tuple[FigureChange, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[FigureChange, ...]:
        return tuple(c for c in self.changes if c.status is Status.REGRESSED)

    @property
    def improvements(self) -> tuple[FigureChange, ...]:
        return tuple(c for c in self.changes if c.status is Status.IMPROVED)

    @property
    def status(self) -> Status:
        if self.old is None:
            return Status.NEW
        for status in (Status.REGRESSED, Status.IMPROVED, Status.WITHIN):
            if any(c.status is status for c in self.changes):
                return status
        return Status.UNCHANGED

    def layers(self, change: FigureChange | None = None, top: int = 3) -> list[LayerChange]:
        """The ``top`` layers that changed most (in ``change``'s figure; all figures for the peak)."""
        if self.old is None:
            return []
        name = None if change is None or change.field == "peak_bytes" else change.field
        return layer_changes(self.old, self.new, name)[:top]


@dataclass(frozen=True)
class CheckRun:
    """Everything one ``memadvise check`` found; ``updated`` when the baseline was rewritten."""

    baseline_path: Path
    results: tuple[CheckResult, ...]
    updated: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return any(r.regressions for r in self.results)

    @property
    def improved(self) -> bool:
        return any(r.improvements for r in self.results)


def metadata_warnings(target: CheckTarget, old: BaselineEntry | None, new: BaselineEntry) -> tuple[str, ...]:
    """A warning when the baseline was measured with another torch version or on another device."""
    if old is None:
        return ()
    differs = []
    if old.torch_version and old.torch_version != new.torch_version:
        differs.append(f"torch {old.torch_version} (now {new.torch_version})")
    if old.measured_device and old.measured_device != new.measured_device:
        differs.append(f"device {old.measured_device} (now {new.measured_device})")
    if not differs:
        return ()
    what = " and ".join(differs)
    return (f"{target.label}: baseline was measured with {what}; figures may differ for that alone",)


# -- planning and running ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckPlan:
    """The baseline file and the targets to check, after command line and config are merged."""

    baseline: Path
    targets: tuple[CheckTarget, ...]


def plan_checks(
    model_files: Sequence[str],
    *,
    config: CheckConfig | None = None,
    baseline: Path | None = None,
    tolerance: str | None = None,
    batch_size: int | None = None,
    mode: str | None = None,
    optimizer: str | None = None,
    device: str | None = None,
    seq_len: int | None = None,
    image_size: int | None = None,
    task: str | None = None,
) -> CheckPlan:
    """Merge the command line over the config: models given on the command line replace the config's."""
    config = config or CheckConfig()
    baseline = baseline or config.baseline
    if baseline is None:
        raise UsageError("no baseline file: pass --baseline FILE or set baseline in [tool.memadvise.check]")
    cli = Settings(
        batch_sizes=(batch_size,) if batch_size is not None else None,
        modes=(parse_mode(mode),) if mode is not None else None,
        optimizer=parse_optimizer(optimizer) if optimizer is not None else None,
        device=parse_device(device) if device is not None else None,
        tolerance=Tolerance.parse(tolerance) if tolerance is not None else None,
        seq_len=parse_count(seq_len, "--seq-len", MAX_SEQ_LEN),
        image_size=parse_count(image_size, "--image-size", MAX_IMAGE_SIZE),
        task=parse_task(task) if task is not None else None,
    )
    builtin = Settings((1,), ("train",), "adamw", None, Tolerance.parse(DEFAULT_TOLERANCE))
    models = [(m, Settings()) for m in model_files] if model_files else list(config.models)
    if not models:
        raise UsageError(
            "nothing to check: give MODEL_FILE arguments or list models in [tool.memadvise.check] of "
            "pyproject.toml (or memadvise.toml)"
        )
    targets: dict[tuple[Any, ...], CheckTarget] = {}
    for model, own in models:
        path, factory = split_target(model)
        if not path.is_file() and not is_model_target(str(path)):
            raise ModelFileError(f"model file '{path}' not found")
        s = cli.over(own).over(config.settings).over(builtin)
        assert s.batch_sizes and s.modes and s.optimizer and s.tolerance
        for m in s.modes:
            opt = OptimizerName.NONE.value if m == Mode.INFERENCE.value else s.optimizer
            for b in s.batch_sizes:
                target = CheckTarget(path, factory, b, m, opt, s.device, s.tolerance, s.inputs)
                targets.setdefault((path.resolve(), factory, b, m, opt, s.device, s.inputs), target)
    return CheckPlan(baseline, tuple(targets.values()))


# -- replacing a baseline (--update) --------------------------------------------------------------
# Only a baseline is replaced, only a writable one, through symbolic links, and the read-modify-write
# runs under a lock so that two updates of one baseline at the same time both land.
def check_replaceable(path: Path) -> None:
    """Raise :class:`BaselineError` unless ``--update`` may write ``path``: missing, empty, or a writable
    memadvise baseline file (any schema version)."""
    problem = writable_problem(path)
    if problem is not None:
        raise BaselineError(f"baseline file '{path}' {problem}")
    target = real_target(path)
    try:
        if target.stat().st_size == 0:
            return
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f"'{path}' exists and is not a memadvise baseline file; --update only replaces baselines: "
            "choose another --baseline path (or delete the file to start a new baseline)"
        )


def update_baseline(path: Path, entries: Iterable[BaselineEntry]) -> None:
    """Add or replace ``entries`` in the baseline at ``path`` (created when missing), re-reading the file
    under the lock so that entries another process wrote meanwhile are kept."""
    new = list(entries)

    def merged() -> str:
        check_replaceable(path)
        try:
            current = load_baseline(path) if real_target(path).exists() else Baseline()
        except BaselineError:  # an empty file or another schema of ours: started again
            current = Baseline()
        return current.with_entries(new).to_json()

    try:
        update_locked(path, merged)
    except OSError as exc:
        raise BaselineError(f"cannot write baseline file '{path}': {exc.strerror or exc}") from None


Profiler = Callable[..., Profile]
Progress = Callable[[str], AbstractContextManager[Any]]


def run_checks(
    plan: CheckPlan,
    *,
    update: bool = False,
    profiler: Profiler | None = None,
    progress: Progress | None = None,
) -> CheckRun:
    """Profile every target and compare it with the baseline; with ``update``, rewrite the baseline.

    Without ``update`` a missing or unreadable baseline, or a target it has no entry for, raises
    :class:`BaselineError` before anything is profiled. With ``update`` only a writable baseline file (or a
    missing or empty one) is replaced; a baseline of another schema is started again.
    """
    path, base = plan.baseline, plan.baseline.parent
    notes: list[str] = []
    if update:
        check_replaceable(path)  # before anything is profiled: only a writable baseline is replaced
    if update and not path.exists():
        baseline = Baseline()
    else:
        try:
            baseline = load_baseline(path)
        except BaselineError as exc:
            if not update:
                raise
            notes.append(f"{exc}; writing a new one")
            baseline = Baseline()
    if not update:
        missing = [t for t in plan.targets if t.key(base) not in baseline.entries]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise BaselineError(
                f"baseline file '{path}' has no entry for {missing[0].label}{more}; "
                f"run `{UPDATE_HINT}` to record it"
            )
    if profiler is None:
        from memadvise.api import profile_file

        profiler = profile_file
    results = []
    for target in plan.targets:
        with (progress or (lambda _msg: nullcontext()))(f"Checking {target.label}…"):
            prof = profiler(
                target.target,
                batch_size=target.batch_size,
                mode=target.mode,
                optimizer=target.optimizer,
                device=target.device,
                **dict(target.inputs),
            )
        new = BaselineEntry.from_profile(target, prof, base)
        old = baseline.entries.get(new.key)
        changes = tuple(compare(old, prof, target.tolerance)) if old is not None else ()
        results.append(CheckResult(target, new, old, changes, metadata_warnings(target, old, new)))
    if update:
        update_baseline(path, (r.new for r in results))  # re-read under a lock: concurrent updates land
    return CheckRun(path, tuple(results), updated=update, warnings=tuple(notes))

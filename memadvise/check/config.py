"""Settings of memory checks: tolerances and the ``[tool.memadvise.check]`` / ``memadvise.toml`` config."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memadvise.capture.targets import TASKS, is_named_target, split_target
from memadvise.errors import CheckConfigError, UsageError
from memadvise.model.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_SEQ_LEN
from memadvise.model.profile import Mode, OptimizerName
from memadvise.model.schema import CHECK_CONFIG, SchemaError, validate
from memadvise.model.units import format_bytes, parse_size


# -- tolerance --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    """How much a figure may grow: a percentage of the baseline, a size, or both (the larger wins)."""

    percent: float | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``2%``, ``50MiB`` or ``2%,50MiB`` (also ``2%+50MiB``); sizes as in :func:`parse_size`."""
        parts = [p.strip() for p in str(text).replace("+", ",").split(",") if p.strip()]
        hint = "use a percentage (2%), a size (50MiB) or both (2%,50MiB)"
        percent: float | None = None
        size: int | None = None
        for part in parts:
            try:
                if part.endswith("%"):
                    if percent is not None:
                        raise ValueError
                    percent = float(part[:-1])
                    if not 0 <= percent < float("inf"):
                        raise ValueError
                else:
                    if size is not None:
                        raise ValueError
                    size = parse_size(part)
            except (ValueError, UsageError):
                raise UsageError(f"cannot read tolerance {text!r}; {hint}") from None
        if percent is None and size is None:
            raise UsageError(f"cannot read tolerance {text!r}; {hint}")
        return cls(percent, size)

    def allowed(self, old: int) -> int:
        """Bytes a figure of ``old`` bytes may change by before it counts."""
        by_percent = int(abs(old) * self.percent / 100) if self.percent is not None else 0
        return max(by_percent, self.bytes or 0)

    def __str__(self) -> str:
        parts = []
        if self.percent is not None:
            parts.append(f"{self.percent:g}%")
        if self.bytes is not None:
            parts.append(format_bytes(self.bytes))
        return " or ".join(parts)


# -- configuration ----------------------------------------------------------------------------------
_SHARED_KEYS = {
    "batch_size", "batch_sizes", "mode", "modes", "optimizer", "device", "tolerance", "seq_len", "image_size",
    "task",
}
_SETTINGS = ("batch_sizes", "modes", "optimizer", "device", "tolerance", "seq_len", "image_size", "task")
_TOP_KEYS = _SHARED_KEYS | {"baseline", "models"}
_MODEL_KEYS = _SHARED_KEYS | {"path"}


@dataclass(frozen=True)
class Settings:
    """Batch sizes, modes, optimizer, device, tolerance and the input options of targets without a model
    file (sequence length, image size, Hugging Face task); ``None`` where not given."""

    batch_sizes: tuple[int, ...] | None = None
    modes: tuple[str, ...] | None = None
    optimizer: str | None = None
    device: str | None = None
    tolerance: Tolerance | None = None
    seq_len: int | None = None
    image_size: int | None = None
    task: str | None = None

    @property
    def inputs(self) -> tuple[tuple[str, Any], ...]:
        """The input options given, as (name, value) sorted by name (the baseline key's order)."""
        given = {"image_size": self.image_size, "seq_len": self.seq_len, "task": self.task}
        return tuple((k, v) for k, v in sorted(given.items()) if v is not None)

    def over(self, fallback: Settings) -> Settings:
        """These settings, with ``fallback``'s where these have none."""
        return Settings(
            **{
                name: getattr(self, name) if getattr(self, name) is not None else getattr(fallback, name)
                for name in _SETTINGS
            }
        )


@dataclass(frozen=True)
class CheckConfig:
    """The check table of a config file: baseline, shared settings and the models with their own."""

    path: Path | None = None
    baseline: Path | None = None
    settings: Settings = Settings()
    models: tuple[tuple[str, Settings], ...] = ()


def _toml_module() -> Any:
    for name in ("tomllib", "tomli"):  # tomllib from Python 3.11; tomli only if installed
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    return None


def read_toml(path: Path) -> dict[str, Any]:
    toml = _toml_module()
    if toml is None:
        raise CheckConfigError(f"reading {path} needs Python 3.11+ or the tomli package (pip install tomli)")
    try:
        with path.open("rb") as fh:
            return dict(toml.load(fh))
    except OSError as exc:
        raise CheckConfigError(f"cannot read config file '{path}': {exc.strerror}") from None
    except toml.TOMLDecodeError as exc:
        raise CheckConfigError(f"config file '{path}' is not valid TOML: {exc}") from None
    except RecursionError:
        raise CheckConfigError(f"config file '{path}' is nested too deeply to read") from None


def _memadvise_table(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    tool = data.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("memadvise"), dict):
        return tool["memadvise"]
    return data if path.name == "memadvise.toml" else None


def find_config(start: Path) -> Path | None:
    """The nearest ``memadvise.toml``, or ``pyproject.toml`` with ``[tool.memadvise]``, from ``start`` up.

    The search stops at the repository root (a folder holding ``.git``).
    """
    folder = start.resolve()
    for current in (folder, *folder.parents):
        if (current / "memadvise.toml").is_file():
            return current / "memadvise.toml"
        pyproject = current / "pyproject.toml"
        if pyproject.is_file() and _memadvise_table(pyproject, read_toml(pyproject)) is not None:
            return pyproject
        if (current / ".git").exists():
            break
    return None


def load_config(path: Path) -> CheckConfig:
    """Read the ``check`` table of ``[tool.memadvise]`` (pyproject.toml) or of a memadvise.toml.

    Paths in it are relative to the file's folder.
    """
    if not path.is_file():
        raise CheckConfigError(f"config file '{path}' not found")
    table = _memadvise_table(path, read_toml(path)) or {}
    where = f"{path} [{'tool.memadvise.' if path.name == 'pyproject.toml' else ''}check]"
    check = table.get("check", {})
    if not isinstance(check, dict):
        raise CheckConfigError(f"{where}: must be a table")
    settings = _settings(check, _TOP_KEYS, where)
    baseline = check.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise CheckConfigError(f"{where}: baseline must be a path string")
    models: list[tuple[str, Settings]] = []
    raw_models = check.get("models", [])
    if not isinstance(raw_models, list):
        raise CheckConfigError(f"{where}: models must be a list of paths or tables")
    for i, item in enumerate(raw_models):
        item_where = f"{where} models[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise CheckConfigError(f'{item_where}: give a path string or a table with path = "model.py"')
        model_path, factory = split_target(item["path"])
        named = is_named_target(item["path"]) and not (path.parent / item["path"]).exists()
        target = f"{model_path if named else path.parent / model_path}:{factory}"
        models.append((target, _settings(item, _MODEL_KEYS, item_where)))
    try:  # the types and bounds of every value (the checks above give the friendlier messages first)
        validate(check, CHECK_CONFIG)
    except SchemaError as exc:
        raise CheckConfigError(f"{where}: {exc}") from None
    return CheckConfig(
        path=path,
        baseline=path.parent / baseline if baseline else None,
        settings=settings,
        models=tuple(models),
    )


def _settings(table: dict[str, Any], allowed: set[str], where: str) -> Settings:
    unknown = sorted(set(table) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise CheckConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {known}")

    def listed(single: str, plural: str) -> list[Any] | None:
        if single in table and plural in table:
            raise CheckConfigError(f"{where}: give {single} or {plural}, not both")
        if plural in table:
            value = table[plural]
            if not isinstance(value, list) or not value:
                raise CheckConfigError(f"{where}: {plural} must be a non-empty list")
            return value
        return [table[single]] if single in table else None

    try:
        sizes = listed("batch_size", "batch_sizes")
        modes = listed("mode", "modes")
        if sizes is not None and not all(type(b) is int and 1 <= b <= MAX_BATCH_SIZE for b in sizes):
            raise CheckConfigError(
                f"{where}: batch sizes must be integers of at least 1 and at most {MAX_BATCH_SIZE:,}, "
                f"not {sizes!r}"
            )
        device = table.get("device")
        tolerance = table.get("tolerance")
        if tolerance is not None and not isinstance(tolerance, str):
            raise CheckConfigError(f'{where}: tolerance must be a string such as "2%" or "2%,50MiB"')
        return Settings(
            batch_sizes=tuple(sizes) if sizes is not None else None,
            modes=tuple(parse_mode(m) for m in modes) if modes is not None else None,
            optimizer=parse_optimizer(table["optimizer"]) if "optimizer" in table else None,
            device=parse_device(device) if device is not None else None,
            tolerance=Tolerance.parse(tolerance) if tolerance is not None else None,
            seq_len=parse_count(table.get("seq_len"), "seq_len", MAX_SEQ_LEN),
            image_size=parse_count(table.get("image_size"), "image_size", MAX_IMAGE_SIZE),
            task=parse_task(table["task"]) if "task" in table else None,
        )
    except UsageError as exc:
        raise CheckConfigError(f"{where}: {exc}") from None


def parse_count(value: Any, name: str, most: int) -> int | None:
    """A whole number from 1 to ``most`` (``None`` stays ``None``)."""
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= most:
        raise UsageError(f"{name} must be a whole number from 1 to {most:,}, not {value!r}")
    return value


def parse_task(value: Any) -> str:
    if value not in TASKS:
        raise UsageError(f"unknown task {value!r}; use one of {', '.join(TASKS)}")
    return str(value)


def parse_mode(value: Any) -> str:
    try:
        return Mode(value).value
    except ValueError:
        raise UsageError(f"unknown mode {value!r}; use train or inference") from None


def parse_optimizer(value: Any) -> str:
    try:
        return OptimizerName(value).value
    except ValueError:
        choices = ", ".join(o.value for o in OptimizerName)
        raise UsageError(f"unknown optimizer {value!r}; use one of {choices}") from None


def parse_device(value: Any) -> str | None:
    if value == "auto":
        return None
    if value not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {value!r}; use cpu, cuda or auto")
    return str(value)


# -- the model commands take without a TARGET -------------------------------------------------------
TARGET_HINT = (
    'give {arg} ({what}), or set model = "model.py" under [tool.memadvise] in '
    "pyproject.toml (or in memadvise.toml), or list exactly one model under [tool.memadvise.check]"
)


def default_target(start: Path, argument: str = "TARGET") -> str:
    """The model ``plan``, ``estimate`` and ``profile`` use without a TARGET: ``model`` of
    ``[tool.memadvise]`` (pyproject.toml) or of memadvise.toml, found from ``start`` up, else the only
    model of its check table. Paths are relative to the config file's folder. UsageError otherwise
    (naming ``argument``)."""
    what = "profile.json or model.py" if argument == "TARGET" else "model.py"
    hint = TARGET_HINT.format(arg=argument, what=what)
    path = find_config(start)
    if path is None:
        raise UsageError(f"no {argument} given and no memadvise config found from {start}: {hint}")
    table = _memadvise_table(path, read_toml(path)) or {}
    model = table.get("model")
    if model is not None:
        if not isinstance(model, str) or not model.strip():
            raise CheckConfigError(f'{path}: model must be a path string, e.g. model = "model.py"')
        model_path, factory = split_target(model)
        if model_path.suffix == ".json":
            return str(path.parent / model_path)
        return f"{path.parent / model_path}:{factory}"
    models = load_config(path).models
    if len(models) == 1:
        return models[0][0]
    found = f"{len(models)} models in its check table" if models else "no model in it"
    raise UsageError(f"no {argument} given and {path} has {found}: {hint}")

"""pytest plugin: gate a model's memory inside a test suite.

Marker — the test returns (or yields, to clean up afterwards) a model file path, ``(model, inputs)`` or
``(model, inputs, loss_fn)``; the plugin profiles it and fails the test when a figure is over its limit::

    @pytest.mark.memadvise(max_peak="2GiB", batch_size=8, mode="train")
    def test_classifier_memory():
        return "models/classifier.py"

Limits: ``max_peak``, ``max_params``, ``max_activations``, ``max_gradients``, ``max_optimizer_state``
(sizes as ``memadvise.model.units.parse_size`` reads them, or bytes). Run settings: ``batch_size`` (model
files), ``mode``, ``optimizer``, ``device`` (model files; ``(model, inputs)`` run where they live).

Fixture — ``memadvise_profile(model, inputs, **kwargs) -> Profile`` (or ``memadvise_profile("m.py",
batch_size=8)``); in a marked test that returns nothing, the marker's limits apply to its profiles.

torch is imported only when a marked test runs or the fixture is called, never at start-up.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from memadvise.errors import MemadviseError
from memadvise.model.profile import module_label
from memadvise.model.units import format_bytes, parse_size

if TYPE_CHECKING:
    from memadvise.model.profile import Profile

MARKER = "memadvise"
#: marker keyword → (figure label, Profile field)
LIMITS = {
    "max_peak": ("peak", "peak_bytes"),
    "max_params": ("parameters", "param_bytes"),
    "max_activations": ("activations", "activation_bytes"),
    "max_gradients": ("gradients", "grad_bytes"),
    "max_optimizer_state": ("optimizer state", "optimizer_state_bytes"),
}
RUN_KEYS = ("batch_size", "mode", "optimizer", "device")
_TAKEN = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "memadvise(max_peak=None, batch_size=1, mode='train', optimizer='adamw', device=None, ...): "
        "profile the model the test returns or yields (a model file path or (model, inputs[, loss_fn])) "
        "and fail the test when its peak (or max_params, max_activations, max_gradients, "
        "max_optimizer_state) is over the limit",
    )


def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> Any:
    """Collect marked generator tests, which pytest itself refuses (``yield`` is allowed in fixtures only)."""
    if not inspect.isgeneratorfunction(obj):  # checked first: cheap, and safe on any object
        return None
    marked = any(getattr(m, "name", None) == MARKER for m in getattr(obj, "pytestmark", []))
    if not (marked and collector.istestfunction(obj, name)):
        return None
    genfunctions = getattr(collector, "_genfunctions", None)  # keeps parametrize working
    if genfunctions is not None:
        return list(genfunctions(name, obj))
    return pytest.Function.from_parent(collector, name=name)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """For a marked test, wrap the test function so its returned (or yielded) model is profiled."""
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    original = pyfuncitem.obj

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> None:
        limits, run = read_marker(marker)
        value = original(*args, **kwargs)
        if inspect.isgenerator(value):
            try:
                spec = next(value)
            except StopIteration:
                spec = None
            try:
                _gate(pyfuncitem, spec, limits, run)
            finally:
                for _ in value:
                    pytest.fail("a test marked memadvise may yield only once", pytrace=False)
        else:
            _gate(pyfuncitem, value, limits, run)

    pyfuncitem.obj = call
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def read_marker(marker: pytest.Mark) -> tuple[dict[str, int], dict[str, Any]]:
    """Split the marker's keywords into byte limits and run settings; anything else fails the test."""
    if marker.args:
        pytest.fail("the memadvise marker takes keyword arguments only, e.g. max_peak='2GiB'", pytrace=False)
    unknown = sorted(set(marker.kwargs) - set(LIMITS) - set(RUN_KEYS))
    if unknown:
        known = ", ".join((*LIMITS, *RUN_KEYS))
        pytest.fail(f"unknown memadvise marker argument {unknown[0]!r}; use {known}", pytrace=False)
    try:
        limits = {k: _limit(k, v) for k, v in marker.kwargs.items() if k in LIMITS}
    except (MemadviseError, TypeError, ValueError) as exc:
        pytest.fail(f"memadvise marker: {exc}", pytrace=False)
    if not limits:
        pytest.fail(f"the memadvise marker needs a limit: one of {', '.join(LIMITS)}", pytrace=False)
    run = {k: marker.kwargs[k] for k in RUN_KEYS if k in marker.kwargs}
    problem = next((p for p in (_run_problem(k, v) for k, v in run.items()) if p), None)
    if problem:
        pytest.fail(f"memadvise marker: {problem}", pytrace=False)
    return limits, run


def _run_problem(key: str, value: Any) -> str | None:
    """Why a run setting of the marker cannot be used, naming the argument (``None``: it can)."""
    from memadvise.model.profile import Mode, OptimizerName

    if key == "batch_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"batch_size must be a whole number of at least 1, not {value!r}"
        return None
    choices = {
        "mode": [m.value for m in Mode if m is not Mode.GENERATE],
        "optimizer": [o.value for o in OptimizerName if o is not OptimizerName.NONE],
    }.get(key)
    if choices is not None and value not in choices:
        return f"{key} must be one of {', '.join(choices)}, not {value!r}"
    if key == "device" and value is not None and not isinstance(value, str):
        return f"device must be a device name such as 'cpu' or 'cuda', not {value!r}"
    return None


def _limit(key: str, value: Any) -> int:
    try:
        return _size(value)
    except (MemadviseError, TypeError, ValueError) as exc:
        raise ValueError(f"{exc} ({key}={value!r})") from None


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"a limit must be a size such as '2GiB' or a number of bytes, not {value!r}")
    size = parse_size(value) if isinstance(value, str) else value
    if size < 0:
        raise ValueError(f"a limit must not be negative, not {value!r}")
    return size


def _gate(item: pytest.Function, spec: Any, limits: dict[str, int], run: dict[str, Any]) -> None:
    if spec is None:
        profiles = item.stash.get(_TAKEN, [])
        if not profiles:
            pytest.fail(
                "a test marked memadvise must return or yield a model file path or "
                "(model, inputs[, loss_fn]), or call the memadvise_profile fixture",
                pytrace=False,
            )
    else:
        try:
            profiles = [profile_spec(spec, run, Path(item.path).parent)]
        except MemadviseError as exc:
            pytest.fail(f"memadvise: {exc}", pytrace=False)
    for prof in profiles:
        item.user_properties.append(("memadvise_peak_bytes", prof.peak_bytes))
        problems = limit_problems(prof, limits)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def profile_spec(spec: Any, run: dict[str, Any], folder: Path) -> Profile:
    """Profile a model file path, or ``(model, inputs[, loss_fn])`` where the model and inputs live."""
    if isinstance(spec, (str, os.PathLike)):
        from memadvise.api import profile_file
        from memadvise.capture.loader import split_target

        path, factory = split_target(os.fspath(spec))
        if not path.is_absolute() and not path.exists() and (folder / path).exists():
            path = folder / path
        return profile_file(f"{path}:{factory}", **run)
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        from memadvise.api import profile_model

        model, inputs, *rest = spec
        if not _is_module(model):
            raise MemadviseError(
                f"a test marked memadvise returned ({type(model).__name__}, …); the first item must be "
                "the torch.nn.Module to profile: (model, inputs[, loss_fn])"
            )
        kwargs = {k: v for k, v in run.items() if k != "device"}
        return profile_model(model, inputs, loss_fn=rest[0] if rest else None, **kwargs)
    raise MemadviseError(
        f"a test marked memadvise returned {type(spec).__name__}; return a model file path or "
        "(model, inputs) / (model, inputs, loss_fn)"
    )


def _is_module(value: Any) -> bool:
    import torch

    return isinstance(value, torch.nn.Module)


def limit_problems(profile: Profile, limits: dict[str, int]) -> list[str]:
    """One readable line per figure over its limit, naming the model and who holds the memory."""
    lines = []
    run = (profile.model, profile.mode, f"batch {profile.batch_size}", profile.optimizer, profile.device)
    what = " · ".join(run)
    for key, limit in limits.items():
        label, field = LIMITS[key]
        value = int(getattr(profile, field))
        if value <= limit:
            continue
        over = value - limit
        pct = f" (+{100.0 * over / limit:.1f}%)" if limit else ""
        lines.append(
            f"memadvise: {label} {format_bytes(value)} ({value:,} bytes) exceeds {key}={format_bytes(limit)} "
            f"({limit:,} bytes) by {format_bytes(over)}{pct} — {what}; {_holders(profile, field)}"
        )
    return lines


def _holders(profile: Profile, field: str, top: int = 3) -> str:
    """The modules holding most: at the peak for ``peak_bytes``, else by the figure's per-layer field."""
    totals: dict[str, int] = {}
    if field == "peak_bytes":
        for holder in profile.peak_holders:
            totals[holder.module] = totals.get(holder.module, 0) + holder.bytes
        heading = "held at the peak by"
    else:
        for layer in profile.layers:
            totals[layer.name] = int(getattr(layer, field))
        heading = "largest layers"
    ranked = sorted(((b, n) for n, b in totals.items() if b), key=lambda bn: (-bn[0], bn[1]))[:top]
    return f"{heading}: " + ", ".join(f"{module_label(n)} {format_bytes(b)}" for b, n in ranked)


@pytest.fixture
def memadvise_profile(request: pytest.FixtureRequest) -> Callable[..., Profile]:
    """``memadvise_profile(model, inputs, **kwargs)`` → :class:`memadvise.Profile` (or a model file path)."""
    taken: list[Profile] = []
    request.node.stash[_TAKEN] = taken

    def profile(model: Any, inputs: Any = None, **kwargs: Any) -> Profile:
        if isinstance(model, (str, os.PathLike)):
            from memadvise.api import profile_file

            prof = profile_file(os.fspath(model), **kwargs)
        else:
            from memadvise.api import profile_model

            prof = profile_model(model, inputs, **kwargs)
        taken.append(prof)
        return prof

    return profile

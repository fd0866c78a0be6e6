"""The library's entry points: profile a model file, or a model already in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from memadvise.errors import UsageError
from memadvise.loader import load_model_file, user_code_error
from memadvise.profile import Mode, OptimizerName, Profile
from memadvise.tracer import Tracer
from memadvise.training import StepFailed, move_to, resolve_device


def _check_choices(batch_size: int, mode: str, optimizer: str, steps: int) -> None:
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    if steps < 1:
        raise UsageError(f"steps must be at least 1, not {steps}")
    try:
        Mode(mode)
    except ValueError:
        raise UsageError(f"unknown mode {mode!r}; use train or inference") from None
    try:
        OptimizerName(optimizer)
    except ValueError:
        choices = ", ".join(o.value for o in OptimizerName)
        raise UsageError(f"unknown optimizer {optimizer!r}; use one of {choices}") from None


def profile_model(
    model: torch.nn.Module,
    inputs: Any,
    *,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    mode: str = "train",
    optimizer: str = "adamw",
    batch_size: int = 0,
    name: str | None = None,
    steps: int = 2,
) -> Profile:
    """Trace ``steps`` training (or inference) steps of ``model`` on ``inputs`` where they already live.

    The model is left exactly as it was: hooks removed, parameters, buffers, gradients, train/eval
    flags and the RNG state restored.
    """
    _check_choices(max(batch_size, 1), mode, optimizer, steps)
    with Tracer(
        model,
        mode=mode,
        optimizer=optimizer,
        steps=steps,
        name=name or type(model).__name__,
        batch_size=batch_size,
    ) as tracer:
        tracer.run(inputs, loss_fn)
    return tracer.profile


def profile_file(
    target: str | Path,
    *,
    batch_size: int = 1,
    mode: str = "train",
    optimizer: str = "adamw",
    device: str | None = None,
    steps: int = 2,
) -> Profile:
    """Load ``model.py`` (or ``model.py:factory``), build the model and its batch, and trace it."""
    _check_choices(batch_size, mode, optimizer, steps)
    dev = resolve_device(device)
    spec = load_model_file(target)
    torch.manual_seed(0)
    model = spec.build().to(dev)
    inputs = move_to(spec.inputs(batch_size), dev)
    try:
        with Tracer(
            model,
            mode=mode,
            optimizer=optimizer,
            steps=steps,
            name=spec.name,
            batch_size=batch_size,
            preserve_state=False,
        ) as tracer:
            tracer.run(inputs, spec.loss_fn)
    except StepFailed as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise user_code_error(spec.path, f"{exc.what} raised", cause) from exc
    return tracer.profile

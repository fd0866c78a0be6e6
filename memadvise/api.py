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
    target_device: str | None = None,
    steps: int = 2,
) -> Profile:
    """Load ``model.py`` (or ``model.py:factory``), build the model and its batch, and trace it.

    ``device="meta"`` traces fake: the model and its batch are built on the meta device, nothing is
    allocated, and memory follows ``target_device``'s kernels (default ``cuda``).
    """
    _check_choices(batch_size, mode, optimizer, steps)
    dev = resolve_device(device)
    if target_device is not None and dev.type != "meta":
        raise UsageError("target_device applies to fake tracing only (device='meta')")
    if target_device is not None and target_device not in ("cpu", "cuda"):
        raise UsageError(f"unknown target device {target_device!r}; use cpu or cuda")
    spec = load_model_file(target)
    torch.manual_seed(0)
    if dev.type == "meta":
        with torch.device("meta"):
            model = spec.build()
            inputs = move_to(spec.inputs(batch_size), dev)
        model = model.to(dev)  # parameters created outside the device context
    else:
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
            target_device=target_device,
        ) as tracer:
            tracer.run(inputs, spec.loss_fn)
    except StepFailed as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise user_code_error(spec.path, f"{exc.what} raised", cause) from exc
    return tracer.profile

"""The library's entry points: profile a model file, or a model already in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from memadvise.errors import ModelFileError, UsageError
from memadvise.host_memory import estimate_host_memory, loader_settings
from memadvise.loader import ModelSpec, load_model_file, user_code_error
from memadvise.profile import HostMemory, Mode, OptimizerName, Profile
from memadvise.tracer import Tracer
from memadvise.training import BadStepResult, StepFailed, TrainStep, move_to, resolve_device


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
    train_step: TrainStep | None = None,
    health: bool = False,
) -> Profile:
    """Trace ``steps`` training (or inference) steps of ``model`` on ``inputs`` where they already live.

    ``steps >= 3`` also scans for leaks; ``train_step(model, inputs, optimizer)`` replaces the default
    training step; ``health=True`` gathers numerical health. The model is left exactly as it was:
    hooks removed, parameters, buffers, gradients, train/eval flags and the RNG state restored.
    """
    _check_choices(max(batch_size, 1), mode, optimizer, steps)
    with Tracer(
        model,
        mode=mode,
        optimizer=optimizer,
        steps=steps,
        name=name or type(model).__name__,
        batch_size=batch_size,
        health=_health_allowed(health, model),
    ) as tracer:
        tracer.run(inputs, loss_fn, train_step)
    return tracer.profile


def _health_allowed(health: bool, model: torch.nn.Module) -> bool:
    if health and any(p.device.type == "meta" for p in model.parameters()):
        raise UsageError("numerical health needs real values; it cannot be gathered on a fake (meta) trace")
    return health


def _host_memory(
    spec: ModelSpec, batch: Any, workers: int | None, pin_memory: bool | None
) -> HostMemory | None:
    """From the options when given, else from the file's ``make_dataloader()``, else nothing."""
    prefetch: int | None = None
    source = "options"
    if workers is None and pin_memory is None:
        if spec.make_dataloader is None:
            return None
        loader = spec.call("make_dataloader", spec.make_dataloader)
        try:
            workers, pin_memory, prefetch = loader_settings(loader)
        except UsageError as exc:
            raise ModelFileError(f"{spec.path}: {exc}") from None
        source = "make_dataloader"
    return estimate_host_memory(batch, workers or 0, bool(pin_memory), prefetch, source)


def profile_file(
    target: str | Path,
    *,
    batch_size: int = 1,
    mode: str = "train",
    optimizer: str = "adamw",
    device: str | None = None,
    target_device: str | None = None,
    steps: int = 2,
    health: bool = False,
    dataloader_workers: int | None = None,
    pin_memory: bool | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Profile:
    """Load ``model.py`` (or ``model.py:factory``), build the model and its batch, and trace it.

    ``device="meta"`` traces fake: the model and its batch are built on the meta device, nothing is
    allocated, and memory follows ``target_device``'s kernels (default ``cuda``). The file's
    ``train_step()``, when defined, replaces the default training step; ``steps >= 3`` scans for
    leaks; ``health`` gathers numerical health (real traces only). ``dataloader_workers`` and
    ``pin_memory`` (else the file's ``make_dataloader()``) give the host-memory estimate.
    """
    _check_choices(batch_size, mode, optimizer, steps)
    dev = resolve_device(device)
    if target_device is not None and dev.type != "meta":
        raise UsageError("target_device applies to fake tracing only (device='meta')")
    if target_device is not None and target_device not in ("cpu", "cuda"):
        raise UsageError(f"unknown target device {target_device!r}; use cpu or cuda")
    if health and dev.type == "meta":
        raise UsageError("--health needs real values; it cannot be combined with a fake (meta) trace")
    spec = load_model_file(target)
    torch.manual_seed(0)
    if dev.type == "meta" and target_device == "cpu":
        # Fake CPU tensors: CPU-only code paths (RNN kernels, fused linear) are taken as on a CPU.
        from memadvise.fake import AssumeScalars, new_fake_mode

        with new_fake_mode(), AssumeScalars():
            model = spec.build()
            inputs = spec.inputs(batch_size)
    elif dev.type == "meta":
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
            health=health,
            progress=progress,
        ) as tracer:
            tracer.run(inputs, spec.loss_fn, spec.train_step)
    except StepFailed as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise user_code_error(spec.path, f"{exc.what} raised", cause) from exc
    except BadStepResult as exc:
        raise ModelFileError(f"{spec.path}: {exc}") from None
    host = _host_memory(spec, inputs, dataloader_workers, pin_memory)
    if host is not None:
        return replace(tracer.profile, host_memory=host)
    return tracer.profile

"""The library's entry points: profile a model file, or a model already in memory."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from memadvise.capture.cuda_target import CudaTarget
from memadvise.capture.host_memory import estimate_host_memory, loader_settings, ram_warning
from memadvise.capture.hygiene import (
    check_grad_mode,
    preserved_input_grads,
    preserved_rng,
    preserved_simple_attributes,
)
from memadvise.capture.loader import (
    USER_MODULE_PREFIX,
    ModelSpec,
    split_target,
    user_code_error,
)
from memadvise.capture.targets import load_target
from memadvise.capture.tracer import Tracer
from memadvise.capture.track import track as track
from memadvise.capture.training import (
    MIXED_DTYPES,
    BadStepResult,
    StepFailed,
    TrainStep,
    apply_precision,
    move_to,
    resolve_device,
)
from memadvise.capture.usercode import passes_through, user_argv
from memadvise.capture.watchdog import MemoryWatchdog
from memadvise.errors import ModelFileError, UsageError
from memadvise.model.expert_load import ExpertLoad, parse_expert_load
from memadvise.model.limits import MAX_BATCH_SIZE, MAX_STEPS
from memadvise.model.profile import HostMemory, Mode, OptimizerName, Profile
from memadvise.model.program import Program, with_scaling


def _check_choices(batch_size: int, mode: str, optimizer: str, steps: int) -> None:
    for name, value in (("batch size", batch_size), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{name} must be a whole number, not {value!r}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    if batch_size > MAX_BATCH_SIZE:
        raise UsageError(f"batch size must be at most {MAX_BATCH_SIZE:,}, not {batch_size:,}")
    if steps < 1:
        raise UsageError(f"steps must be at least 1, not {steps}")
    if steps > MAX_STEPS:
        raise UsageError(f"steps must be at most {MAX_STEPS}, not {steps:,}")
    try:
        Mode(mode)
    except ValueError:
        raise UsageError(f"unknown mode {mode!r}; use train, inference or generate") from None
    try:
        OptimizerName(optimizer)
    except ValueError:
        choices = ", ".join(o.value for o in OptimizerName)
        raise UsageError(f"unknown optimizer {optimizer!r}; use one of {choices}") from None
    check_grad_mode(mode)


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
    precision: str = "fp32",
    train_loop: str = "tutorial",
    memory_limit: int | str | None = None,
    new_tokens: int | None = None,
    expert_load: str | None = None,
) -> Profile:
    """Trace ``steps`` training (or inference) steps of ``model`` on ``inputs`` where they already live.

    ``steps >= 3`` also scans for leaks; ``train_step(model, inputs, optimizer)`` replaces the default
    training step; ``health=True`` gathers numerical health. The model is left exactly as it was:
    hooks removed, parameters, buffers, gradients, train/eval flags and the RNG state restored.
    ``precision`` may be ``bf16-mixed`` or ``fp16-mixed`` (autocast); for pure 16-bit, cast the model.
    ``train_loop`` is ``tutorial`` (PyTorch's tutorial loop: output and loss alive through ``step()``)
    or ``lean`` (output and loss freed after ``backward()``). A model with real (not meta) parameters
    is traced under the memory watchdog, as in :func:`profile_file` (``memory_limit``).
    ``mode="generate"`` traces one greedy generation of ``new_tokens`` tokens (see
    :mod:`memadvise.capture.generate`). ``expert_load`` is the routing assumption of a model on the meta
    device with experts (see :func:`profile_file`).
    """
    generate = None
    if mode == Mode.GENERATE.value:
        from memadvise.capture.generate import GenerateSettings, prompt_batch

        if new_tokens is None:
            raise UsageError("mode generate needs new_tokens (tokens to generate)")
        generate, steps, batch_size = GenerateSettings(new_tokens), 1, batch_size or prompt_batch(inputs)
    elif new_tokens is not None:
        raise UsageError("new_tokens applies to mode generate")
    if precision not in ("fp32", *MIXED_DTYPES):
        raise UsageError(
            f"profile_model traces precision fp32, bf16-mixed or fp16-mixed, not {precision!r}; "
            "for pure 16-bit, cast the model and its inputs first"
        )
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"profile_model needs a torch.nn.Module, not {type(model).__name__}")
    _check_choices(max(batch_size, 1), mode, optimizer, steps)
    real = any(p.device.type != "meta" for p in model.parameters())
    watch = MemoryWatchdog(memory_limit) if real else None
    with (
        watch or nullcontext(),
        preserved_input_grads(inputs),
        preserved_simple_attributes(model),
        Tracer(
            model,
            progress=None if watch is None else watch.progress(),
            mode=mode,
            optimizer=optimizer,
            steps=steps,
            name=name or type(model).__name__,
            batch_size=batch_size,
            health=_health_allowed(health, model),
            precision=precision,
            train_loop=train_loop,
            generate=generate,
            expert_load=expert_load,
        ) as tracer,
    ):
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
    scaling: bool = True,
    precision: str = "fp32",
    seq_len: int | None = None,
    fsdp: int | None = None,
    train_loop: str = "tutorial",
    gpu: CudaTarget | None = None,
    memory_limit: int | str | None = None,
    new_tokens: int | None = None,
    cache: str = "dynamic",
    task: str | None = None,
    image_size: int | None = None,
    warn: Callable[[str], None] | None = None,
    expert_load: str | None = None,
) -> Profile:
    """Load ``model.py`` (or ``model.py:factory``), build the model and its batch, and trace it.

    ``target`` may also be a Hugging Face config folder or Hub name, ``timm:NAME`` or
    ``torchvision:NAME`` (see :mod:`memadvise.capture.targets`; ``task`` picks a Hugging Face head,
    ``image_size`` the side of their images).

    ``device="meta"`` traces fake: the model and its batch are built on the meta device, nothing is
    allocated, and memory follows ``target_device``'s kernels (default ``cuda``). The file's
    ``train_step()``, when defined, replaces the default training step; ``steps >= 3`` scans for
    leaks; ``health`` gathers numerical health (real traces only). ``dataloader_workers`` and
    ``pin_memory`` (else the file's ``make_dataloader()``) give the host-memory estimate.
    ``scaling`` traces the steps once more at twice the batch size so that what-if estimates can
    change the batch (see :mod:`memadvise.model.program`), and counts forward FLOPs per module on a fake copy
    (for checkpointing's recompute cost).
    ``precision`` traces in ``bf16``/``fp16`` (model and floating inputs cast) or under autocast
    (``bf16-mixed``/``fp16-mixed``). ``seq_len`` is passed to ``example_inputs(batch_size, seq_len=)``.
    ``fsdp=N`` traces one rank of FSDP2 over N fake ranks (fake CPU tensors; see
    :mod:`memadvise.capture.fsdp`). ``train_loop`` is ``tutorial`` (PyTorch's tutorial loop, the
    default: output and loss alive through ``step()`` and ``zero_grad()``) or ``lean`` (freed after
    ``backward()``); a model file's ``train_step()`` replaces both. ``gpu`` is the GPU whose kernels a
    fake CUDA-target trace follows (a :class:`~memadvise.capture.cuda_target.CudaTarget`; default: an
    H100, compute capability 9.0). A real (not fake) trace runs under a memory watchdog
    (:mod:`memadvise.capture.watchdog`): past ``memory_limit`` (bytes or a size such as ``"8GiB"``;
    default: what the machine has available, less a margin) it stops with a ``MemoryLimitError``.
    ``mode="generate"`` traces greedy generation of ``new_tokens``
    tokens with a ``dynamic`` or ``static`` KV ``cache`` (see :mod:`memadvise.capture.generate`).
    ``warn`` is called with one sentence before a real CPU run that may not fit in the RAM available
    (see :func:`~memadvise.capture.host_memory.ram_warning`).
    ``expert_load`` is a fake trace's routing assumption for a mixture-of-experts model that loops over
    its experts: ``uniform`` (the default), ``worst`` or ``skewed:F`` (see
    :mod:`memadvise.model.expert_load`).
    """
    sharding: AbstractContextManager[Any] = nullcontext(None)
    if fsdp is not None:
        if resolve_device(device).type != "meta" or target_device == "cuda":
            raise UsageError("--fsdp traces one rank fake on CPU kernels: add --fake --target-device cpu")
        from memadvise.capture.fsdp import fake_process_group

        device, target_device, sharding = "meta", "cpu", fake_process_group(fsdp)
    _check_choices(batch_size, mode, optimizer, steps)
    dev = resolve_device(device)
    if target_device is not None and dev.type != "meta":
        raise UsageError("target_device applies to fake tracing only (device='meta')")
    if target_device is not None and target_device not in ("cpu", "cuda"):
        raise UsageError(f"unknown target device {target_device!r}; use cpu or cuda")
    if gpu is not None and (dev.type != "meta" or target_device == "cpu"):
        raise UsageError("--gpu chooses the kernels of a fake CUDA trace: add --fake (target device cuda)")
    if health and dev.type == "meta":
        raise UsageError("--health needs real values; it cannot be combined with a fake (meta) trace")
    if expert_load is not None and dev.type != "meta":
        raise UsageError("--expert-load is the routing assumption of a fake trace: add --fake")
    load = parse_expert_load(expert_load) if dev.type == "meta" else None
    path = split_target(str(target))[0]
    with preserved_rng(), user_argv(path), _forgotten_module():
        watch = None if dev.type == "meta" else MemoryWatchdog(memory_limit)
        with sharding as mesh, watch or nullcontext():
            spec = load_target(target, task=task, image_size=image_size).with_seq_len(seq_len)
            if warn is not None and dev.type == "cpu":
                _check_ram(
                    spec,
                    warn,
                    precision,
                    mode=mode,
                    optimizer=optimizer,
                    batch_size=batch_size,
                    scaling=scaling,
                )
            generate = _generate_settings(spec, mode, new_tokens, cache)
            profile, inputs = _traced(
                spec,
                dev,
                target_device,
                batch_size,
                precision,
                mesh,
                scaling,
                progress if watch is None else watch.progress(progress),
                mode=mode,
                optimizer=optimizer,
                steps=steps,
                health=health,
                train_loop=train_loop,
                gpu=gpu,
                generate=generate,
                expert_load=load,
            )
        profile = replace(profile, seq_len=spec.seq_len, fsdp_ranks=fsdp or 0)
        host = _host_memory(spec, inputs, dataloader_workers, pin_memory)
        if host is not None:
            return replace(profile, host_memory=host)
        return profile


@contextmanager
def _forgotten_module() -> Iterator[None]:
    """Take the model file's module out of ``sys.modules`` again when profiling ends."""
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name.startswith(USER_MODULE_PREFIX):
                sys.modules.pop(name, None)


def _check_ram(
    spec: ModelSpec,
    warn: Callable[[str], None],
    precision: str,
    *,
    mode: str,
    optimizer: str,
    batch_size: int,
    scaling: bool,
) -> None:
    """Count the parameters on the meta device (nothing allocated) and warn when RAM may run short."""
    import psutil

    try:
        torch.manual_seed(0)
        with torch.device("meta"):
            model = spec.build()
        params = {id(p): p for p in model.parameters()}.values()
        param_bytes = sum(
            p.numel() * (2 if precision in ("bf16", "fp16") else p.element_size()) for p in params
        )
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta is simply not checked
        return
    message = ram_warning(
        param_bytes, mode, optimizer, batch_size, scaling, int(psutil.virtual_memory().available)
    )
    if message:
        warn(message)


def _traced(
    spec: ModelSpec,
    dev: torch.device,
    target_device: str | None,
    batch_size: int,
    precision: str,
    mesh: Any,
    scaling: bool,
    progress: Callable[[str, int], None] | None,
    *,
    mode: str,
    optimizer: str,
    steps: int,
    health: bool,
    train_loop: str = "tutorial",
    gpu: CudaTarget | None = None,
    generate: Any = None,
    expert_load: ExpertLoad | None = None,
) -> tuple[Profile, Any]:
    """Build, shard (with a device ``mesh``) and trace the model; with ``scaling``, fit batch scaling
    from a second trace at twice the batch and count FLOPs. Returns the profile and the batch."""
    torch.manual_seed(0)
    model, inputs = _build(spec, dev, target_device, batch_size)
    inputs, _ = apply_precision(model, inputs, precision)
    if mesh is not None:
        from memadvise.capture.fsdp import apply_fsdp

        apply_fsdp(model, mesh)
    settings: dict[str, Any] = {
        "precision": precision,
        "mode": mode,
        "optimizer": optimizer,
        "name": spec.name,
        "preserve_state": False,
        "target_device": target_device,
        "progress": progress,
        "train_loop": train_loop,
        "gpu": gpu,
    }
    if expert_load is not None:
        settings["expert_load"] = expert_load
    if generate is not None:
        settings["generate"] = generate
        steps = 1
    profile = _trace(spec, model, inputs, batch_size=batch_size, steps=steps, health=health, **settings)
    if generate is not None:
        second = None
        if scaling:
            second = _second_generation(profile, spec, model, dev, target_device, precision, settings)
        return (profile if second is None else replace(profile, generation=second)), inputs
    if not scaling or profile.program is None:
        return profile, inputs
    settings["progress"] = None if progress is None else _scaling_progress(progress)
    larger = 2 * batch_size
    second = _trace(
        spec,
        model,
        apply_precision(model, _inputs(spec, model, dev, target_device, larger), precision)[0],
        batch_size=larger,
        steps=min(steps, 2),
        **settings,
    )
    program = profile.program
    if second.program is not None:
        program = with_scaling(program, second.program)
    return replace(profile, program=_with_flops(program, spec, batch_size)), inputs


def _generate_settings(spec: ModelSpec, mode: str, new_tokens: int | None, cache: str) -> Any:
    """How to generate, for ``mode="generate"`` (``None`` otherwise)."""
    from memadvise.capture.generate import GenerateSettings

    if mode != Mode.GENERATE.value:
        if new_tokens is not None:
            raise UsageError("--new-tokens applies to --mode generate")
        return None
    if new_tokens is None:
        raise UsageError("--mode generate needs --new-tokens N (tokens to generate)")
    own = getattr(spec.module, "generate", None)
    return GenerateSettings(new_tokens=new_tokens, cache=cache, generate_fn=own if callable(own) else None)


def _second_generation(
    profile: Profile,
    spec: ModelSpec,
    model: Any,
    dev: torch.device,
    target_device: str | None,
    precision: str,
    settings: dict[str, Any],
) -> Any:
    """The profile's generation record with a second generation at twice the batch (its per-step
    figures fit how memory beside the cache and the weights grows with the batch); ``None`` when the
    profile has no generation record."""
    if profile.generation is None:
        return None
    larger = 2 * profile.batch_size
    settings = {**settings, "progress": None}
    second = _trace(
        spec,
        model,
        apply_precision(model, _inputs(spec, model, dev, target_device, larger), precision)[0],
        batch_size=larger,
        steps=1,
        **settings,
    )
    if second.generation is None:
        return None
    return replace(
        profile.generation,
        second_batch=larger,
        second_step_start=second.generation.step_start,
        second_step_peak=second.generation.step_peak,
        second_step_kv=second.generation.step_kv,
    )


def _build(spec: ModelSpec, dev: torch.device, target_device: str | None, batch_size: int) -> tuple[Any, Any]:
    """The model and its batch on ``dev`` (fake CPU tensors, meta tensors or real ones)."""
    if dev.type == "meta" and target_device == "cpu":
        # Fake CPU tensors: CPU-only code paths (RNN kernels, fused linear) are taken as on a CPU.
        from memadvise.capture.fake import AssumeScalars, new_fake_mode, swappable_parameters

        mode = new_fake_mode()
        with mode, AssumeScalars(), swappable_parameters(mode):
            model = spec.build()
            inputs = spec.inputs(batch_size)
        return model, inputs
    if dev.type == "meta":
        with torch.device("meta"):
            model = spec.build()
        return model.to(dev), _inputs(spec, model, dev, target_device, batch_size)
    model = spec.build().to(dev)
    return model, _inputs(spec, model, dev, target_device, batch_size)


def _inputs(
    spec: ModelSpec, model: Any, dev: torch.device, target_device: str | None, batch_size: int
) -> Any:
    """A batch of ``batch_size`` for ``model``, made the way its tensors were."""
    if dev.type == "meta" and target_device == "cpu":
        from memadvise.capture.fake import AssumeScalars, fake_mode_of

        with fake_mode_of(model), AssumeScalars():
            return spec.inputs(batch_size)
    if dev.type == "meta":
        with torch.device("meta"):
            return move_to(spec.inputs(batch_size), dev)
    return move_to(spec.inputs(batch_size), dev)


def _trace(spec: ModelSpec, model: Any, inputs: Any, **settings: Any) -> Profile:
    """One traced run of the model file's steps, with the file's errors turned into one sentence."""
    try:
        with Tracer(model, **settings) as tracer:
            tracer.run(inputs, spec.loss_fn, spec.train_step)
    except StepFailed as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise user_code_error(spec.path, f"{exc.what} raised", cause) from exc
    except BadStepResult as exc:
        raise ModelFileError(f"{spec.path}: {exc}") from None
    return tracer.profile


def _scaling_progress(progress: Callable[[str, int], None]) -> Callable[[str, int], None]:
    def report(phase: str, step: int) -> None:
        progress(f"{phase} (batch-scaling trace)", step)

    return report


def _with_flops(program: Program, spec: ModelSpec, batch_size: int) -> Program:
    """The program with forward FLOPs per module, counted on a fake copy (unchanged when that fails)."""
    from memadvise.capture.fake import AssumeScalars, new_fake_mode
    from memadvise.capture.flops import count_forward_flops

    try:
        torch.manual_seed(0)
        with new_fake_mode(), AssumeScalars():
            model = spec.build()
            model.train()
            by_module, total = count_forward_flops(model, spec.inputs(batch_size))
    except BaseException as exc:  # noqa: BLE001 - FLOPs are extra; a model fake tensors cannot run has none
        if passes_through(exc):
            raise
        return program
    return replace(program, module_flops=by_module, forward_flops=total)

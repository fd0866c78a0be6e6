"""Capture: run training steps under hooks and a recorder, return a ``Profile``.

The recorder says where allocation events come from: the allocator-level profiler for a real run
(:mod:`memadvise.capture.events`) or a dispatch mode over meta tensors for a fake run
(:mod:`memadvise.capture.fake`). The hooks are the same for both:

* forward pre/post hooks on every module open and close a module range, so each allocation is
  attributed to the innermost module running;
* ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor saved for backward (activations);
* gradient and optimizer-state storages are read after ``backward()`` and ``optimizer.step()``.

With more than two steps, the profile's peak still comes from the first two (the events of later steps
are cut off before it is built) and :mod:`memadvise.capture.leaks` scans all steps for memory that survives;
when it finds some, one extra step under :mod:`memadvise.capture.leak_sources` finds the user's source lines.
With ``health=True``, :mod:`memadvise.capture.health` reduces outputs and gradients during the first step,
outside the measured memory.

Leaving the tracer removes every hook, restores train/eval flags, parameters, buffers, existing
gradients and the RNG state, so the model computes exactly what it did before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

import torch

from memadvise.capture.allocations import (
    OUTSIDE,
    BaselineBlock,
    Capture,
    Events,
    build_profile,
    first_steps,
    release_baseline,
)
from memadvise.capture.cuda_target import CudaTarget
from memadvise.capture.events import AllocatorRecorder
from memadvise.capture.generate import GenerateSettings, GenerationRun
from memadvise.capture.health import HealthMonitor
from memadvise.capture.kernel_buffers import KernelBufferModel
from memadvise.capture.leaks import MIN_LEAK_STEPS, scan_leaks
from memadvise.capture.training import (
    MIXED_DTYPES,
    PhaseContext,
    TrainStep,
    check_train_loop,
    iter_tensors,
    make_optimizer,
    run_steps,
)
from memadvise.errors import UsageError
from memadvise.model.expert_load import ExpertLoad, parse_expert_load
from memadvise.model.profile import Category, Leak, Mode, OptimizerName, Phase, Profile
from memadvise.model.program import ParamInfo

PEAK_STEPS = 2  # the peak is the max over the first two steps: step 1 already holds optimizer state


class Recorder(Protocol):
    """Where allocation events come from (a real run's allocator, or a fake run's dispatch mode)."""

    fake: bool
    device: torch.device

    def key(self, t: torch.Tensor) -> tuple[int, int] | None: ...
    def watch(self, t: torch.Tensor) -> int | None: ...
    def open_module(self, name: str) -> Any: ...
    def open_phase(self, phase: str, step: int) -> Any: ...
    def close(self, handle: Any) -> None: ...
    def own_nodes(self, module: str, output: Any) -> None: ...
    def session(self) -> AbstractContextManager[None]: ...
    def events(self) -> Events: ...


@dataclass
class _ModelState:
    """What the tracer must put back: flags, values, gradients and RNG state."""

    training: dict[torch.nn.Module, bool] = field(default_factory=dict)
    values: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    grads: dict[torch.nn.Parameter, torch.Tensor | None] = field(default_factory=dict)
    cpu_rng: torch.Tensor | None = None
    cuda_rng: list[torch.Tensor] | None = None

    @classmethod
    def save(cls, model: torch.nn.Module, copy_values: bool) -> _ModelState:
        state = cls(training={m: m.training for m in model.modules()})
        if copy_values:
            with torch.no_grad():
                tensors = list(model.parameters()) + list(model.buffers())
                state.values = [(t, t.detach().clone()) for t in tensors]
        for p in model.parameters():
            state.grads[p] = p.grad
            p.grad = None
        state.cpu_rng = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state.cuda_rng = torch.cuda.get_rng_state_all()
        return state

    def restore(self) -> None:
        for module, flag in self.training.items():
            module.training = flag
        with torch.no_grad():
            for target, copy in self.values:
                target.copy_(copy)
        self.values.clear()
        for p, g in self.grads.items():
            p.grad = g
        if self.cpu_rng is not None:
            torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def _owner_names(model: torch.nn.Module) -> dict[int, str]:
    """id(parameter or buffer) → qualified name of the first module that registers it."""
    owners: dict[int, str] = {}
    for mod_name, module in model.named_modules():
        for _, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), mod_name)
        for _, b in module.named_buffers(recurse=False):
            owners.setdefault(id(b), mod_name)
    return owners


def baseline_blocks(
    model: torch.nn.Module,
    inputs: Any,
    recorder: Recorder,
    sizes: KernelBufferModel,
) -> list[BaselineBlock]:
    """Storages alive before the first step: parameters, buffers, tensor attributes, inputs (each
    watched by the recorder, which then sees it destroyed during the steps)."""
    blocks: dict[int, BaselineBlock] = {}

    def add(t: torch.Tensor, category: Category, module: str) -> None:
        if t.device.type != recorder.device.type:
            return
        key = recorder.key(t)
        if key is None or key[1] == 0 or key[0] in blocks:
            return
        recorder.watch(t)
        nbytes = sizes.round(key[1])
        blocks[key[0]] = BaselineBlock(
            ptr=key[0], nbytes=nbytes, category=category.value, module=module, dtype=dtype_name(t)
        )

    for mod_name, module in model.named_modules():
        for _, p in module.named_parameters(recurse=False):
            add(p, Category.PARAMETERS, mod_name)
    for mod_name, module in model.named_modules():
        for _, b in module.named_buffers(recurse=False):
            add(b, Category.BUFFERS, mod_name)
        for value in vars(module).values():  # tensors kept as plain attributes (caches, tables)
            for t in iter_tensors(value):
                add(t, Category.BUFFERS, mod_name)
    for t in iter_tensors(inputs):
        add(t, Category.INPUTS, "<inputs>")
    return list(blocks.values())


class Tracer:
    """Trace training (or inference) steps of ``model``; use as a context manager.

    A model on the ``meta`` device is traced fake: nothing is allocated, and memory follows the
    kernels of ``target_device`` (default ``cuda``) where they differ.

    >>> with Tracer(model, mode="train", optimizer="adamw") as tracer:   # doctest: +SKIP
    ...     tracer.run(inputs)
    >>> profile = tracer.profile                                         # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        mode: str = Mode.TRAIN.value,
        optimizer: str = OptimizerName.ADAMW.value,
        steps: int = 2,
        name: str = "model",
        batch_size: int = 0,
        preserve_state: bool = True,
        target_device: str | None = None,
        health: bool = False,
        progress: Callable[[str, int], None] | None = None,
        precision: str = "fp32",
        train_loop: str = "tutorial",
        gpu: CudaTarget | None = None,
        generate: GenerateSettings | None = None,
        expert_load: ExpertLoad | str | None = None,
    ) -> None:
        self.generate = generate
        self.train_loop = check_train_loop(train_loop)
        self.model = model
        self.precision = precision
        self._autocast = MIXED_DTYPES.get(precision)
        self._progress = progress
        self.mode = Mode(mode).value
        self.optimizer_name = OptimizerName(optimizer).value
        self.steps = steps
        self.name = name
        self.batch_size = batch_size
        device = _model_device(model)
        self._module_stack: list[str] = []
        self.recorder: Recorder
        from memadvise.capture.fake import fake_mode_of

        fake_mode = fake_mode_of(model)
        if fake_mode is not None:
            from memadvise.capture.fake import FakeRecorder

            self.target = device
            self.recorder = FakeRecorder(device, self._module_stack, fake_mode)
            preserve_state = False  # fake tensors hold no values to restore
        elif device.type == "meta":
            from memadvise.capture.fake import FakeRecorder

            self.target = torch.device(target_device or "cuda")
            self.recorder = FakeRecorder(self.target, self._module_stack, cuda_target=gpu)
            preserve_state = False  # meta tensors hold no values to restore
        else:
            self.target = device
            self.recorder = AllocatorRecorder(device)
        self.expert_load: ExpertLoad | None = None  # a fake trace's routing assumption
        if self.recorder.fake:
            from memadvise.capture.moe import expert_routing

            self.expert_load = parse_expert_load(expert_load)
            self.recorder.routing = expert_routing(model, self.expert_load)  # type: ignore[union-attr]
        elif expert_load is not None:
            raise UsageError("--expert-load is the routing assumption of a fake trace: add --fake")
        self.sizes = KernelBufferModel(self.target)
        self.preserve_state = preserve_state
        self._handles: list[Any] = []
        self._range_stack: list[Any] = []
        self._step = 0
        self._capture = Capture()
        self._state: _ModelState | None = None
        self._profile: Profile | None = None
        self._health = HealthMonitor() if health else None
        self._generation: GenerationRun | None = None

    # -- context management ----------------------------------------------------------------------
    def __enter__(self) -> Tracer:
        self._state = _ModelState.save(self.model, copy_values=self.preserve_state)
        self.install_hooks()
        return self

    def install_hooks(self) -> None:
        """Forward pre/post hooks on every module of the model (removed by ``__exit__``)."""
        for mod_name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(mod_name)))
            self._handles.append(module.register_forward_hook(self._post_hook(mod_name)))
        routing = getattr(self.recorder, "routing", None)
        if routing is not None:  # a fake trace of a mixture of experts: each block call routes afresh
            self._handles.extend(routing.install(self.model))

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._close_ranges()
        if self._state is not None:
            self._state.restore()
            self._state = None

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            raise RuntimeError("Tracer.run() has not completed")
        return self._profile

    # -- hooks -----------------------------------------------------------------------------------
    def _pre_hook(self, mod_name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._module_stack.append(mod_name)
            self._range_stack.append(self.recorder.open_module(mod_name))

        return hook

    def _post_hook(self, mod_name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if self._range_stack:
                self.recorder.close(self._range_stack.pop())
            if self._module_stack:
                self._module_stack.pop()
            self._capture.calls[self._step][mod_name] += 1
            self._capture.output_bytes[self._step][mod_name] += self._unique_bytes(output)
            self.recorder.own_nodes(mod_name, output)
            if self._health is not None:
                self._health.activation(mod_name, self._step, output)

        return hook

    def _unique_bytes(self, value: Any) -> int:
        seen: set[int] = set()
        total = 0
        for t in iter_tensors(value):
            key = self.recorder.key(t)
            if key is not None and key[0] not in seen:
                seen.add(key[0])
                total += key[1]
        return total

    def _close_ranges(self) -> None:
        while self._range_stack:
            self.recorder.close(self._range_stack.pop())
        self._module_stack.clear()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = self.recorder.key(t)
        if key is not None:
            where = self._module_stack[-1] if self._module_stack else OUTSIDE[Phase.FORWARD.value]
            if key[0] not in self._capture.saved[self._step]:
                self._capture.saved[self._step][key[0]] = where
                self._capture.dtypes[(Category.ACTIVATIONS.value, self._step, key[0])] = dtype_name(t)
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @contextmanager
    def _phase(self, phase: Phase, step: int) -> Iterator[None]:
        self._step = step
        if self._progress is not None:
            self._progress(phase.value, step)
        handle = self.recorder.open_phase(phase.value, step)
        try:
            yield
        finally:
            self.recorder.close(handle)

    # -- running ---------------------------------------------------------------------------------
    def run(
        self,
        inputs: Any,
        loss_fn: Callable[[Any, Any], Any] | None = None,
        train_step: TrainStep | None = None,
    ) -> Profile:
        """Run the steps on ``inputs`` (already on the model's device) and build the profile.

        ``train_step(model, inputs, optimizer)`` replaces the default training step.
        """
        optimizer: torch.optim.Optimizer | None = None
        phase: PhaseContext = self._phase
        self.start(inputs)
        try:
            # Built inside the recording: some optimizers (Adagrad) allocate their state here.
            if self.mode == "train":
                optimizer = make_optimizer(self.optimizer_name, self.model.parameters())
            if self.mode == Mode.GENERATE.value:
                self._generation = self._generate(inputs, phase)
            else:
                run_steps(
                    self.model,
                    inputs,
                    mode=self.mode,
                    optimizer=optimizer,
                    loss_fn=loss_fn,
                    steps=self.steps,
                    phase=phase,
                    after_backward=self.after_backward,
                    after_optimizer=self.after_optimizer,
                    train_step=train_step,
                    autocast=self._autocast,
                    loop=self.train_loop,
                )
        finally:
            self.stop()

        held = [optimizer]  # released once the leak sources are found: no optimizer state beyond that

        def sources(leaks: tuple[Leak, ...]) -> tuple[Leak, ...]:
            return self._leak_sources(leaks, inputs, held[0], loss_fn, train_step)

        optimizer = None
        return self.finish(sources, train_step=train_step is not None, release=held.clear)

    # -- the recording, in parts (``run`` above, and code that runs its own steps between them) --------
    def start(self, inputs: Any, extra_baseline: list[BaselineBlock] | None = None) -> None:
        """Note what is alive (parameters, buffers, ``inputs``, ``extra_baseline``) and start recording."""
        self._owners = _owner_names(self.model)
        self._param_names = {id(p): self._owners.get(id(p), "") for p in self.model.parameters()}
        self._baseline = baseline_blocks(self.model, inputs, self.recorder, self.sizes)
        known = {b.ptr for b in self._baseline}
        self._baseline += [b for b in extra_baseline or [] if b.ptr not in known]
        self._recording = ExitStack()
        self._recording.enter_context(self.recorder.session())
        self._recording.enter_context(torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack))

    def stop(self) -> None:
        """Stop recording (the events stay with the recorder until :meth:`finish`)."""
        try:
            self._recording.close()
        finally:
            self._close_ranges()

    def _remember(self, category: Category, step: int, p: torch.Tensor, t: torch.Tensor) -> None:
        by_step = self._capture.grads if category is Category.GRADIENTS else self._capture.optimizer_state
        into = by_step[step]
        key = self.recorder.key(t)
        if key is not None and t.device.type == self.recorder.device.type and key[0] not in into:
            into[key[0]] = (self._param_names.get(id(p), ""), self.sizes.round(key[1]))
            self._capture.dtypes[(category.value, step, key[0])] = dtype_name(t)

    def after_backward(self, step: int) -> None:
        """Note the gradients alive after a backward pass of ``step``."""
        for p in self.model.parameters():
            if p.grad is not None:
                self._remember(Category.GRADIENTS, step, p, p.grad)
        if self._health is not None:
            self._health.gradients(step, self.model)

    def after_optimizer(self, step: int, opt: torch.optim.Optimizer) -> None:
        """Note the optimizer state alive after ``opt.step()`` of ``step``."""
        for p, state in opt.state.items():
            for t in iter_tensors(dict(state)):
                self._remember(Category.OPTIMIZER_STATE, step, p, t)

    def finish(
        self,
        sources: Callable[[tuple[Leak, ...]], tuple[Leak, ...]] | None = None,
        *,
        train_step: bool = False,
        release: Callable[[], None] | None = None,
        more_baseline: Callable[[Events], list[BaselineBlock]] | None = None,
    ) -> Profile:
        """Build the profile of the recorded steps (``self.steps`` of them); ``sources`` finds the
        source lines of leaks (real traces only); ``more_baseline(events)`` adds storages found alive
        before the recording only once it has ended. Baseline storages seen destroyed during the
        recording are freed there (:func:`release_baseline`)."""
        recorder = self.recorder
        baseline = self._baseline
        events = recorder.events()
        if more_baseline is not None:
            known = {b.ptr for b in baseline}
            baseline = baseline + [b for b in more_baseline(events) if b.ptr not in known]
        events = release_baseline(events, baseline)
        extra: dict[str, Any] = {"steps": self.steps}
        if self.steps >= MIN_LEAK_STEPS:
            scan = scan_leaks(events, self.steps, baseline)
            leaks = scan.leaks
            if leaks and not recorder.fake and sources is not None:
                leaks = sources(leaks)
            extra.update(
                live_after_step=scan.live_after_step, leaks=leaks, leak_bytes_per_step=scan.bytes_per_step
            )
        if release is not None:
            release()
        if self._health is not None:
            extra["health"] = self._health.report()
        assumptions = getattr(recorder, "assumptions", {})
        profile = build_profile(
            first_steps(events, PEAK_STEPS),
            capture=self._capture,
            baseline=baseline,
            layers=_layer_table(self.model),
            meta={
                "model": self.name,
                "batch_size": self.batch_size,
                "mode": self.mode,
                "device": str(self.target),
                "trace": "fake" if recorder.fake else "real",
                "assumptions": tuple(f"{text} ({n}x)" for text, n in assumptions.items()),
                "optimizer": self.optimizer_name if self.mode == "train" else OptimizerName.NONE.value,
                "precision": self.precision,
                "train_loop": "" if self.mode != "train" else "train_step" if train_step else self.train_loop,
                "steps": min(self.steps, PEAK_STEPS),
                "torch_version": torch.__version__,
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        if profile.program is not None:
            extra["program"] = replace(profile.program, parameters=_parameters(self.model, self._owners))
        if self._generation is not None:
            extra.update(self._generation_figures(self._generation, events, baseline))
        from memadvise.capture.moe import moe_note

        note = moe_note(self.model, profile, self.expert_load)
        if note is not None:
            extra["assumptions"] = (*profile.assumptions, note)
        self._profile = replace(profile, **extra)
        return self._profile

    def _generate(self, inputs: Any, phase: PhaseContext) -> GenerationRun:
        from memadvise.capture.generate import run_generation
        from memadvise.capture.training import _autocast

        if self.generate is None:
            raise ValueError("mode generate needs GenerateSettings")
        assumed = getattr(self.recorder, "assumed", None)
        with _autocast(self.model, self._autocast)():  # --precision bf16-mixed/fp16-mixed
            return run_generation(
                self.model,
                inputs,
                self.generate,
                phase=phase,
                key=self.recorder.key,
                fake=self.recorder.fake,
                note=None if assumed is None else assumed.note,
            )

    def _generation_figures(
        self, run: GenerationRun, events: Events, baseline: list[BaselineBlock]
    ) -> dict[str, Any]:
        """The profile's ``generation`` and ``kv_cache_bytes`` (none for a model without a KV config)."""
        from memadvise.capture.generate import build_generation, kv_layout, step_figures

        layout = kv_layout(self.model)
        if layout is None or self.generate is None:
            return {}
        starts, peaks = step_figures(events, sum(b.nbytes for b in baseline))
        weights = [b for b in baseline if b.category in (Category.PARAMETERS.value, Category.BUFFERS.value)]
        floats = [p for p in self.model.parameters() if p.is_floating_point()]
        generation = build_generation(
            run,
            self.generate,
            layout,
            batch_size=self.batch_size,
            kv_itemsize=run.kv_itemsize or (floats[0].element_size() if floats else 4),
            weights_bytes=sum(b.nbytes for b in weights),
            weights_itemsize=floats[0].element_size() if floats else 4,
            starts=starts,
            peaks=peaks,
        )
        return {"generation": generation, "kv_cache_bytes": generation.kv_cache_bytes}

    def _leak_sources(
        self,
        leaks: tuple[Leak, ...],
        inputs: Any,
        optimizer: torch.optim.Optimizer | None,
        loss_fn: Callable[[Any, Any], Any] | None,
        train_step: TrainStep | None,
    ) -> tuple[Leak, ...]:
        """One more step, outside the recorded events, to find the source lines of the leaks."""
        from memadvise.capture.leak_sources import find_sources

        self._step = self.steps

        def one_step(_mode: Any) -> None:
            run_steps(
                self.model,
                inputs,
                mode=self.mode,
                optimizer=optimizer,
                loss_fn=loss_fn,
                steps=1,
                train_step=train_step,
                autocast=self._autocast,
            )

        try:
            return find_sources(leaks, one_step, self._module_stack)
        finally:
            self._close_ranges()


def _parameters(model: torch.nn.Module, owners: dict[int, str]) -> tuple[ParamInfo, ...]:
    """Every parameter once, in ``model.parameters()`` order (the order optimizers update them)."""
    names = {id(p): n for n, p in model.named_parameters()}
    users: dict[int, list[str]] = {}
    for mod_name, module in model.named_modules():
        for _, p in module.named_parameters(recurse=False):
            users.setdefault(id(p), []).append(mod_name)
    return tuple(
        ParamInfo(
            module=owners.get(id(p), ""),
            name=names.get(id(p), "").rsplit(".", 1)[-1],
            shape=tuple(p.shape),
            dtype=dtype_name(p),
            itemsize=p.element_size(),
            trainable=p.requires_grad,
            users=tuple(users.get(id(p), ())),
        )
        for p in model.parameters()
    )


def dtype_name(t: torch.Tensor) -> str:
    """``float32``, ``bfloat16``, ``int64``… (the name without ``torch.``)."""
    return str(t.dtype).removeprefix("torch.")


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _layer_table(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(qualified name, class name) of every module, root first."""
    return [(name, type(module).__name__) for name, module in model.named_modules()]

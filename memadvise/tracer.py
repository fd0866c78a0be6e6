"""Capture: run training steps under hooks and the allocator-level profiler, return a ``Profile``.

What is hooked, and why:

* ``torch.profiler`` with ``profile_memory=True`` reports every allocation and free made through the
  device allocator, including buffers that kernels allocate internally without passing through the
  dispatcher (RNN and convolution workspaces, for instance). Its running sum *is* live memory, so the
  peak is exact, not re-derived from shapes.
* Forward pre/post hooks on every module open and close a profiler range named after the module, so
  each allocation is attributed to the innermost module running; backward allocations are attributed
  through the autograd sequence number that links a backward node to the forward operator (and so the
  module) that created it.
* ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor saved for backward (activations).
* Gradient and optimizer-state storages are read after ``backward()`` and ``optimizer.step()``.

Leaving the tracer removes every hook, restores train/eval flags, parameters, buffers, existing
gradients and the RNG state, so the model computes exactly what it did before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from memadvise.allocations import BaselineBlock, Capture, build_profile
from memadvise.profile import Category, Mode, OptimizerName, Phase, Profile
from memadvise.training import PhaseContext, iter_tensors, make_optimizer, run_steps

# Kineto logs its own start/stop lines on stderr; keep the user's terminal clean.
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

MODULE_RANGE = "memadvise.module::"
PHASE_RANGE = "memadvise.phase::"


def storage_key(t: torch.Tensor) -> tuple[int, int] | None:
    """(data pointer, bytes) of the storage behind ``t``; ``None`` for tensors without one."""
    try:
        st = t.untyped_storage()
        return st.data_ptr(), st.nbytes()
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines written straight to file descriptor 2 (profiler start/stop)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


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


CUDA_BLOCK_ROUNDING = 512


def allocator_size(nbytes: int, device: torch.device) -> int:
    """Bytes the device allocator really takes for a request of ``nbytes``.

    The CPU allocator reports requested sizes; PyTorch's CUDA caching allocator rounds every request
    up to a multiple of 512 bytes (its allocation events report the rounded size), so memory that
    existed before the trace is counted the same way.
    """
    if device.type == "cuda":
        return max(CUDA_BLOCK_ROUNDING, -(-nbytes // CUDA_BLOCK_ROUNDING) * CUDA_BLOCK_ROUNDING)
    return nbytes


def baseline_blocks(model: torch.nn.Module, inputs: Any, device: torch.device) -> list[BaselineBlock]:
    """Storages alive before the first step: parameters, buffers, tensor attributes, inputs."""
    blocks: dict[int, BaselineBlock] = {}

    def add(t: torch.Tensor, category: Category, module: str) -> None:
        if t.device.type != device.type:
            return
        key = storage_key(t)
        if key is None or key[1] == 0 or key[0] in blocks:
            return
        nbytes = allocator_size(key[1], device)
        blocks[key[0]] = BaselineBlock(ptr=key[0], nbytes=nbytes, category=category.value, module=module)

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
    ) -> None:
        self.model = model
        self.mode = Mode(mode).value
        self.optimizer_name = OptimizerName(optimizer).value
        self.steps = steps
        self.name = name
        self.batch_size = batch_size
        self.preserve_state = preserve_state
        self.device = _model_device(model)
        self._handles: list[Any] = []
        self._module_stack: list[str] = []
        self._range_stack: list[Any] = []
        self._step = 0
        self._capture = Capture()
        self._state: _ModelState | None = None
        self._profile: Profile | None = None

    # -- context management ----------------------------------------------------------------------
    def __enter__(self) -> Tracer:
        self._state = _ModelState.save(self.model, copy_values=self.preserve_state)
        for mod_name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(mod_name)))
            self._handles.append(module.register_forward_hook(self._post_hook(mod_name)))
        return self

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
            rf = torch.autograd.profiler.record_function(MODULE_RANGE + mod_name)
            rf.__enter__()
            self._range_stack.append(rf)

        return hook

    def _post_hook(self, mod_name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if self._range_stack:
                self._range_stack.pop().__exit__(None, None, None)
            if self._module_stack:
                self._module_stack.pop()
            seen: set[int] = set()
            total = 0
            for t in iter_tensors(output):
                key = storage_key(t)
                if key is not None and key[0] not in seen:
                    seen.add(key[0])
                    total += key[1]
            self._capture.calls[self._step][mod_name] += 1
            self._capture.output_bytes[self._step][mod_name] += total

        return hook

    def _close_ranges(self) -> None:
        while self._range_stack:
            self._range_stack.pop().__exit__(None, None, None)
        self._module_stack.clear()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key is not None:
            where = self._module_stack[-1] if self._module_stack else ""
            self._capture.saved[self._step].setdefault(key[0], where)
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @contextmanager
    def _phase(self, phase: Phase, step: int) -> Iterator[None]:
        self._step = step
        with torch.autograd.profiler.record_function(f"{PHASE_RANGE}{phase.value}::{step}"):
            yield

    # -- running ---------------------------------------------------------------------------------
    def run(self, inputs: Any, loss_fn: Callable[[Any, Any], Any] | None = None) -> Profile:
        """Run the steps on ``inputs`` (already on the model's device) and build the profile."""
        owners = _owner_names(self.model)
        baseline = baseline_blocks(self.model, inputs, self.device)
        optimizer = (
            make_optimizer(self.optimizer_name, self.model.parameters()) if self.mode == "train" else None
        )
        param_names = {id(p): owners.get(id(p), "") for p in self.model.parameters()}

        def after_backward(step: int) -> None:
            grads = self._capture.grads[step]
            for p in self.model.parameters():
                if p.grad is not None:
                    key = storage_key(p.grad)
                    if key is not None:
                        grads.setdefault(key[0], (param_names.get(id(p), ""), key[1]))

        def after_optimizer(step: int) -> None:
            if optimizer is None:
                return
            states = self._capture.optimizer_state[step]
            for p, state in optimizer.state.items():
                for t in iter_tensors(dict(state)):
                    key = storage_key(t)
                    if key is not None and t.device.type == self.device.type:
                        states.setdefault(key[0], (param_names.get(id(p), ""), key[1]))

        phase: PhaseContext = self._phase
        # Allocation events of every device are recorded on the CPU side; CUDA kernel tracing
        # (CUPTI) would only add cost.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        with quiet_native_stderr():
            prof.start()
        try:
            with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
                run_steps(
                    self.model,
                    inputs,
                    mode=self.mode,
                    optimizer=optimizer,
                    loss_fn=loss_fn,
                    steps=self.steps,
                    phase=phase,
                    after_backward=after_backward,
                    after_optimizer=after_optimizer,
                )
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        finally:
            self._close_ranges()
            with quiet_native_stderr():
                prof.stop()
        optimizer = None  # the trace holds no optimizer state beyond this point
        tree = _event_tree(prof)
        self._profile = build_profile(
            tree,
            capture=self._capture,
            baseline=baseline,
            layers=_layer_table(self.model),
            meta={
                "model": self.name,
                "batch_size": self.batch_size,
                "mode": self.mode,
                "device": str(self.device),
                "optimizer": self.optimizer_name if self.mode == "train" else OptimizerName.NONE.value,
                "steps": self.steps,
                "torch_version": torch.__version__,
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            device=self.device,
            module_prefix=MODULE_RANGE,
            phase_prefix=PHASE_RANGE,
        )
        return self._profile


def _event_tree(prof: torch.profiler.profile) -> list[Any]:
    """The profiler's nested events (operators, ranges, allocations)."""
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None:
        raise RuntimeError("the profiler returned no results")
    return list(results.experimental_event_tree())


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _layer_table(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(qualified name, class name) of every module, root first."""
    return [(name, type(module).__name__) for name, module in model.named_modules()]

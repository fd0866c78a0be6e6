"""What a profiling call must leave as it found it in the caller's process, and the caller's states it
cannot run in.

- the random number generators (torch CPU and CUDA, Python's ``random``, NumPy's global one): memadvise
  seeds torch to build reproducible models, and the user's code may draw or reseed;
- gradients memadvise's backward passes put on the caller's input tensors;
- an active ``torch.profiler.profile()`` of the caller: memadvise records through the profiler and would
  switch the caller's off, so a real trace refuses to run inside one;
- ``torch.no_grad()`` / ``torch.inference_mode()``: a training step needs autograd.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from memadvise.errors import UsageError


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the global random number generators' states when the block ends."""
    cpu = torch.get_rng_state()
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    py = random.getstate()
    numpy = sys.modules.get("numpy")
    np_state = numpy.random.get_state() if numpy is not None else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        random.setstate(py)
        if numpy is not None and np_state is not None:
            numpy.random.set_state(np_state)


@contextmanager
def preserved_input_grads(inputs: Any) -> Iterator[None]:
    """Give the leaf tensors of ``inputs`` that require grad their own ``.grad`` back afterwards (the
    traced backward passes accumulate into it)."""
    from memadvise.capture.training import iter_tensors

    leaves = [t for t in iter_tensors(inputs) if t.requires_grad and t.is_leaf]
    saved = [(t, t.grad) for t in leaves]
    for tensor in leaves:
        tensor.grad = None  # else backward accumulates into the caller's own gradient tensor
    try:
        yield
    finally:
        for tensor, grad in saved:
            tensor.grad = grad


SIMPLE_TYPES = (int, float, bool, str, type(None))


@contextmanager
def preserved_simple_attributes(model: torch.nn.Module) -> Iterator[None]:
    """Give every module's plain Python attributes (numbers, strings, flags, ``None``) the values they
    had before (a ``forward`` that counts its calls, say). Containers and other objects are not copied."""
    saved = [
        (module, {k: v for k, v in vars(module).items() if isinstance(v, SIMPLE_TYPES)})
        for module in model.modules()
    ]
    try:
        yield
    finally:
        for module, values in saved:
            module.__dict__.update(values)


def profiler_active() -> bool:
    """Is a ``torch.profiler.profile()`` (or autograd profiler) recording in this thread?"""
    if getattr(torch.autograd.profiler, "_is_profiler_enabled", False):
        return True
    enabled = getattr(torch._C._autograd, "_profiler_enabled", None)
    try:
        return bool(enabled()) if callable(enabled) else False
    except RuntimeError:
        return False


def refuse_active_profiler() -> None:
    if profiler_active():
        raise UsageError(
            "memadvise records allocations through torch.profiler and cannot run inside an active "
            "torch.profiler.profile() (it would switch yours off): profile outside it, or trace fake "
            "(device='meta')"
        )


def check_grad_mode(mode: str) -> None:
    """A training profile needs autograd: refuse, naming the cause, when the caller turned it off."""
    if mode == "train" and not torch.is_grad_enabled():
        where = "torch.inference_mode()" if torch.is_inference_mode_enabled() else "torch.no_grad()"
        raise UsageError(
            f"a training profile needs autograd, but memadvise was called inside {where}: "
            "call it outside, or profile mode='inference'"
        )

"""A second truth that is not the allocator's own events: allocations of known size, planted on purpose.

tests/integration/models/planted.py allocates exactly ``FORWARD_SAVED`` bytes in a module's forward pass
(saved for backward by a custom autograd Function), ``BACKWARD_SCRATCH`` bytes in its backward pass, and
``OPTIMIZER_STATE`` + ``OPTIMIZER_SCRATCH`` bytes in a custom optimizer's ``step()``. The sizes are
written in the file, not measured, so each must come out of memadvise's profile to the byte: in the
right module, category and phase, and in the peak (which the optimizer's planted bytes decide).

Memory that never passes through PyTorch's allocator (a NumPy buffer wrapped by ``torch.from_numpy``)
is the other side: no allocator event, so memadvise cannot see it; the last test states that.
"""

from __future__ import annotations

import functools
import tracemalloc
from pathlib import Path
from typing import Any

import groundtruth
import numpy as np
import pytest
import torch
from torch import nn

import memadvise
from memadvise.model.enums import CATEGORIES
from memadvise.model.profile import Profile

PLANTED = Path(__file__).resolve().parent / "models" / "planted.py"
planted: Any = groundtruth.load_model_file(PLANTED)  # the planted sizes, read from the file
CUDA_BLOCK = 512

@functools.cache
def _profile(trace: str) -> Profile:
    options: dict[str, Any] = {"optimizer": "none", "scaling": False}
    if trace == "real":
        return memadvise.profile_file(str(PLANTED), device="cpu", **options)
    if trace == "fake-cpu":
        return memadvise.profile_file(str(PLANTED), device="meta", target_device="cpu", **options)
    return memadvise.profile_file(str(PLANTED), device="meta", **options)


def _size(trace: str, nbytes: int) -> int:
    """What the traced target's allocator takes for ``nbytes`` (the CUDA caching allocator: 512 B blocks)."""
    return -(-nbytes // CUDA_BLOCK) * CUDA_BLOCK if trace == "fake-cuda" else nbytes


def _blocks(prof: Profile, nbytes: int) -> list[dict[str, Any]]:
    """The program's blocks of exactly ``nbytes``, with their category, module, phase and step."""
    program = prof.program
    assert program is not None
    found = []
    for i, size in enumerate(program.size):
        if size != nbytes:
            continue
        alloc, free = program.alloc[i], program.free[i]
        phase = next((p for p in program.phases if p[2] <= alloc < p[3]), None)
        freed = next((p[0] for p in program.phases if p[2] <= free < p[3]), None) if free >= 0 else None
        found.append(
            {
                "category": CATEGORIES[program.category[i]],
                "module": program.modules[program.module[i]],
                "phase": phase[0] if phase else None,
                "step": phase[1] if phase else None,
                "freed_in": freed,
            }
        )
    return found


# A real trace; a fake one on CPU kernels; a fake one for a CUDA target (the default fake).
TRACES = ["real", "fake-cpu", "fake-cuda"]


@pytest.mark.parametrize("trace", TRACES)
def test_forward_allocation_is_an_activation_of_its_module(trace: str) -> None:
    prof = _profile(trace)
    size = _size(trace, planted.FORWARD_SAVED)
    blocks = _blocks(prof, size)
    assert [(b["category"], b["module"], b["phase"], b["freed_in"]) for b in blocks] == [
        ("activations", "1", "forward", "backward")
    ] * 2, blocks
    (layer,) = [layer for layer in prof.layers if layer.name == "1"]
    assert layer.activation_bytes == size
    assert prof.activation_bytes == size


@pytest.mark.parametrize("trace", TRACES)
def test_backward_allocation_is_a_temporary_of_its_module(trace: str) -> None:
    prof = _profile(trace)
    size = _size(trace, planted.BACKWARD_SCRATCH)
    blocks = _blocks(prof, size)
    assert [(b["category"], b["phase"], b["freed_in"]) for b in blocks] == [
        ("temporaries", "backward", "backward")
    ] * 2, blocks
    assert [b["module"] for b in blocks] == ["1", "1"]
    (layer,) = [layer for layer in prof.layers if layer.name == "1"]
    assert layer.backward_temp_bytes == size


@pytest.mark.parametrize("trace", TRACES)
def test_optimizer_allocations_are_state_and_scratch(trace: str) -> None:
    prof = _profile(trace)
    state = _blocks(prof, _size(trace, planted.OPTIMIZER_STATE))
    assert [(b["category"], b["module"], b["phase"], b["step"], b["freed_in"]) for b in state] == [
        ("optimizer_state", "1", "optimizer", 0, None)
    ]
    scratch = _blocks(prof, _size(trace, planted.OPTIMIZER_SCRATCH))
    assert [(b["category"], b["phase"], b["freed_in"]) for b in scratch] == [
        ("temporaries", "optimizer", "optimizer")
    ] * 2
    assert prof.optimizer_state_bytes == _size(trace, planted.OPTIMIZER_STATE)


@pytest.mark.parametrize("trace", TRACES)
def test_the_peak_is_the_planted_optimizer_bytes_plus_the_small_tensors(trace: str) -> None:
    """Weight, gradient, input and output (16 floats each) and the loss are alive beside the optimizer's
    state and scratch; nothing else is."""
    prof = _profile(trace)
    small = (
        planted.SMALL_BYTES if trace != "fake-cuda" else 4 * _size(trace, 4 * planted.WIDTH) + _size(trace, 4)
    )
    expected = _size(trace, planted.OPTIMIZER_STATE) + _size(trace, planted.OPTIMIZER_SCRATCH) + small
    assert prof.peak_phase == "optimizer"
    assert prof.peak_bytes == expected
    assert prof.peak_breakdown["optimizer_state"] == _size(trace, planted.OPTIMIZER_STATE)


# --------------------------------------------------------------------------- outside the allocator

NUMPY_BYTES = 100 * 10**6


class NumpyBuffer(nn.Module):
    """Adds a 100 MB host buffer that NumPy allocated (wrapped by ``torch.from_numpy``, no copy)."""

    def __init__(self, from_numpy: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)
        self.from_numpy = from_numpy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_numpy:
            buffer = torch.from_numpy(np.ones(NUMPY_BYTES, dtype=np.uint8))
        else:
            buffer = torch.ones(NUMPY_BYTES, dtype=torch.uint8)
        return self.linear(x) + buffer[:16].float()


def test_memory_outside_pytorchs_allocator_is_not_seen() -> None:
    """Known blind spot, stated as it is: a 100 MB NumPy buffer used in forward is real host memory
    (tracemalloc, which NumPy reports to, sees it) but never passes through PyTorch's allocator, so
    memadvise's profile leaves it out; the same buffer made by ``torch.ones`` is counted."""
    x = torch.randn(4, 16)
    tracemalloc.start()
    try:
        with torch.no_grad():
            NumpyBuffer(from_numpy=True)(x)
        _, host_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert host_peak >= NUMPY_BYTES

    hidden = memadvise.profile_model(NumpyBuffer(from_numpy=True), x, mode="inference")
    seen = memadvise.profile_model(NumpyBuffer(from_numpy=False), x, mode="inference")
    print(f"peak with the NumPy buffer {hidden.peak_bytes:,} B, with a torch buffer {seen.peak_bytes:,} B")
    assert seen.peak_bytes >= NUMPY_BYTES
    assert hidden.peak_bytes < NUMPY_BYTES // 1000

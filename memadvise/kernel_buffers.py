"""Memory that kernels use without passing through the dispatcher, modelled for fake runs.

A real run sees these buffers in the allocator's events; a fake (meta) run must add them by rule.
Each rule below names the kernel, the target device and the measurement it was derived from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

import torch

CUDA_BLOCK_ROUNDING = 512


class TransientSink(Protocol):
    def transient(self, nbytes: int, op: str) -> Any: ...


class KernelBufferModel:
    """Rules for one target device: allocation rounding and kernel-internal buffers."""

    def __init__(self, target: torch.device) -> None:
        self.target = target

    def round(self, nbytes: int) -> int:
        """Bytes the target's allocator takes for ``nbytes`` (CUDA rounds up to 512-byte blocks)."""
        if self.target.type == "cuda" and nbytes > 0:
            return max(CUDA_BLOCK_ROUNDING, -(-nbytes // CUDA_BLOCK_ROUNDING) * CUDA_BLOCK_ROUNDING)
        return nbytes

    @contextmanager
    def around(self, sink: TransientSink, func: Any, args: Any, kwargs: Any) -> Iterator[None]:
        """Open the transient buffers ``func`` would allocate internally on the target."""
        with ExitStack() as stack:
            for nbytes, label in self.buffers(func, args, kwargs):
                stack.enter_context(sink.transient(nbytes, label))
            yield

    def buffers(self, func: Any, args: Any, kwargs: Any) -> list[tuple[int, str]]:
        return []

"""The user's source line of leaked tensors: one extra step under a dispatch mode, only when a leak was found.

The traced steps record module and operator, not Python stacks (``with_stack`` would slow every traced
step and reshape the profiler's event tree). So, once the events show a leak, the tracer runs one more
step (outside the recorded events) under :class:`SourceMode`: every operator output is remembered with
a weak reference, the module running and the innermost frame of the user's code. The outputs still
alive after that step are the step's survivors; each leak is matched to a survivor of the same module
(preferring the same operator and size) and takes its ``file:line``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from memadvise.capture.training import iter_tensors
from memadvise.model.profile import Leak

OUTSIDE_MODULES = "<outside>"

_SKIP = tuple(
    str(Path(p).resolve()) + os.sep
    for p in (
        os.path.dirname(torch.__file__),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # the memadvise package
        sysconfig.get_paths()["stdlib"],
    )
)


def user_frame(start: Any) -> str:
    """``file:line`` of the innermost frame outside torch, memadvise and the standard library."""
    frame = start
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<"):
            resolved = str(Path(filename).resolve())
            if not resolved.startswith(_SKIP):
                try:
                    shown = os.path.relpath(resolved)
                except ValueError:
                    shown = resolved
                if shown.startswith(".."):
                    shown = resolved
                return f"{shown}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


@dataclass
class _Output:
    ref: weakref.ref[torch.Tensor]
    module: str
    op: str
    nbytes: int
    source: str


class SourceMode(TorchDispatchMode):
    """Remembers where every operator output was created (module, operator, user frame)."""

    def __init__(self, module_stack: list[str]) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.outputs: list[_Output] = []

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Any = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        module = self.module_stack[-1] if self.module_stack else OUTSIDE_MODULES
        source = ""
        for t in iter_tensors(out):
            if not source:
                source = user_frame(sys._getframe(1))
            try:
                ref = weakref.ref(t)
                nbytes = t.untyped_storage().nbytes()
            except (TypeError, RuntimeError):
                continue
            self.outputs.append(_Output(ref, module, func._schema.name, nbytes, source))
        return out

    def survivors(self) -> list[_Output]:
        return [o for o in self.outputs if o.ref() is not None and o.source]


def find_sources(
    leaks: tuple[Leak, ...], run_step: Callable[[SourceMode], None], stack: list[str]
) -> tuple[Leak, ...]:
    """Run one step under :class:`SourceMode` and give each leak the source line of a matching survivor."""
    mode = SourceMode(stack)
    with mode:
        run_step(mode)
    survivors = mode.survivors()
    found = []
    for leak in leaks:
        module = OUTSIDE_MODULES if leak.module.startswith("<") else leak.module
        same = [o for o in survivors if o.module == module]
        same.sort(key=lambda o: (o.op != leak.op, o.nbytes != leak.bytes_per_step))
        found.append(replace(leak, source=same[0].source) if same else leak)
    mode.outputs.clear()
    return tuple(found)

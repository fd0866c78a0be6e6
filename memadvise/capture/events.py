"""Recording a real run: the allocator-level profiler session and the walk over its event tree.

``torch.profiler`` with ``profile_memory=True`` reports every allocation and free made through the
device allocator, including buffers that kernels allocate internally without passing through the
dispatcher (RNN and convolution workspaces, for instance); its running sum *is* live memory. Module and
phase boundaries are profiler ranges opened by the tracer's hooks, so each allocation event arrives
nested under the module, the phase and the operator that made it. Backward allocations are attributed
through the autograd sequence number that links a backward node to the forward operator (and so the
module) that created it.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from memadvise.capture.allocations import Events

# Kineto logs its own lines on stderr ("USDT: ... profiler_start" at level 5, errors at 4): above its
# highest level, nothing. A level the user set is kept.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

MODULE_RANGE = "memadvise.module::"
PHASE_RANGE = "memadvise.phase::"
EVALUATE_PREFIX = "autograd::engine::evaluate_function"
HEALTH_RANGE = "memadvise.health"  # numerical-health reductions: left out of the measured memory
RELEASE_RANGE = "memadvise.release::"  # + "PTR::TOKEN": a watched storage is being destroyed

try:
    from torch._C._profiler import _RecordFunctionFast as _range  # no dispatcher call, no allocation
except ImportError:  # pragma: no cover - older PyTorch
    _range = torch.autograd.profiler.record_function  # type: ignore[assignment,misc]


def _mark_release(name: str) -> None:
    """Record the zero-length range ``name`` (called while a watched storage is being destroyed)."""
    try:
        with _range(name):
            pass
    except Exception:  # noqa: BLE001 - never raise out of a storage's destruction
        pass


def storage_key(t: torch.Tensor) -> tuple[int, int] | None:
    """(data pointer, bytes) of the storage behind ``t``; ``None`` for tensors without one.

    A sharded tensor (``DTensor``, as FSDP2 makes them) stands for its local shard.
    """
    t = getattr(t, "_local_tensor", t)
    try:
        st = t.untyped_storage()
        return st.data_ptr(), st.nbytes()
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines written straight to file descriptor 2 (profiler start/stop).

    Always descriptor 2, whatever ``sys.stderr`` is: under pytest's capture, in a notebook or with a
    replaced ``sys.stderr``, Python's stream is not descriptor 2, but native code still writes there.
    """
    fd = 2
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(fd)
    except OSError:  # descriptor 2 is closed: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class AllocatorRecorder:
    """Records a real run on ``device`` through the profiler's allocator events."""

    fake = False

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._prof: torch.profiler.profile | None = None
        self._watched: dict[int, tuple[int, weakref.finalize[Any, Any]]] = {}  # ptr → (token, finalizer)
        self._tokens = 0

    def watch(self, t: torch.Tensor) -> int | None:
        """Record the moment the storage behind ``t`` (maybe made before the recording) is destroyed;
        returns the token its release carries in :attr:`Events.releases` (``None``: not watched).

        Only on the CPU, whose allocator does not report the free of memory it allocated while no
        profiler was recording (the CUDA allocator reports every free). The watch ends with the session.
        """
        if self.device.type != "cpu" or t.device.type != "cpu":
            return None
        try:
            st = getattr(t, "_local_tensor", t).untyped_storage()
            ptr, nbytes = st.data_ptr(), st.nbytes()
        except (RuntimeError, NotImplementedError, AttributeError):
            return None
        if not ptr or not nbytes:
            return None
        watching = self._watched.get(ptr)
        if watching is not None and watching[1].alive:  # this storage: two cannot live at one address
            return watching[0]
        self._tokens += 1
        token = self._tokens
        try:
            # PyTorch keeps a storage's Python object as long as the storage lives: its finalizer runs
            # when the storage is destroyed, whoever held it last (a view, autograd, a data loader).
            finalizer = weakref.finalize(st, _mark_release, f"{RELEASE_RANGE}{ptr}::{token}")
        except TypeError:  # a storage without weak references
            return None
        finalizer.atexit = False
        self._watched[ptr] = (token, finalizer)
        return token

    def _unwatch(self) -> None:
        for _, finalizer in self._watched.values():
            finalizer.detach()
        self._watched.clear()

    def key(self, t: torch.Tensor) -> tuple[int, int] | None:
        return storage_key(t)

    def open_module(self, name: str) -> Any:
        rf = torch.autograd.profiler.record_function(MODULE_RANGE + name)
        rf.__enter__()
        return rf

    def open_phase(self, phase: str, step: int) -> Any:
        rf = torch.autograd.profiler.record_function(f"{PHASE_RANGE}{phase}::{step}")
        rf.__enter__()
        return rf

    @staticmethod
    def close(handle: Any) -> None:
        handle.__exit__(None, None, None)

    def own_nodes(self, module: str, output: Any) -> None:
        """Nothing to do: the profiler's events tie backward nodes to their forward operators."""

    @contextmanager
    def session(self) -> Iterator[None]:
        """Profile what runs inside; allocation events of every device are recorded on the CPU side."""
        from memadvise.capture.hygiene import refuse_active_profiler

        refuse_active_profiler()  # starting ours would switch the caller's profiler off
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        with quiet_native_stderr():
            prof.start()
        try:
            yield
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        finally:
            try:
                with quiet_native_stderr():
                    prof.stop()
            finally:
                self._unwatch()
        self._prof = prof

    def events(self) -> Events:
        prof = self._prof
        results = prof.profiler.kineto_results if prof is not None and prof.profiler is not None else None
        if results is None:
            raise RuntimeError("the profiler returned no results")
        return walk_tree(list(results.experimental_event_tree()), self.device, MODULE_RANGE, PHASE_RANGE)


def _same_device(ev_device: Any, device: torch.device) -> bool:
    try:
        if ev_device.type != device.type:
            return False
        return device.index is None or ev_device.index in (None, device.index)
    except AttributeError:
        return False


def walk_tree(tree: list[Any], device: torch.device, module_prefix: str, phase_prefix: str) -> Events:
    """One depth-first pass over the profiler's event tree."""
    from torch._C._profiler import _EventType

    allocation_tag = _EventType.Allocation
    raw: list[tuple[int, int, int, int, str | None, int, str, int]] = []
    ev = Events()
    counter = 0
    # stack entries: (node, module, seq, op label, group id)
    stack: list[tuple[Any, str | None, int, str, int]] = [(r, None, -1, "", -1) for r in reversed(tree)]
    while stack:
        node, module, seq, label, group = stack.pop()
        counter += 1
        if node.tag == allocation_tag:
            fields_ = node.extra_fields
            if _same_device(fields_.device, device) and fields_.alloc_size != 0:
                raw.append(
                    (node.start_time_ns, counter, fields_.ptr, fields_.alloc_size, module, seq, label, group)
                )
            continue
        name = node.name
        if name == HEALTH_RANGE:  # its allocations are not the model's; frees of them match no block
            continue
        if name.startswith(module_prefix):
            module = name[len(module_prefix) :]
            ev.module_ranges.append((module, node.start_time_ns, node.end_time_ns))
        elif name.startswith(phase_prefix):
            phase, _, step = name[len(phase_prefix) :].rpartition("::")
            ev.phase_ranges.append((phase, int(step), node.start_time_ns, node.end_time_ns))
        elif name.startswith(RELEASE_RANGE):  # in the operator that released the storage, if any
            ptr, _, token = name[len(RELEASE_RANGE) :].partition("::")
            ev.releases.append(
                (node.start_time_ns, int(ptr), int(token), module, seq, label or "<release>", group)
            )
            continue
        elif name.startswith(EVALUATE_PREFIX):
            seq = getattr(node.extra_fields, "sequence_number", -1)
            ev.node_ranges.append((seq, node.start_time_ns, node.end_time_ns))
            if not label:
                label, group = name[len(EVALUATE_PREFIX) + 2 :] or name, counter
        else:
            node_seq = getattr(node.extra_fields, "sequence_number", -1)
            if node_seq is not None and node_seq >= 0 and seq < 0 and module is not None:
                ev.seq_module.setdefault(node_seq, module)
            if not label and not name.startswith("Optimizer."):
                label, group = name, counter
        for child in reversed(node.children):
            stack.append((child, module, seq, label, group))
    raw.sort(key=lambda r: (r[0], r[1]))
    for t, _, ptr, size, module, seq, label, group in raw:
        ev.time.append(t)
        ev.ptr.append(ptr)
        ev.size.append(size)
        ev.module.append(module)
        ev.seq.append(seq)
        ev.op.append(label or "<release>")
        ev.group.append(group)
    ev.phase_ranges.sort(key=lambda r: r[2])
    ev.releases.sort(key=lambda r: r[0])
    return ev

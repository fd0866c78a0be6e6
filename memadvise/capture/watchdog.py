"""A memory watchdog for real traces: stop the run cleanly before it takes the machine down.

A real trace runs the user's model for real: a forward pass that loops forever, or a batch-scaling
trace at twice the batch that no longer fits, grows the process until the kernel kills it (or the
machine swaps to a halt). :class:`MemoryWatchdog` polls the process's resident memory (RSS, psutil)
about ten times a second from a daemon thread. When it crosses the limit — ``--memory-limit`` when
given, else what the machine had available at the start less a margin — the watchdog raises an
exception in the traced thread (``PyThreadState_SetAsyncExc``), which unwinds the trace (hooks
removed, the model restored) and leaves it as one :class:`~memadvise.errors.MemoryLimitError` saying
how far the run got, the limit, and that ``--fake`` needs no memory.

The exception arrives at the next Python bytecode: a single long operator (one huge matmul) finishes
first. Ctrl-C is untouched and stays a KeyboardInterrupt.
"""

from __future__ import annotations

import ctypes
import threading
from types import TracebackType
from typing import Any

from memadvise.errors import MemoryLimitError, UsageError
from memadvise.model.units import check_size, format_bytes, parse_size

POLL_SECONDS = 0.1
#: Kept free for the rest of the machine when the limit comes from the memory available at the start:
#: 5% of the machine's memory, at least 256 MiB and at most 1 GiB.
MARGIN_SHARE = 0.05
MARGIN_MIN = 256 << 20
MARGIN_MAX = 1 << 30


class _LimitHit(BaseException):  # noqa: N818 - not an error the user sees; MemoryLimitError is
    """Raised in the traced thread when its process crosses the limit (a BaseException, so that
    ``except Exception`` in the user's code does not swallow it)."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Ask CPython to raise ``exc`` in thread ``thread_id`` at its next bytecode (``None``: cancel)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(0)
    )


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def default_limit() -> tuple[int, str]:
    """The limit without ``--memory-limit``: this process's memory plus what the machine has available,
    less a margin (5% of the machine's memory, from 256 MiB to 1 GiB)."""
    import psutil

    vm = psutil.virtual_memory()
    margin = min(MARGIN_MAX, max(MARGIN_MIN, int(vm.total * MARGIN_SHARE)))
    limit = _rss() + max(int(vm.available) - margin, 0)
    return limit, f"what this machine had available, less {format_bytes(margin)}; set --memory-limit"


class MemoryWatchdog:
    """``with MemoryWatchdog(limit):`` around a real trace; :meth:`note` tells it where the run is.

    ``limit`` is the most resident memory the process may hold (bytes, or a size such as ``8GiB``);
    ``None`` takes :func:`default_limit`.
    """

    def __init__(self, limit: int | str | None = None, *, interval: float = POLL_SECONDS) -> None:
        if limit is None:
            self.limit, self.source = default_limit()
        else:
            self.limit = check_size(limit, "--memory-limit") if isinstance(limit, int) else parse_size(limit)
            self.source = "set by --memory-limit"
            if self.limit <= 0:
                raise UsageError("--memory-limit must be more than 0 bytes")
        self.interval = interval
        self.where = "while building the model"
        self.peak = 0
        self._hit = False
        self._active = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target = 0

    def note(self, phase: str, step: int) -> None:
        """The run has reached ``phase`` of ``step`` (0-based), as the tracer's progress reports it."""
        self.where = f"in {phase} of step {step + 1}"

    def progress(self, inner: Any = None) -> Any:
        """A progress callback that notes the phase, then calls ``inner`` (when given)."""

        def report(phase: str, step: int) -> None:
            self.note(phase, step)
            if inner is not None:
                inner(phase, step)

        return report

    def __enter__(self) -> MemoryWatchdog:
        now = _rss()
        if now >= self.limit and self.source.startswith("what this machine"):
            raise MemoryLimitError(
                "this machine has too little memory available to run the model for real (memadvise "
                f"keeps {format_bytes(MARGIN_MIN)} to {format_bytes(MARGIN_MAX)} free); free some, give "
                "--memory-limit SIZE, or trace with --fake, which needs no memory"
            )
        if now >= self.limit:
            raise UsageError(
                f"--memory-limit {format_bytes(self.limit)} is below what memadvise already holds "
                f"({format_bytes(now)}, mostly PyTorch itself); give a larger limit"
            )
        self._target = threading.get_ident()
        self._active = True
        self._thread = threading.Thread(target=self._watch, name="memadvise-memory-watchdog", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _rss()
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                with self._lock:
                    if self._active and not self._hit:
                        self._hit = True
                        _raise_in(self._target, _LimitHit)
                return

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        while True:  # the limit's exception may still be on its way: cancel it before leaving
            try:
                with self._lock:
                    self._active = False
                    if self._hit:
                        _raise_in(self._target, None)
                break
            except _LimitHit:
                continue
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._hit:
            raise MemoryLimitError(self.message()) from None

    def message(self) -> str:
        """One line: how far the run got, the memory it reached, the limit, and what needs less."""
        scaling = "batch-scaling" in self.where
        smaller = (
            "`memadvise profile --no-scaling` skips that second trace at twice the batch"
            if scaling
            else "a smaller --batch-size needs less"
        )
        return (
            f"the real trace stopped {self.where}: the process reached {format_bytes(self.peak)}, over the "
            f"memory limit of {format_bytes(self.limit)} ({self.source}); {smaller}, and --fake (the meta "
            "device) needs no memory at all"
        )

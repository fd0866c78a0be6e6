"""Running the user's code: whatever it does to leave early is one clear error, and it sees a clean
``sys.argv``.

A model file's code (at import, in ``build_model()``, ``example_inputs()``, the forward pass, the loss)
may call ``sys.exit()``, raise ``SystemExit`` or another ``BaseException``, or raise an exception whose
message cannot even be printed. None of it may end memadvise as if the run had passed (``sys.exit(0)``
would make ``memadvise check`` exit 0 with no output): it becomes a :class:`ModelFileError` naming the
file and the function. Only ``KeyboardInterrupt`` (Ctrl-C) goes through.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def passes_through(exc: BaseException) -> bool:
    """Exceptions user code may raise through memadvise unchanged: Ctrl-C only."""
    return isinstance(exc, KeyboardInterrupt)


def message_of(exc: BaseException) -> str:
    """The first line of ``str(exc)``, or ``""``; safe when ``__str__`` itself raises."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ of the user's exception
        return "(its message cannot be shown: str() of it raised)"
    text = text.strip()
    return text.splitlines()[0] if text else ""


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception user code raised; a ``SystemExit`` says it was an exit."""
    if isinstance(exc, SystemExit):
        try:
            code = repr(exc.code)
        except Exception:  # noqa: BLE001
            code = "…"
        return f"SystemExit({code if exc.code is not None else ''}): a model file must not exit"
    name = type(exc).__name__
    message = message_of(exc)
    return f"{name}: {message}" if message else name


@contextmanager
def user_argv(path: str | Path) -> Iterator[None]:
    """``sys.argv`` is ``[path]`` while the user's file is imported and run (memadvise's own arguments
    are not the model file's), and restored afterwards."""
    saved = sys.argv
    sys.argv = [str(path)]
    try:
        yield
    finally:
        sys.argv = saved

"""Replacing a file the user owns without losing anything: through symbolic links, keeping its mode,
refusing read-only files, atomically, and under a lock so that concurrent writers do not lose updates.

The lock is an ``fcntl`` lock on a sidecar file ``.NAME.lock`` beside the (link-resolved) file; it is
removed again when the lock is released. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def real_target(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symbolic link's target (followed to the end)."""
    return Path(os.path.realpath(path))


def writable_problem(path: Path) -> str | None:
    """Why ``path`` (link-resolved) may not be replaced, or ``None``: a read-only file or one that is not
    a regular file. A missing file is fine."""
    target = real_target(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(target, os.W_OK):
        return "is read-only; memadvise does not change a file's mode (make it writable to update it)"
    return None


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename); a symbolic link
    is written through (its target replaced) and an existing file keeps its mode. Raises ``OSError``."""
    target = real_target(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (its link-resolved target) while the block runs."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    target = real_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f".{target.name}.lock")
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the lock file was removed by its last holder: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def update_locked(path: Path, change: Callable[[], str]) -> None:
    """Under :func:`locked`, compute the new text (``change`` reads the current file) and replace it."""
    with locked(path):
        replace_text(path, change())

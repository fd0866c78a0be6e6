"""Where a command's ``--output`` may go: never onto one of the files it reads."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memadvise.errors import UsageError

#: The parameters of the commands that name the files a command reads.
INPUT_PARAMETERS = ("model_file", "target", "profile_json", "model_files", "baseline", "config")


def input_paths(values: Iterable[object]) -> list[Path]:
    """The files named by input arguments (``model.py:factory`` names ``model.py``)."""
    paths: list[Path] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            paths.extend(input_paths(value))
            continue
        text = str(value)
        paths.append(Path(text))
        head, sep, tail = text.rpartition(":")
        if sep and head and tail.isidentifier():
            paths.append(Path(head))
    return paths


def same_file(a: Path, b: Path) -> bool:
    """Do ``a`` and ``b`` name one file (the same path, a symbolic link to it, or a hard link)?"""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def refuse_input_as_output(output: Path | str | None, inputs: Iterable[object]) -> None:
    """Raise :class:`UsageError` when ``output`` is one of the files named by ``inputs``."""
    if output is None:
        return
    out = Path(output)
    for path in input_paths(inputs):
        if same_file(out, path):
            raise UsageError(
                f"--output {out} is the input file {path}; memadvise never overwrites its input — "
                "choose another output file"
            )


def check_command_output(arguments: Mapping[str, Any]) -> None:
    """:func:`refuse_input_as_output` for a command's keyword arguments (``output`` against its inputs)."""
    output = arguments.get("output")
    if output is not None:
        refuse_input_as_output(output, (arguments.get(name) for name in INPUT_PARAMETERS))

"""Errors memadvise raises; the CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class MemadviseError(Exception):
    """Base class: a problem the user can fix (bad input, bad option, unreadable file)."""


class ModelFileError(MemadviseError):
    """The user's model file is missing, does not import, or a function in it failed."""


class UsageError(MemadviseError):
    """An option or argument has a value memadvise cannot use."""


class ProfileFileError(MemadviseError):
    """A saved profile cannot be read (missing, not JSON, or another schema)."""


# -- memory regression checks -----------------------------------------------------------------------


class BaselineError(MemadviseError):
    """A baseline file is missing, unreadable, corrupt, or lacks an entry a check needs."""


class CheckConfigError(MemadviseError):
    """The check table of pyproject.toml ``[tool.memadvise]`` or of memadvise.toml has an unusable value."""


class MemoryLimitError(MemadviseError):
    """A real trace grew past the memory limit (``--memory-limit``, else what the machine had free) and
    was stopped before it could take the machine down."""

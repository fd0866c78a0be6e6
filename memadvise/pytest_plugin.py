"""The pytest plugin under its documented name: ``pytest_plugins = ["memadvise.pytest_plugin"]`` and the
``pytest11`` entry point load this module. The plugin itself is :mod:`memadvise.check.pytest_plugin`;
its hooks and its fixture are re-exported here so that pytest finds them on this module."""

from __future__ import annotations

from memadvise.check.pytest_plugin import (
    LIMITS,
    MARKER,
    RUN_KEYS,
    limit_problems,
    memadvise_profile,
    profile_spec,
    pytest_configure,
    pytest_pycollect_makeitem,
    pytest_pyfunc_call,
    read_marker,
)

__all__ = [
    "LIMITS",
    "MARKER",
    "RUN_KEYS",
    "limit_problems",
    "memadvise_profile",
    "profile_spec",
    "pytest_configure",
    "pytest_pycollect_makeitem",
    "pytest_pyfunc_call",
    "read_marker",
]

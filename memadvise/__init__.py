"""memadvise: memory profiler and advisor for PyTorch models.

>>> import memadvise                                                    # doctest: +SKIP
>>> prof = memadvise.profile_file("sample_models/mlp.py", batch_size=8)  # doctest: +SKIP
>>> prof.peak_bytes, prof.peak_phase                                    # doctest: +SKIP
>>> memadvise.estimate(prof, batch_size=64).peak_bytes                   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memadvise._version import __version__ as __version__
from memadvise.errors import MemadviseError, ModelFileError, ProfileFileError, UsageError
from memadvise.model.profile import Category, Holder, LayerStats, Phase, Profile, Timeline, load_profile

if TYPE_CHECKING:
    from memadvise.analyzer import Estimate, Scenario, estimate
    from memadvise.api import profile_file, profile_model, track
    from memadvise.reporters.tables import to_dataframe


__all__ = [
    "Category",
    "Estimate",
    "Scenario",
    "estimate",
    "Holder",
    "LayerStats",
    "MemadviseError",
    "ModelFileError",
    "Phase",
    "Profile",
    "ProfileFileError",
    "Timeline",
    "UsageError",
    "load_profile",
    "profile_file",
    "profile_model",
    "to_dataframe",
    "track",
]


def __getattr__(name: str) -> object:
    """Import torch-heavy parts lazily so ``import memadvise`` stays cheap for offline work."""
    if name in ("profile_file", "profile_model", "track"):
        from memadvise import api

        return getattr(api, name)
    if name in ("estimate", "Estimate", "Scenario"):
        from memadvise import analyzer

        return getattr(analyzer, name)
    if name == "to_dataframe":
        from memadvise.reporters.tables import to_dataframe

        return to_dataframe
    raise AttributeError(f"module 'memadvise' has no attribute {name!r}")

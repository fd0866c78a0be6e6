"""The data model: what a trace found (``Profile`` and its allocation ``Program``), what-if scenarios,
the closed choices (enums) and byte sizes. Plain frozen data, JSON in and out; no torch at import."""

from __future__ import annotations

from memadvise.model.enums import CATEGORIES, Category, Mode, OptimizerName, Phase
from memadvise.model.profile import Holder, LayerStats, Profile, Timeline, load_profile
from memadvise.model.program import Program
from memadvise.model.scenario import AUTO, Precision, PruneKind, Pruning, Scenario, Strategy

__all__ = [
    "AUTO",
    "CATEGORIES",
    "Category",
    "Holder",
    "LayerStats",
    "Mode",
    "OptimizerName",
    "Phase",
    "Precision",
    "Profile",
    "Program",
    "PruneKind",
    "Pruning",
    "Scenario",
    "Strategy",
    "Timeline",
    "load_profile",
]

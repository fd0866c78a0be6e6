"""The catalog's GPUs ranked for one model (``memadvise plan --list-gpus``): each card's best option."""

from __future__ import annotations

from dataclasses import dataclass, replace

from memadvise.model.profile import Profile
from memadvise.planner.budget import budget_for
from memadvise.planner.gpus import load_catalog
from memadvise.planner.search import Goal, Pins, Plan, search


@dataclass(frozen=True)
class GpuRanking:
    """One plan per catalog GPU: the cards something fits on first, smallest first, then the others."""

    model: str
    plans: tuple[Plan, ...]


def rank_gpus(
    profile: Profile,
    pins: Pins,
    goal: Goal = Goal.MAX_BATCH,
    reserve: str | int | None = None,
    *,
    source: str = "",
) -> GpuRanking:
    """Plan ``profile`` on every GPU of the catalog (``reserve`` as in :func:`budget_for`)."""
    plans = [
        replace(search(profile, budget_for(spec, reserve), pins, goal, suggest=False), source=source)
        for spec in sorted(load_catalog(), key=lambda g: g.memory_bytes)
    ]
    plans.sort(key=lambda plan: (plan.recommendation is None, plan.budget.total_bytes))
    return GpuRanking(model=profile.model, plans=tuple(plans))

"""Planning: a configuration that fits a GPU, and the GPUs and system RAM to run it.

>>> from memadvise.planner import plan_for                      # doctest: +SKIP
>>> plan_for(profile, gpu="RTX 4090").recommendation.flags      # doctest: +SKIP
"""

from __future__ import annotations

from memadvise.model.profile import Profile
from memadvise.planner.budget import Budget, budget_for, local_budget
from memadvise.planner.gpus import GpuSpec
from memadvise.planner.ranking import GpuRanking, rank_gpus
from memadvise.planner.search import Goal, Option, Pins, Plan, fsdp_trace_ranks, search


def plan_for(
    profile: Profile,
    gpu: str | GpuSpec,
    *,
    reserve: str | int | None = None,
    goal: Goal | str = Goal.MAX_BATCH,
    pins: Pins | None = None,
) -> Plan:
    """Plan ``profile`` for one GPU given by catalog name or size (see :func:`budget_for`)."""
    budget = budget_for(gpu, reserve, training=profile.mode == "train")
    return search(profile, budget, pins or Pins(), Goal(goal))


__all__ = [
    "Budget",
    "Goal",
    "GpuRanking",
    "Option",
    "Pins",
    "Plan",
    "budget_for",
    "fsdp_trace_ranks",
    "local_budget",
    "plan_for",
    "rank_gpus",
    "search",
]

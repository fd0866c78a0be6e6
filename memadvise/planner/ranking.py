"""The catalog's GPUs ranked for one model (``memadvise plan --list-gpus``): each card's best option.

By default the cards something fits on come first, smallest first. ``cheapest`` ranks the cards that
fit by their price per hour for the whole setup (``--gpus`` x ``--nodes`` cards), from a
:class:`~memadvise.planner.prices.PriceTable`; cards without a price follow, then those nothing fits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from memadvise.model.profile import Profile
from memadvise.planner.budget import budget_for
from memadvise.planner.gpus import load_catalog
from memadvise.planner.prices import PriceTable, load_prices
from memadvise.planner.search import Goal, Pins, Plan, search


@dataclass(frozen=True)
class GpuRanking:
    """One plan per catalog GPU, in the order of ``goal``; ``prices`` gives each card's hourly price."""

    model: str
    plans: tuple[Plan, ...]
    goal: str = Goal.MAX_BATCH.value
    prices: PriceTable | None = None

    def hourly_price(self, plan: Plan) -> float | None:
        """The setup's price per hour (every GPU of it), or ``None`` when the card has no price."""
        if self.prices is None:
            return None
        each = self.prices.of(plan.budget.name)
        return None if each is None else each * max(1, plan.gpus)


def rank_gpus(
    profile: Profile,
    pins: Pins,
    goal: Goal = Goal.MAX_BATCH,
    reserve: str | int | None = None,
    *,
    source: str = "",
    setup: str = "",
    prices: PriceTable | None = None,
) -> GpuRanking:
    """Plan ``profile`` on every GPU of the catalog (``reserve`` as in :func:`budget_for`); ``prices``
    defaults to the shipped table. With ``Goal.CHEAPEST`` each card's plan is a max-batch plan, and
    the cards are ranked by price."""
    prices = prices if prices is not None else load_prices()
    each_goal = Goal.MAX_BATCH if goal is Goal.CHEAPEST else goal
    plans = [
        replace(
            search(profile, budget_for(spec, reserve), pins, each_goal, suggest=False, finalists=0),
            source=source,
            setup=setup,
        )
        for spec in sorted(load_catalog(), key=lambda g: g.memory_bytes)
    ]
    ranking = GpuRanking(model=profile.model, plans=(), goal=goal.value, prices=prices)
    if goal is Goal.CHEAPEST:

        def key(plan: Plan) -> tuple[bool, bool, float, int]:
            price = ranking.hourly_price(plan)
            return (plan.recommendation is None, price is None, price or 0.0, plan.budget.total_bytes)

        plans.sort(key=key)
    else:
        plans.sort(key=lambda plan: (plan.recommendation is None, plan.budget.total_bytes))
    return replace(ranking, plans=tuple(plans))

"""What-if analysis: predict a profiled model's memory under changed settings, from the profile alone.

>>> from memadvise.analyzer import estimate, Scenario, Precision            # doctest: +SKIP
>>> estimate(profile, Scenario(batch_size=32, precision=Precision.BF16_MIXED)).peak_bytes  # doctest: +SKIP
"""

from __future__ import annotations

from memadvise.analyzer.estimate import Estimate, estimate
from memadvise.model.scenario import AUTO, Lora, LowRank, Precision, PruneKind, Pruning, Scenario

__all__ = ["AUTO", "Estimate", "Lora", "LowRank", "Precision", "PruneKind", "Pruning", "Scenario", "estimate"]

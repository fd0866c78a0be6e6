"""The routing assumption of a fake trace of a mixture-of-experts model (``--expert-load``).

A fake trace has no values, so it cannot see which experts the router picks. Models that loop over
experts (one index tensor per expert, from ``nonzero``/``torch.where`` on the router's mask) allocate
per-expert tensors whose rows are the tokens routed to that expert; the assumption gives those rows.
With ``tokens`` tokens, ``experts`` experts and top-``k`` routing there are ``tokens x k`` routed rows,
and an expert gets each token at most once (at most ``tokens`` rows):

* ``uniform`` (default): every expert gets ``tokens x k / experts`` rows — a balanced router, which
  load-balancing losses train for.
* ``worst``: every token goes to the same ``k`` experts: those get ``tokens`` rows each, the others
  none. Memory can be no higher whatever the router does.
* ``skewed:F`` (``F`` a fraction, or a percentage such as ``skewed:40%``): the busiest expert gets
  ``F`` of the routed rows, the others share the rest evenly. ``F`` lies between ``1/experts``
  (``uniform``) and ``1/k`` (the busiest expert has every token).

Grouped experts (transformers' ``torch._grouped_mm``) put all routed rows in one tensor whatever the
routing, so there the assumption has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from memadvise.errors import UsageError

SYNTAX = "uniform, worst or skewed:F (F the busiest expert's fraction of routed rows, e.g. skewed:0.5)"


class LoadKind(str, Enum):
    UNIFORM = "uniform"
    WORST = "worst"
    SKEWED = "skewed"


@dataclass(frozen=True)
class ExpertLoad:
    """How many routed rows each expert gets in a fake trace (see the module docstring)."""

    kind: LoadKind = LoadKind.UNIFORM
    fraction: float | None = None  # skewed only: the busiest expert's share of the routed rows

    def __str__(self) -> str:
        if self.kind is LoadKind.SKEWED:
            return f"skewed:{self.fraction:g}"
        return self.kind.value

    def describe(self) -> str:
        """What the assumption means, in words."""
        if self.kind is LoadKind.UNIFORM:
            return "uniform: every expert gets tokens x top-k / experts rows"
        if self.kind is LoadKind.WORST:
            return "worst: every token to the same top-k experts, which get all tokens; the others none"
        return (
            f"skewed:{self.fraction:g}: the busiest expert gets {self.fraction:g} of the routed rows, "
            "the rest share evenly"
        )

    def check(self, experts: int, top_k: int) -> None:
        """Refuse a skew the model's routing cannot produce (UsageError)."""
        if self.kind is not LoadKind.SKEWED or self.fraction is None:
            return
        low, high = 1 / experts, 1 / top_k
        if self.fraction < low - 1e-9:
            raise UsageError(
                f"--expert-load {self}: the busiest of {experts} experts gets at least 1/{experts} "
                f"({low:.4g}) of the routed rows; use a fraction from {low:.4g} to {high:.4g}"
            )
        if self.fraction > high + 1e-9:
            raise UsageError(
                f"--expert-load {self}: with top-{top_k} routing an expert gets each token at most once, "
                f"so at most 1/{top_k} ({high:.4g}) of the routed rows; use worst for the upper bound"
            )

    def rows(self, tokens: int, experts: int, top_k: int) -> list[int]:
        """Routed rows per expert, busiest first; they sum to ``tokens x top_k`` and none exceeds
        ``tokens``."""
        top_k = min(top_k, experts)
        routed = tokens * top_k
        if self.kind is LoadKind.WORST:
            return [tokens] * top_k + [0] * (experts - top_k)
        if self.kind is LoadKind.SKEWED and self.fraction is not None and experts > 1:
            busiest = min(tokens, round(self.fraction * routed))
            return [busiest, *_even(routed - busiest, experts - 1)]
        return _even(routed, experts)


def _even(rows: int, experts: int) -> list[int]:
    base, extra = divmod(rows, experts)
    return [base + 1] * extra + [base] * (experts - extra)


def parse_expert_load(value: str | ExpertLoad | None) -> ExpertLoad:
    """``uniform``, ``worst``, ``skewed:0.5`` or ``skewed:50%`` as an :class:`ExpertLoad`; anything
    else is a UsageError (``None``: the default, uniform)."""
    if value is None:
        return ExpertLoad()
    if isinstance(value, ExpertLoad):
        return value
    text = str(value).strip().lower()
    kind, sep, arg = text.partition(":")
    if kind in (LoadKind.UNIFORM.value, LoadKind.WORST.value) and not sep:
        return ExpertLoad(LoadKind(kind))
    if kind == LoadKind.SKEWED.value:
        if not arg:
            raise UsageError(
                f"--expert-load {value!r}: skewed needs the busiest expert's share, e.g. skewed:0.5"
            )
        percent = arg.endswith("%")
        try:
            fraction = float(arg.removesuffix("%")) / (100 if percent else 1)
        except ValueError:
            fraction = float("nan")
        if not 0 < fraction <= 1:  # also refuses nan
            raise UsageError(
                f"--expert-load {value!r}: the busiest expert's share must be a fraction in (0, 1] "
                "or a percentage, e.g. skewed:0.5 or skewed:50%"
            )
        return ExpertLoad(LoadKind.SKEWED, fraction)
    raise UsageError(f"unknown --expert-load {value!r}; use {SYNTAX}")

"""Price per GPU-hour, for ``memadvise plan --list-gpus --goal cheapest``: a table shipped as data
(``memadvise/planner/data/prices.json``, with its date and source) or the user's own (``--prices FILE``).

A price file is a JSON object: ``prices`` maps catalog GPU names (or their aliases, ``"4090"``,
``"a100-80gb"``) to a positive number per GPU-hour; ``date``, ``source``, ``currency`` and ``unit``
are optional strings that the report shows. Cards without a price are listed after the priced ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memadvise.errors import UsageError
from memadvise.planner.gpus import find_gpu


@dataclass(frozen=True)
class PriceTable:
    """Prices per GPU-hour by catalog name, with where they come from."""

    prices: dict[str, float] = field(default_factory=dict)
    date: str = ""
    source: str = ""
    currency: str = "USD"
    unit: str = "per GPU per hour"

    def of(self, gpu_name: str) -> float | None:
        return self.prices.get(gpu_name)

    def describe(self) -> str:
        where = f" ({self.source})" if self.source else ""
        when = f" as of {self.date}" if self.date else ""
        return f"prices in {self.currency} {self.unit}{when}{where}"


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped price table, or the one in ``path`` (validated; a UsageError names what is wrong)."""
    if path is None:
        text = resources.files("memadvise.planner").joinpath("data/prices.json").read_text(encoding="utf-8")
        return _table(json.loads(text), "the shipped price table")
    where = f"price file '{path}'"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {where}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not JSON (line {exc.lineno}: {exc.msg})") from None
    return _table(data, where)


def _table(data: Any, where: str) -> PriceTable:
    example = '{"prices": {"H100": 2.5, "RTX 4090": 0.6}}'
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise UsageError(f'{where} must be a JSON object with a "prices" object, e.g. {example}')
    prices: dict[str, float] = {}
    for name, value in data["prices"].items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise UsageError(
                f"{where}: the price of {name!r} must be a positive number per GPU-hour, not {value!r}"
            )
        try:
            card = find_gpu(str(name))
        except UsageError:
            raise UsageError(
                f"{where}: {name!r} is not a GPU of the catalog (see memadvise plan --list-gpus)"
            ) from None
        prices[card.name] = float(value)
    text = {k: data.get(k) for k in ("date", "source", "currency", "unit")}
    for key, value in text.items():
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{where}: {key} must be a string")
    return PriceTable(
        prices=prices,
        date=text["date"] or "",
        source=text["source"] or "",
        currency=text["currency"] or "USD",
        unit=text["unit"] or "per GPU per hour",
    )

"""Tabular views of a profile as pandas DataFrames (per-layer table, timeline) and CSV text."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from memadvise.model.profile import LayerStats, Profile, module_label
from memadvise.model.text import csv_cell

if TYPE_CHECKING:
    import pandas as pd

LAYER_COLUMNS = tuple(f.name for f in fields(LayerStats))  # name, type, calls, the byte counts


def to_dataframe(profile: Profile, table: str = "layers") -> pd.DataFrame:
    """``table="layers"``: one row per module; ``table="timeline"``: one row per timeline sample.

    As in every report, the model itself is named ``(model)`` (:data:`ROOT_LABEL`; ``""`` in the saved
    JSON) and steps count from 1 (the JSON counts from 0)."""
    import pandas as pd

    if table == "layers":
        rows = [{**asdict(layer), "name": module_label(layer.name)} for layer in profile.layers]
        return pd.DataFrame(rows, columns=list(LAYER_COLUMNS))
    if table == "timeline":
        tl = profile.timeline
        frame = pd.DataFrame(
            {
                "index": tl.index,
                "step": [step + 1 for step in tl.step],
                "phase": tl.phase,
                "op": tl.op,
                "module": [module_label(m) for m in tl.module],
            }
        )
        for category, column in tl.bytes.items():
            frame[category] = column
        frame["total"] = frame[list(tl.bytes)].sum(axis=1) if tl.bytes else 0
        return frame
    raise ValueError(f"unknown table {table!r}; use 'layers' or 'timeline'")


def _csv(frame: pd.DataFrame) -> str:
    """CSV text of ``frame``; a text cell a spreadsheet would run as a formula (``=HYPERLINK(…)``) gets a
    ``'`` in front (:func:`memadvise.model.text.csv_cell`)."""
    import pandas as pd

    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(csv_cell)
    return str(frame.to_csv(index=False))


def layers_csv(profile: Profile) -> str:
    """The per-layer table as CSV (bytes as integers)."""
    return _csv(to_dataframe(profile, "layers"))


def timeline_csv(profile: Profile) -> str:
    """The timeline as CSV: one row per sample, live bytes per category and their ``total``."""
    return _csv(to_dataframe(profile, "timeline"))


def table_csv(profile: Profile, table: str = "layers") -> str:
    """``table="layers"`` or ``"timeline"`` as CSV text."""
    if table == "timeline":
        return timeline_csv(profile)
    if table == "layers":
        return layers_csv(profile)
    raise ValueError(f"unknown table {table!r}; use 'layers' or 'timeline'")

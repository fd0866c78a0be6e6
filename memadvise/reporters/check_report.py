"""Renderers of a :class:`CheckRun`: rich text, JSON and GitHub Actions annotations; none prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from memadvise.check import (
    FIGURES,
    UPDATE_HINT,
    CheckResult,
    CheckRun,
    FigureChange,
    LayerChange,
    Status,
    display_path,
)
from memadvise.model.profile import module_label
from memadvise.model.units import format_bytes

_STYLES = {
    Status.REGRESSED: "bold red",
    Status.IMPROVED: "green",
    Status.WITHIN: "",
    Status.UNCHANGED: "dim",
    Status.NEW: "cyan",
}


def signed_bytes(n: int) -> str:
    """``+7,280 B`` / ``-1,024 B``: an exact change in bytes."""
    return f"{n:+,} B"


def signed_percent(change: FigureChange) -> str:
    return f"{change.percent:+.1f}%" if change.percent is not None else "new"


def signed_size(n: int) -> str:
    """``+3.6 KiB`` / ``-224 B``."""
    return ("+" if n > 0 else "") + format_bytes(n)


def layers_text(layers: list[LayerChange]) -> str:
    """``0 (Linear) +3.6 KiB, 2 (Linear) +1.8 KiB``."""
    return ", ".join(f"{module_label(c.name)} ({c.type}) {signed_size(c.change)}" for c in layers)


def figure_text(change: FigureChange) -> str:
    """``peak 66.3 KiB → 73.4 KiB (+7,280 B, +10.7%)``."""
    return (
        f"{change.figure} {format_bytes(change.old)} → {format_bytes(change.new)} "
        f"({signed_bytes(change.change)}, {signed_percent(change)})"
    )


def result_message(result: CheckResult, top: int = 3) -> str:
    """One line naming the model, each regressed (else improved) figure, and the layers that moved most."""
    changes = result.regressions or result.improvements
    verb = "memory regression" if result.regressions else "memory improvement"
    message = f"{verb} in {result.target.label}: " + "; ".join(figure_text(c) for c in changes)
    message += f" (tolerance {result.target.tolerance})"
    layers = result.layers(top=top)
    if layers:
        message += f"; layers that changed most: {layers_text(layers)}"
    return message


# -- rich text --------------------------------------------------------------------------------------
def _figures_table(result: CheckResult) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for name, justify in (
        ("figure", "left"),
        ("baseline", "right"),
        ("", "center"),
        ("now", "right"),
        ("change", "right"),
        ("%", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in result.changes:
        style = _STYLES[c.status]
        change, percent = (signed_bytes(c.change), signed_percent(c)) if c.change else ("0 B", "")
        table.add_row(
            c.figure,
            format_bytes(c.old),
            "→",
            format_bytes(c.new),
            change,
            percent,
            Text(c.status.value, style=style),
        )
    return table


def _result_block(result: CheckResult, top: int) -> list[RenderableType]:
    head = Text("  ")
    head.append(result.status.value.upper(), style=_STYLES[result.status] or "bold")
    head.append(f"  {result.target.label}  (tolerance {result.target.tolerance})")
    if result.old is None:
        figures = ", ".join(f"{label} {format_bytes(v)}" for label, v in _new_figures(result))
        return [head, Text(f"    recorded: {figures}")]
    parts: list[RenderableType] = [head, Padding(_figures_table(result), (0, 0, 0, 4), expand=False)]
    layers = result.layers(top=top)
    if layers and (result.regressions or result.improvements):
        parts.append(Text(f"    layers that changed most: {layers_text(layers)}"))
    return parts


def _new_figures(result: CheckResult) -> list[tuple[str, int]]:
    return [(label, result.new.figures[name]) for label, name in FIGURES]


def summary_text(run: CheckRun) -> Text:
    """The last line: passed, failed (and how to accept), or updated."""
    n = len(run.results)
    checks = f"{n} check{'s' if n != 1 else ''}"
    regressed = sum(1 for r in run.results if r.regressions)
    improved = sum(1 for r in run.results if r.improvements and not r.regressions)
    if run.updated:
        return Text(f"Baseline {run.baseline_path} updated: {checks} recorded.", style="bold green")
    if regressed:
        return Text(
            f"FAILED: memory regression in {regressed} of {checks}. Fix it, or accept the new figures "
            f"with `{UPDATE_HINT}`.",
            style="bold red",
        )
    text = Text(f"PASSED: no memory regression in {checks} of {run.baseline_path}.", style="bold green")
    if improved:
        text.append(f" {improved} improved: record the lower figures with `{UPDATE_HINT}`.", style="green")
    return text


def render_check(run: CheckRun, top: int = 3) -> RenderableType:
    """The terminal report: one block per check, then the verdict."""
    head = Text.assemble(("memadvise check", "bold"), f"  baseline {run.baseline_path}")
    parts: list[RenderableType] = [head]
    for result in run.results:
        parts.extend(_result_block(result, top))
    parts.append(summary_text(run))
    return Group(*parts)


# -- JSON -------------------------------------------------------------------------------------------
def _change_dict(result: CheckResult, change: FigureChange, top: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "figure": change.figure,
        "field": change.field,
        "old": change.old,
        "new": change.new,
        "change": change.change,
        "percent": round(change.percent, 3) if change.percent is not None else None,
        "allowed": change.allowed,
        "status": change.status.value,
    }
    if change.status in (Status.REGRESSED, Status.IMPROVED):
        data["layers"] = [_layer_dict(c) for c in result.layers(change, top)]
    return data


def _layer_dict(change: LayerChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "type": change.type,
        "old": change.old,
        "new": change.new,
        "change": change.change,
    }


def check_dict(run: CheckRun, top: int = 3) -> dict[str, Any]:
    """A JSON-ready summary: overall status, then per check its figures, changes and top layers."""
    results = []
    for r in run.results:
        t = r.target
        results.append(
            {
                "key": r.new.key,
                "model": display_path(t.path),
                "factory": t.factory,
                "batch_size": t.batch_size,
                "mode": t.mode,
                "optimizer": t.optimizer,
                "device": t.device_key,
                "tolerance": str(t.tolerance),
                "status": r.status.value,
                "figures": dict(r.new.figures),
                "changes": [_change_dict(r, c, top) for c in r.changes],
                "layers": [_layer_dict(c) for c in r.layers(top=top)],
                "message": result_message(r, top) if (r.regressions or r.improvements) else None,
                "warnings": list(r.warnings),
            }
        )
    status = "updated" if run.updated else ("regressed" if run.regressed else "passed")
    return {
        "status": status,
        "baseline": str(run.baseline_path),
        "regressions": sum(len(r.regressions) for r in run.results),
        "improvements": sum(len(r.improvements) for r in run.results),
        "results": results,
        "warnings": list(run.warnings),
    }


def check_json(run: CheckRun, top: int = 3) -> str:
    return json.dumps(check_dict(run, top), indent=2)


# -- GitHub Actions ---------------------------------------------------------------------------------
def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(level: str, title: str, message: str, file: str | None = None) -> str:
    props = ([f"file={escape_property(file)}"] if file else []) + [f"title={escape_property(title)}"]
    return f"::{level} {','.join(props)}::{escape_data(message)}"


def _workspace_path(path: Path, workspace: Path | None) -> str:
    if workspace is not None:
        try:
            return path.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            pass
    return display_path(path)


def github_annotations(run: CheckRun, workspace: Path | None = None, top: int = 3) -> list[str]:
    """``::error``/``::notice``/``::warning`` lines; file paths relative to ``workspace`` (the repo root)."""
    lines = [_annotation("warning", "memadvise baseline", note) for note in run.warnings]
    for r in run.results:
        file = _workspace_path(r.target.path, workspace)
        for warning in r.warnings:
            lines.append(_annotation("warning", "memadvise: baseline measured elsewhere", warning, file))
        if r.regressions:
            figures = ", ".join(c.figure for c in r.regressions)
            level = "warning" if run.updated else "error"
            lines.append(_annotation(level, f"memory regression: {figures}", result_message(r, top), file))
        elif r.improvements:
            lines.append(_annotation("notice", "memory improvement", result_message(r, top), file))
    return lines

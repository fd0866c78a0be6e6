"""Reports of plans: the recommendation with what to change, the ranked options, GPUs to rent, JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from memadvise.model.units import format_bytes
from memadvise.planner import GpuRanking, Option, Plan
from memadvise.reporters.console import Fitted

MAX_LISTED_MODULES = 3


def checkpoint_label(names: tuple[str, ...], short: bool = False) -> str:
    if not names:
        return "none"
    if short:
        return names[0] if len(names) == 1 else f"{len(names)} modules"
    if len(names) <= MAX_LISTED_MODULES:
        return ", ".join(names)
    return f"{len(names)} modules ({', '.join(names[:2])}, …)"


def render_plan(plan: Plan) -> RenderableType:
    head = Text()
    head.append("memadvise plan", style="bold")
    sharding = f" · {plan.gpus} GPUs {plan.strategy}" if plan.gpus > 1 else ""
    head.append(f"  {plan.model} · {plan.mode} · goal {plan.goal}{sharding}\n")
    head.append(plan.budget.describe())
    parts: list[RenderableType] = [head]
    best = plan.recommendation
    if best is not None:
        parts.append(_recommendation(plan, best))
    else:
        parts.append(Text("Nothing fits this budget.", style="bold red"))
        for line in plan.suggestions:
            parts.append(Text(f"  {line}"))
    parts.append(_options_table(plan))
    ram = plan.ram
    if ram is not None:
        parts.append(
            Text(
                f"System RAM: at least {format_bytes(ram.recommended_bytes)} "
                f"(1.25 x GPU memory = {format_bytes(ram.rule_bytes)}; host side needs "
                f"{format_bytes(ram.host_need_bytes)}: data loading, a checkpoint's state-dict copy, "
                "the process"
                + (
                    f"; offloaded state {format_bytes(ram.offloaded_bytes)}, "
                    f"{format_bytes(ram.pinned_bytes)} of it pinned"
                    if ram.offloaded_bytes
                    else ""
                )
                + ")"
            )
        )
    for note in plan.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    parts.append(Text(f"{plan.scenarios_evaluated} scenarios evaluated", style="dim"))
    return Group(*parts)


def estimate_command(plan: Plan, o: Option) -> str:
    """The command that gives this option's figure (see :meth:`Plan.estimate_command`)."""
    return plan.estimate_command(o)


def _recommendation(plan: Plan, o: Option) -> Text:
    text = Text()
    text.append("Recommended: ", style="bold green")
    text.append(
        (
            f"batch {o.batch_size} (memory allows at least {o.batch_size}: it no longer limits the batch)"
            if o.batch_capped
            else f"batch {o.batch_size}"
        )
        + (f" x {o.grad_accum} accumulation = {o.effective_batch_size}" if o.grad_accum > 1 else "")
        + f", {o.precision}, checkpoint {checkpoint_label(o.checkpoint)}, {o.optimizer}"
    )
    reserved = (
        f"{format_bytes(o.reserved_bytes)} reserved"
        if o.reserved_bytes is not None
        else f"reserved {o.reserved_source}"
    )
    text.append(
        f"\n  predicted peak {format_bytes(o.predicted_peak_bytes)} allocated, "
        f"{reserved}; headroom {format_bytes(o.headroom_bytes)}"
    )
    text.append(f"\n  {estimate_command(plan, o)}", style="cyan")
    for line in o.code:
        text.append(f"\n  {line}", style="cyan")
    if o.offload_host_bytes:
        text.append(
            f"\n  offload: {format_bytes(o.offload_host_bytes)} of host RAM per GPU, "
            f"{format_bytes(o.offload_pinned_bytes)} of it pinned"
        )
    for caveat in o.caveats:
        text.append(f"\n  caveat: {caveat}", style="yellow")
    return text


def _options_table(plan: Plan) -> RenderableType:
    """One row per option, as wide as the console allows: the full table, else without the columns that
    other lines already give (headroom: the summary; effective batch: batch x accumulation; the rank:
    the row order), saying which were left out."""
    narrower = (("headroom",), ("headroom", "eff. batch"), ("headroom", "eff. batch", "#"))
    return Fitted(_options(plan), *(_options(plan, left_out) for left_out in narrower))


def _options(plan: Plan, left_out: tuple[str, ...] = ()) -> Table:
    """Columns that would say nothing are left out too: accumulation and effective batch when no option
    accumulates, recompute when no option checkpoints. Sizes and batches never wrap."""
    accumulates = any(o.grad_accum > 1 for o in plan.options)
    recomputes = any(o.checkpoint for o in plan.options)
    caption = f"({', '.join(left_out)} left out: narrow console)" if left_out else None
    table = Table(
        title="Options (best first)",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        pad_edge=not left_out,  # narrow: no padding at the table's edges either
    )
    columns: list[str] = ["#", "batch"] + (["accum", "eff. batch"] if accumulates else [])
    columns += ["precision", "checkpoint", "optimizer", "peak", "reserved", "headroom"]
    columns += ["recompute"] if recomputes else []
    columns += ["fits"]
    columns = [c for c in columns if c not in left_out]
    left = {"precision", "checkpoint", "optimizer", "fits"}
    for name in columns:
        table.add_column(
            name,
            justify="left" if name in left else "right",
            no_wrap=name not in left,
            overflow="fold" if name in left else "ellipsis",  # folded when narrow, never cut
        )
    for k, o in enumerate(plan.options, 1):
        cells = {
            "#": str(k),
            "batch": f">={o.batch_size}" if o.batch_capped else str(o.batch_size),
            "accum": str(o.grad_accum),
            "eff. batch": str(o.effective_batch_size),
            "precision": o.precision,
            "checkpoint": checkpoint_label(o.checkpoint, short=True),
            "optimizer": o.optimizer,
            "peak": format_bytes(o.predicted_peak_bytes),
            "reserved": "-" if o.reserved_bytes is None else format_bytes(o.reserved_bytes),
            "headroom": format_bytes(o.headroom_bytes),
            "recompute": f"{o.recompute_fraction:.0%}" if o.checkpoint else "-",
            "fits": "yes" if o.fits else "no",
        }
        table.add_row(*(cells[c] for c in columns))
    return table


PLAN_SCHEMA = 2
"""Version of the plan's JSON. 2: each option has ``allocated_bytes`` (the analyzer's peak of live
tensor bytes), ``reserved_bytes`` (the caching-allocator model's reserved peak, ``null`` when the option
was not replayed through it) and ``reserved_source`` saying which. Version 1 (no ``schema_version``)
put the allocated peak in ``reserved_bytes`` for options that were not replayed."""


def option_dict(o: Option) -> dict[str, Any]:
    data = asdict(replace(o, scenario=None))
    del data["scenario"]
    data["allocated_bytes"] = o.predicted_peak_bytes
    data["checkpoint"] = list(o.checkpoint)
    data["caveats"] = list(o.caveats)
    data["code"] = list(o.code)
    return data


def plan_dict(plan: Plan) -> dict[str, Any]:
    best = plan.recommendation
    budget = plan.budget
    return {
        "schema_version": PLAN_SCHEMA,
        "model": plan.model,
        "mode": plan.mode,
        "goal": plan.goal,
        "gpus": plan.gpus,
        "strategy": plan.strategy,
        "budget": {
            "gpu": budget.name,
            "total_bytes": budget.total_bytes,
            "reserve_bytes": budget.reserve_bytes,
            "context_bytes": budget.context_bytes,
            "workspace_bytes": budget.workspace_bytes,
            "usable_bytes": budget.usable_bytes,
        },
        "recommendation": None
        if best is None
        else {
            "batch_size": best.batch_size,
            "precision": best.precision,
            "checkpoint": list(best.checkpoint),
            "optimizer": best.optimizer,
            "grad_accum": best.grad_accum,
            "effective_batch_size": best.effective_batch_size,
            "predicted_peak_bytes": best.predicted_peak_bytes,
            "allocated_bytes": best.predicted_peak_bytes,
            "reserved_bytes": best.reserved_bytes,
            "reserved_source": best.reserved_source,
            "budget_bytes": best.budget_bytes,
            "flags": best.flags,
            "command": estimate_command(plan, best),
        },
        "options": [option_dict(o) for o in plan.options],
        "suggestions": list(plan.suggestions),
        "notes": list(plan.notes),
        "system_ram": None if plan.ram is None else asdict(plan.ram),
        "scenarios_evaluated": plan.scenarios_evaluated,
    }


def plan_json(plan: Plan) -> str:
    return json.dumps(plan_dict(plan), indent=2)


def render_gpu_list(ranking: GpuRanking) -> RenderableType:
    table = Table(
        title=f"GPUs for {ranking.model} (catalog, best option each; goal {ranking.goal})",
        title_justify="left",
    )
    columns = (
        "GPU",
        "memory",
        "fits",
        "$/hour",
        "batch",
        "precision",
        "checkpoint",
        "optimizer",
        "peak",
        "system RAM",
    )
    for column in columns:
        table.add_column(
            column, justify="right" if column in ("memory", "$/hour", "batch", "peak") else "left"
        )
    for plan in ranking.plans:
        best = plan.recommendation
        price = ranking.hourly_price(plan)
        table.add_row(
            plan.budget.name + (f" x{plan.gpus}" if plan.gpus > 1 else ""),
            format_bytes(plan.budget.total_bytes),
            "yes" if best is not None else "no",
            "-" if price is None else f"{price:,.2f}",
            "-" if best is None else (">=" if best.batch_capped else "") + str(best.effective_batch_size),
            "-" if best is None else best.precision,
            "-" if best is None else checkpoint_label(best.checkpoint, short=True),
            "-" if best is None else best.optimizer,
            "-" if best is None else format_bytes(best.predicted_peak_bytes),
            "-" if plan.ram is None else format_bytes(plan.ram.recommended_bytes),
        )
    parts: list[RenderableType] = [table]
    if ranking.prices is not None:
        parts.append(
            Text(f"note: {ranking.prices.describe()}; '-' where the table has no price", style="dim")
        )
    return Group(*parts)


def gpu_list_json(ranking: GpuRanking) -> str:
    rows = []
    for plan in ranking.plans:
        row = plan_dict(plan)
        row["price_per_hour"] = ranking.hourly_price(plan)
        rows.append(row)
    prices = ranking.prices
    return json.dumps(
        {
            "schema_version": PLAN_SCHEMA,
            "model": ranking.model,
            "goal": ranking.goal,
            "prices": None
            if prices is None
            else {
                "date": prices.date,
                "source": prices.source,
                "currency": prices.currency,
                "unit": prices.unit,
            },
            "gpus": rows,
        },
        indent=2,
    )

"""Reports of what-if estimates: a rich table against the profiled baseline, or JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from memadvise.analyzer import Estimate
from memadvise.model.profile import Profile, module_label
from memadvise.model.units import format_bytes
from memadvise.reporters.console import CATEGORY_LABELS, CATEGORY_SHORT_LABELS, Fitted

ROWS = (
    ("peak", "peak_bytes"),
    ("parameters", "param_bytes"),
    ("gradients", "grad_bytes"),
    ("optimizer state", "optimizer_state_bytes"),
    ("activations (saved for backward)", "activation_bytes"),
    ("inputs", "input_bytes"),
)


def _change(new: int, old: int) -> str:
    if new == old:
        return "="
    sign = "+" if new > old else "-"
    ratio = f" ({new / old - 1:+.1%})" if old else ""
    return f"{sign}{format_bytes(abs(new - old))}{ratio}"


def _baseline_value(profile: Profile, key: str) -> int:
    return int(getattr(profile, key))


def _profile_of(estimate: Estimate, profile: Profile | None) -> Profile:
    """The profile the estimate is set against: ``profile`` when given, else the one it replayed."""
    found = profile if profile is not None else estimate.baseline
    if found is None:
        raise ValueError("this estimate does not hold its profile; pass the profile it was estimated from")
    return found


def _configuration(profile: Profile) -> str:
    """``batch 2``, ``batch 2, seq 64, bf16-mixed``: what the baseline was traced with."""
    parts = [f"batch {profile.batch_size}"]
    if profile.seq_len is not None:
        parts.append(f"seq {profile.seq_len}")
    if profile.precision != "fp32":
        parts.append(profile.precision)
    return ", ".join(parts)


def render_estimate(estimate: Estimate, profile: Profile | None = None) -> RenderableType:
    """The estimate next to the profiled baseline, what holds the new peak, and the notes."""
    profile = _profile_of(estimate, profile)
    head = Text()
    head.append("memadvise estimate", style="bold")
    head.append(
        f"  {estimate.model} · {estimate.mode} · {estimate.scenario_text} · optimizer {estimate.optimizer}"
        f" · {estimate.device}\n"
    )
    head.append("Peak ", style="bold")
    head.append(format_bytes(estimate.peak_bytes), style="bold magenta")
    head.append(f"  ({estimate.peak_bytes:,} bytes, {_change(estimate.peak_bytes, profile.peak_bytes)})")
    if estimate.why:
        head.append(f"\n{estimate.why}")

    def against(short: bool) -> Table:
        table = Table(title="Against the profiled run", title_justify="left")
        table.add_column("")
        table.add_column(f"profiled ({_configuration(profile)})", justify="right")
        table.add_column("estimate", justify="right")
        table.add_column("change", justify="right")
        for label, key in ROWS:
            old, new = _baseline_value(profile, key), int(getattr(estimate, key))
            shown = "activations" if short and key == "activation_bytes" else label
            table.add_row(shown, format_bytes(old), format_bytes(new), _change(new, old))
        return table

    def holders(short: bool) -> Table:
        labels = {**CATEGORY_LABELS, **CATEGORY_SHORT_LABELS} if short else CATEGORY_LABELS
        table = Table(title="Alive at the estimated peak", title_justify="left")
        table.add_column("category")
        table.add_column("module")
        table.add_column("size", justify="right")
        table.add_column("share", justify="right")
        for h in estimate.peak_holders:
            share = f"{h.bytes / estimate.peak_bytes:.1%}" if estimate.peak_bytes else "-"
            table.add_row(
                labels.get(h.category, h.category), module_label(h.module), format_bytes(h.bytes), share
            )
        return table

    parts: list[RenderableType] = [
        head,
        Fitted(against(False), against(True)),
        Fitted(holders(False), holders(True)),
    ]
    if estimate.low_rank is not None:
        parts.append(_low_rank_table(estimate))
    extra = _details(estimate)
    if extra.plain:
        parts.append(extra)
    return Group(*parts)


def _low_rank_table(estimate: Estimate) -> Table:
    """Factorised weights grouped by name suffix and shape, with their break-even rank."""
    assert estimate.low_rank is not None
    groups: dict[tuple[str, int, int, int], list[Any]] = {}
    for layer in estimate.low_rank.layers:
        groups.setdefault((layer.name.rsplit(".", 1)[-1], layer.rows, layer.cols, layer.rank), []).append(
            layer
        )
    table = Table(title="Low-rank factors (weights only)", title_justify="left")
    for column in ("layers", "matrix", "rank", "break-even rank", "weights", "as factors"):
        table.add_column(column, justify="left" if column == "layers" else "right")
    for (suffix, rows, cols, rank), layers in groups.items():
        first = layers[0]
        name = first.name if len(layers) == 1 else f"{suffix} ×{len(layers)}"
        shrinks = rank < first.break_even
        table.add_row(
            name,
            f"{rows}×{cols}",
            str(rank),
            f"< {first.break_even:,.1f}",
            format_bytes(sum(x.weight_bytes for x in layers)),
            Text(format_bytes(sum(x.factor_bytes for x in layers)), style="green" if shrinks else "red"),
        )
    return table


def _details(estimate: Estimate) -> Text:
    """Checkpointing, pruning and notes, one line each."""
    text = Text()
    if estimate.checkpoint:
        text.append("Checkpointed modules: ", style="bold")
        text.append(", ".join(estimate.checkpoint) + "\n")
        if estimate.recompute_flops is not None:
            share = (
                f" ({estimate.recompute_fraction:.0%} of the forward pass)"
                if estimate.recompute_fraction
                else ""
            )
            text.append(f"Recompute cost: {estimate.recompute_flops / 1e9:,.3g} GFLOP per step{share}\n")
        text.append(
            "Apply: run each module's forward through "
            "torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)\n",
            style="dim",
        )
    p = estimate.pruning
    if p is not None:
        text.append("Pruning: ", style="bold")
        text.append(
            f"{p.sparsity:.0%} {p.kind}; weights of {len(p.layers)} layers "
            f"{format_bytes(p.dense_weight_bytes)} -> {format_bytes(p.pruned_weight_bytes)} as stored; "
            f"CSR would take {format_bytes(p.csr_bytes)} (break-even {p.csr_break_even:.0%}, "
            f"COO {p.coo_break_even:.0%})\n"
        )
    o = estimate.offload
    if o is not None:
        text.append("Offload: ", style="bold")
        text.append(
            f"{o.offload} saves {format_bytes(o.gpu_saving_bytes)} of GPU peak; needs "
            f"{format_bytes(o.host_bytes)} of host RAM per GPU, {format_bytes(o.pinned_bytes)} of it pinned\n"
        )
    lora = estimate.lora
    if lora is not None:
        text.append("LoRA: ", style="bold")
        text.append(
            f"r={lora.rank} on {len(lora.layers)} layers; adapters {format_bytes(lora.adapter_param_bytes)} "
            f"({lora.adapter_params:,} weights, {lora.adapter_params / max(lora.base_params, 1):.2%} of the "
            "base model), trained; the base model frozen\n"
        )
    for note in estimate.notes:
        text.append(f"note: {note}\n", style="dim")
    if text.plain.endswith("\n"):
        text.right_crop(1)
    return text


def estimate_dict(estimate: Estimate, profile: Profile | None = None) -> dict[str, Any]:
    """The estimate's keys (the same names as a profile's) plus the profiled baseline."""
    profile = _profile_of(estimate, profile)
    data = estimate.to_dict()
    data["baseline"] = {
        "batch_size": profile.batch_size,
        "seq_len": profile.seq_len,
        "precision": profile.precision,
        "optimizer": profile.optimizer,
        "peak_bytes": profile.peak_bytes,
        "peak_phase": profile.peak_phase,
        "param_bytes": profile.param_bytes,
        "grad_bytes": profile.grad_bytes,
        "optimizer_state_bytes": profile.optimizer_state_bytes,
        "activation_bytes": profile.activation_bytes,
    }
    return data


def estimate_json(estimate: Estimate, profile: Profile | None = None) -> str:
    return json.dumps(estimate_dict(estimate, profile), indent=2)

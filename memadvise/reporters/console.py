"""The terminal report of a profile: summary, peak breakdown, top layers and the peak's holders."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from memadvise.profile import LayerStats, Profile
from memadvise.units import format_bytes

CATEGORY_LABELS = {
    "parameters": "parameters",
    "buffers": "buffers",
    "inputs": "inputs",
    "activations": "activations (saved for backward)",
    "gradients": "gradients",
    "optimizer_state": "optimizer state",
    "temporaries": "temporaries",
}


def module_label(name: str) -> str:
    return name if name else "(root)"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def summary(profile: Profile) -> RenderableType:
    head = Text()
    head.append("memadvise profile", style="bold")
    head.append(
        f"  {profile.model} · {profile.mode} · batch {profile.batch_size} · optimizer {profile.optimizer}"
        f" · {profile.device} · torch {profile.torch_version}\n"
    )
    head.append("Peak ", style="bold")
    head.append(format_bytes(profile.peak_bytes), style="bold magenta")
    head.append(f"  ({profile.peak_bytes:,} bytes)")
    if profile.peak_op:
        where = f" in {profile.peak_phase} of step {profile.peak_step + 1}, during {profile.peak_op}"
        where += f" in {module_label(profile.peak_module)}"
        head.append(where)
    return head


def breakdown_table(profile: Profile) -> Table:
    table = Table(title="Alive at the peak, by category", title_justify="left")
    table.add_column("category")
    table.add_column("size", justify="right")
    table.add_column("share", justify="right")
    for category, nbytes in sorted(profile.peak_breakdown.items(), key=lambda kv: -kv[1]):
        if nbytes:
            table.add_row(
                CATEGORY_LABELS.get(category, category),
                format_bytes(nbytes),
                _pct(nbytes, profile.peak_bytes),
            )
    table.add_row("total", format_bytes(profile.peak_bytes), "100.0%", style="bold")
    return table


def totals_table(profile: Profile) -> Table:
    table = Table(title="Model totals", title_justify="left")
    table.add_column("what")
    table.add_column("size", justify="right")
    rows = (
        ("parameters", profile.param_bytes),
        ("buffers", profile.buffer_bytes),
        ("inputs (one batch)", profile.input_bytes),
        ("gradients", profile.grad_bytes),
        ("optimizer state", profile.optimizer_state_bytes),
        ("activations saved at end of forward", profile.activation_bytes),
    )
    for label, nbytes in rows:
        table.add_row(label, format_bytes(nbytes))
    return table


def layer_weight(layer: LayerStats) -> int:
    """How much memory a layer stands for: what it owns plus what it saves for backward."""
    return layer.param_bytes + layer.grad_bytes + layer.optimizer_state_bytes + layer.activation_bytes


def layers_table(profile: Profile, top: int = 10) -> Table:
    rows = sorted(profile.layers, key=lambda layer: -layer_weight(layer))[:top]
    table = Table(
        title=f"Top {len(rows)} layers by memory (own parameters, gradients, state, activations)",
        title_justify="left",
    )
    for column in (
        "layer",
        "type",
        "params",
        "grads",
        "opt state",
        "activations",
        "output",
        "fwd temp",
        "bwd temp",
    ):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for layer in rows:
        table.add_row(
            module_label(layer.name),
            layer.type,
            *(
                format_bytes(v)
                for v in (
                    layer.param_bytes,
                    layer.grad_bytes,
                    layer.optimizer_state_bytes,
                    layer.activation_bytes,
                    layer.output_bytes,
                    layer.forward_temp_bytes,
                    layer.backward_temp_bytes,
                )
            ),
        )
    return table


def holders_table(profile: Profile, top: int = 10) -> Table:
    rows = profile.peak_holders[:top]
    table = Table(title=f"Who holds the peak (top {len(rows)})", title_justify="left")
    table.add_column("module")
    table.add_column("category")
    table.add_column("size", justify="right")
    table.add_column("share", justify="right")
    for holder in rows:
        table.add_row(
            module_label(holder.module),
            CATEGORY_LABELS.get(holder.category, holder.category),
            format_bytes(holder.bytes),
            _pct(holder.bytes, profile.peak_bytes),
        )
    return table


def render_profile(profile: Profile, top: int = 10) -> RenderableType:
    """The whole terminal report."""
    note = Text("Sizes in binary units: 1 MiB = 2^20 bytes, 1 GiB = 2^30 bytes.", style="dim")
    return Group(
        summary(profile),
        breakdown_table(profile),
        totals_table(profile),
        layers_table(profile, top),
        holders_table(profile, top),
        note,
    )

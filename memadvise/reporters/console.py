"""The terminal report of a profile: summary, timeline, peak breakdown, top layers and the peak's holders.

Also the module tree (``--tree``). Everything here returns rich renderables; nothing prints.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from memadvise.model.profile import LayerStats, Profile, module_label
from memadvise.model.units import format_bytes, format_share
from memadvise.reporters.hierarchy import ModuleNode, module_hierarchy
from memadvise.reporters.timeline import PHASE_SHORT, column_maxima

#: Category names where a table has no room for the long ones.
CATEGORY_SHORT_LABELS = {"activations": "activations"}

CATEGORY_LABELS = {
    "parameters": "parameters",
    "buffers": "buffers",
    "inputs": "inputs",
    "activations": "activations (saved for backward)",
    "gradients": "gradients",
    "optimizer_state": "optimizer state",
    "temporaries": "temporaries",
}


LOOP_LABELS = {"tutorial": "tutorial loop", "lean": "lean loop", "train_step": "train_step()"}


def summary(profile: Profile) -> RenderableType:
    head = Text()
    head.append("memadvise profile", style="bold")
    extra = "" if profile.precision == "fp32" else f" · {profile.precision}"
    extra += "" if profile.seq_len is None else f" · seq {profile.seq_len}"
    extra += f" · one rank of FSDP x{profile.fsdp_ranks}" if profile.fsdp_ranks else ""
    extra += f" · {LOOP_LABELS.get(profile.train_loop, profile.train_loop)}" if profile.train_loop else ""
    head.append(
        f"  {profile.model} · {profile.mode} · batch {profile.batch_size}{extra}"
        f" · optimizer {profile.optimizer}"
        f" · {profile.device}{' kernels (fake trace)' if profile.trace == 'fake' else ''}"
        f" · torch {profile.torch_version}\n"
    )
    head.append("Peak ", style="bold")
    head.append(format_bytes(profile.peak_bytes), style="bold magenta")
    head.append(f"  ({profile.peak_bytes:,} bytes)")
    if profile.peak_op:
        where = f" in {profile.peak_phase} of step {profile.peak_step + 1}, during {profile.peak_op}"
        where += f" in {module_label(profile.peak_module)}"
        head.append(where)
    for assumption in profile.assumptions:
        head.append(f"\nassumed: {assumption}", style="dim")
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
                format_share(nbytes, profile.peak_bytes),
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


LAYER_COLUMNS: tuple[str, ...] = (
    "layer",
    "type",
    "params",
    "grads",
    "opt state",
    "activations",
    "output",
    "fwd temp",
    "bwd temp",
)
#: The columns a narrow console leaves out first (the CSV and HTML reports always have them all).
LAYER_COLUMNS_DROPPED = ("type", "output", "fwd temp", "bwd temp", "grads", "opt state")


class LayersTable:
    """The top layers by memory, with whole names and unwrapped sizes: where the console is too narrow for
    every column, the least needed go (type first, then output and temporaries), and a line says which."""

    def __init__(self, profile: Profile, top: int = 10) -> None:
        self.rows = sorted(profile.layers, key=lambda layer: -layer_weight(layer))[:top]

    def table(self, columns: tuple[str, ...]) -> Table:
        table = Table(
            title=f"Top {len(self.rows)} layers by memory (own parameters, gradients, state, activations)",
            title_justify="left",
        )
        for column in columns:
            left = column in ("layer", "type")
            table.add_column(column, justify="left" if left else "right", no_wrap=True)
        for layer in self.rows:
            cells = {
                "layer": module_label(layer.name),
                "type": layer.type,
                "params": format_bytes(layer.param_bytes),
                "grads": format_bytes(layer.grad_bytes),
                "opt state": format_bytes(layer.optimizer_state_bytes),
                "activations": format_bytes(layer.activation_bytes),
                "output": format_bytes(layer.output_bytes),
                "fwd temp": format_bytes(layer.forward_temp_bytes),
                "bwd temp": format_bytes(layer.backward_temp_bytes),
            }
            table.add_row(*(cells[c] for c in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = LAYER_COLUMNS
        table = self.table(columns)
        unbounded = options.update(max_width=1 << 16)
        for drop in LAYER_COLUMNS_DROPPED:
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                break
            columns = tuple(c for c in columns if c != drop)
            table = self.table(columns)
        yield table
        left_out = [c for c in LAYER_COLUMNS if c not in columns]
        if left_out:
            yield Text(
                f"Left out at {options.max_width} columns: {', '.join(left_out)} "
                "(a wider terminal, --format csv or the HTML report shows them).",
                style="dim",
            )


class Fitted:
    """The first of several renderings (widest first) that fits the console without wrapping; the last
    one where none does."""

    def __init__(self, *choices: RenderableType) -> None:
        self.choices = choices

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        unbounded = options.update(max_width=1 << 16)
        for choice in self.choices[:-1]:
            if Measurement.get(console, unbounded, choice).maximum <= options.max_width:
                yield choice
                return
        yield self.choices[-1]


def layers_table(profile: Profile, top: int = 10) -> LayersTable:
    """The per-layer table of the terminal report (as many columns as the console has room for)."""
    return LayersTable(profile, top)


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
            format_share(holder.bytes, profile.peak_bytes),
        )
    return table


PHASE_STYLES = {"setup": "dim", "forward": "cyan", "backward": "magenta", "optimizer": "green"}
_EIGHTHS = " ▁▂▃▄▅▆▇█"


class TimelineChart:
    """A block chart of live memory over the traced steps, as wide as the console allows.

    Each column is the highest total among the operators it covers (so the peak is never lost), coloured
    by phase; the row below names the phases (fwd, bwd, opt) and the last row marks the peak with ``▲``.
    """

    def __init__(self, profile: Profile, height: int = 4) -> None:
        self.profile = profile
        self.height = max(1, height)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        timeline = self.profile.timeline
        if not len(timeline):
            yield Text("Timeline: no operators were traced.", style="dim")
            return
        top = max(timeline.totals())
        top_label, bottom_label = format_bytes(top), "0 B"
        gutter = max(len(top_label), len(bottom_label)) + 2  # label, space, axis
        columns = max(8, options.max_width - gutter)
        heights, phases, peak_column = column_maxima(timeline, columns)
        steps = len(set(timeline.step))
        yield Text.assemble(
            ("Timeline", "bold"),
            f"  live memory over {steps} step{'s' if steps != 1 else ''}, after each operator",
        )
        levels = self.height * 8
        ticks = [min(levels, max(1 if h > 0 else 0, round(h * levels / top))) if top else 0 for h in heights]
        for row in range(self.height - 1, -1, -1):
            label = top_label if row == self.height - 1 else (bottom_label if row == 0 else "")
            line = Text(label.rjust(gutter - 2) + " ┤" if label else " " * (gutter - 1) + "│")
            for tick, phase in zip(ticks, phases, strict=True):
                fill = min(8, max(0, tick - row * 8))
                line.append(_EIGHTHS[fill], style=PHASE_STYLES.get(phase, ""))
            yield line
        yield Text(" " * gutter) + _phase_row(phases)
        if peak_column is not None:
            yield Text(" " * gutter) + _peak_row(peak_column, columns, f"peak {top_label}")


def _phase_row(phases: list[str]) -> Text:
    """``fwd────bwd──opt─────…``: each run of one phase starts with its short name, or with its first letter
    where the name does not fit (``f─b─opt──``), so that neighbouring names never run together."""
    row = Text()
    start = 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            width = i - start
            name = PHASE_SHORT.get(phases[start], phases[start])
            if width <= len(name):
                name = name[0] if width > 1 or i == len(phases) else ""
            row.append(name.ljust(width, "─"), style=PHASE_STYLES.get(phases[start], ""))
            start = i
    return row


def _peak_row(column: int, columns: int, label: str) -> Text:
    """``▲ peak 12.0 MiB`` under the peak column; near the right edge the label goes left of the ``▲``."""
    if column + 2 + len(label) <= columns or column <= len(label):
        row = Text(" " * column + "▲ ", style="bold") + Text(label, style="bold magenta")
        row.truncate(columns)
        return row
    return (
        Text(" " * (column - len(label) - 1)) + Text(label, style="bold magenta") + Text(" ▲", style="bold")
    )


def timeline_chart(profile: Profile, height: int = 4) -> TimelineChart:
    """The compact terminal timeline shown under the summary of ``memadvise profile``."""
    return TimelineChart(profile, height)


CATEGORY_SHORT = {
    "parameters": "params",
    "buffers": "buffers",
    "inputs": "inputs",
    "activations": "acts",
    "gradients": "grads",
    "optimizer_state": "opt",
    "temporaries": "temps",
}


def _node_label(node: ModuleNode, peak: int, root_name: str) -> Text:
    """``0 (GPT2Block)  27.0 MiB  13.8%  acts 18.0 MiB · opt 6.0 MiB · params 3.0 MiB +1``."""
    name = root_name if node.name == "" else node.local_name
    text = Text(
        name,
        style="bold" if node.name == "" else ("" if node.is_model_module else "italic"),
        no_wrap=True,
        overflow="ellipsis",
    )
    if node.type:
        text.append(f" ({node.type})", style="dim")
    text.append(f"  {format_bytes(node.total)}", style="bold")
    text.append(f"  {format_share(node.total, peak)}")
    parts = sorted(node.by_category.items(), key=lambda kv: -kv[1])
    shown = " · ".join(f"{CATEGORY_SHORT.get(c, c)} {format_bytes(n)}" for c, n in parts[:3])
    if len(parts) > 3:
        shown += f" +{len(parts) - 3}"
    if shown:
        text.append(f"  {shown}", style="dim")
    return text


def module_tree(profile: Profile, max_depth: int | None = None) -> RenderableType:
    """What is alive at the peak by module hierarchy: subtree totals, largest first.

    Modules holding nothing at the peak are left out; below ``max_depth`` levels the subtrees are folded
    into their parent's total.
    """
    root = module_hierarchy(profile)
    peak = root.total
    tree = Tree(_node_label(root, peak, profile.model), guide_style="dim")
    hidden = sum(1 for node in root.walk() if node.total == 0)
    folded = 0

    def add(parent: Tree, node: ModuleNode, depth: int) -> None:
        nonlocal folded
        for child in node.children:
            if child.total == 0:
                continue
            if max_depth is not None and depth >= max_depth:
                folded += sum(1 for n in child.walk() if n.total)
                continue
            add(parent.add(_node_label(child, peak, "")), child, depth + 1)

    add(tree, root, 0)
    notes = []
    if folded:
        notes.append(f"{folded} deeper modules folded into their parents (--depth {max_depth})")
    if hidden:
        verb = "modules hold" if hidden != 1 else "module holds"
        notes.append(f"{hidden} {verb} nothing at the peak")
    title = Text("Alive at the peak, by module", style="bold")
    title.append("  (each line: the module and everything under it)", style="dim")
    parts: list[RenderableType] = [title, tree]
    if notes:
        parts.append(Text("; ".join(notes) + ".", style="dim"))
    return Group(*parts)


def leaks_section(profile: Profile, top: int = 10) -> RenderableType:
    """Live memory after each step and the leaks (only for traces of three steps or more)."""
    after = " → ".join(format_bytes(n) for n in profile.live_after_step)
    head = Text.assemble(("Leaks", "bold"), f"  live after each of {profile.steps} steps: {after}")
    if not profile.leaks:
        return Group(
            head, Text("No leak: nothing allocated in one step outlives the next ones.", style="green")
        )
    head.append("\n")
    head.append(f"Leaking {format_bytes(profile.leak_bytes_per_step)} per step", style="bold red")
    table = Table(title="Tensors that outlive their step, by origin", title_justify="left")
    for column in ("per step", "module", "operator", "created at"):
        table.add_column(column, justify="right" if column == "per step" else "left")
    for leak in profile.leaks[:top]:
        table.add_row(
            format_bytes(leak.bytes_per_step), module_label(leak.module), leak.op, leak.source or "-"
        )
    return Group(head, table)


def health_section(profile: Profile, top: int = 10) -> RenderableType:
    """Numerical health: flags, advice and the layers with the largest activations."""
    health = profile.health
    assert health is not None
    parts: list[RenderableType] = [Text("Numerical health", style="bold")]
    for line in health.advice:
        parts.append(Text(f"• {line}", style="yellow" if health.flags else "green"))
    rows = sorted(health.layers, key=lambda layer: -(layer.max_abs_activation or 0.0))[:top]
    table = Table(title=f"Largest activations (top {len(rows)})", title_justify="left")
    for column in ("layer", "max |activation|", "grad norm", "grads < fp16 normal"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in rows:
        act = "nan/inf" if layer.nonfinite else f"{layer.max_abs_activation or 0.0:.3g}"
        norm = "-" if layer.grad_norm is None else f"{layer.grad_norm:.3g}"
        table.add_row(module_label(layer.name), act, norm, f"{layer.grad_below_fp16_normal:.0%}")
    parts.append(table)
    return Group(*parts)


def host_memory_line(profile: Profile) -> RenderableType:
    host = profile.host_memory
    assert host is not None
    text = Text.assemble(
        ("Host RAM for data loading ", "bold"), (format_bytes(host.total_bytes), "bold magenta")
    )
    text.append(
        f"  ({host.workers} workers x prefetch {host.prefetch_factor}: {format_bytes(host.prefetched_bytes)}"
        f" prefetched; pinned: {format_bytes(host.pinned_bytes)}; one batch {format_bytes(host.batch_bytes)};"
        f" from {host.source})"
    )
    return text


def render_profile(
    profile: Profile, top: int = 10, tree: bool = False, depth: int | None = None
) -> RenderableType:
    """The whole terminal report; ``tree=True`` adds the module tree (to ``depth`` levels)."""
    note = Text("Sizes in binary units: 1 MiB = 2^20 bytes, 1 GiB = 2^30 bytes.", style="dim")
    parts: list[RenderableType] = [
        summary(profile),
        timeline_chart(profile),
        breakdown_table(profile),
        totals_table(profile),
        layers_table(profile, top),
        holders_table(profile, top),
    ]
    if tree:
        parts.append(module_tree(profile, depth))
    if profile.steps >= 3 and profile.live_after_step:
        parts.append(leaks_section(profile, top))
    if profile.health is not None:
        parts.append(health_section(profile, top))
    if profile.host_memory is not None:
        parts.append(host_memory_line(profile))
    if profile.generation is not None:
        from memadvise.reporters.generation import generation_section

        parts.append(generation_section(profile))
    parts.append(note)
    return Group(*parts)

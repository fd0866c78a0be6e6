"""The HTML report of a profile: one self-contained file (inline SVG and CSS, a few lines of JS).

Nothing is fetched when the file is opened — no network, no CDN, no fonts. The timeline chart is drawn
here, in Python, as SVG, so the file shows the same picture with scripts disabled; the only script sorts
the per-layer table and opens or closes the whole module tree at once (``<details>`` elements collapse
without it).

Every string that comes from the model — module, type and operator names, the model's name — is
HTML-escaped. The size of the file is bounded: the chart draws at most :data:`MAX_CHART_POINTS` samples
(the highest of each stretch, the peak always kept); everything else grows with the number of modules.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from memadvise.model.profile import Profile, Timeline, module_label
from memadvise.model.units import format_bytes, format_share
from memadvise.reporters.hierarchy import ModuleNode, module_hierarchy
from memadvise.reporters.timeline import downsample, peak_sample, phase_segments, stack_categories

MAX_CHART_POINTS = 1200
"""At most this many timeline samples are drawn (the plot is under 900 px wide, so none is lost to sight)."""

CATEGORY_COLORS = {
    "parameters": "#4c72b0",
    "buffers": "#8c8c8c",
    "inputs": "#937860",
    "optimizer_state": "#8172b3",
    "gradients": "#dd8452",
    "activations": "#55a868",
    "temporaries": "#c44e52",
}
CATEGORY_NAMES = {
    "parameters": "parameters",
    "buffers": "buffers",
    "inputs": "inputs",
    "optimizer_state": "optimizer state",
    "gradients": "gradients",
    "activations": "activations (saved for backward)",
    "temporaries": "temporaries",
}
PHASE_COLORS = {"setup": "#f0f0f0", "forward": "#e6eef8", "backward": "#f8ece4", "optimizer": "#e9f3e6"}
_TRACE_NAMES = {
    "real": "real (allocator events)",
    "fake": "fake (meta device, nothing allocated)",
}
PHASE_NAMES = {"setup": "setup", "forward": "forward", "backward": "backward", "optimizer": "optimizer"}

Cell = str | int | float


@dataclass(frozen=True)
class ReportTable:
    """A titled table for an optional section of the report (what-if estimates, the plan's options).

    Cells are shown as given, except integers in ``byte_columns``, which are shown as sizes (the exact
    byte count in the tooltip). Every column sorts; numbers sort as numbers.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""
    byte_columns: frozenset[str] = field(default_factory=frozenset)


def esc(value: object) -> str:
    """Escape text for HTML element content and quoted attribute values (SVG included)."""
    return html.escape(str(value), quote=True)


def _color(category: str) -> str:
    return CATEGORY_COLORS.get(category, "#bcbd22")


def _name(category: str) -> str:
    return CATEGORY_NAMES.get(category, category)


def _size_cell(nbytes: int) -> str:
    """A sortable table cell holding a size (the exact byte count in its tooltip)."""
    return f'<td class="num" data-v="{nbytes}" title="{nbytes:,} bytes">{esc(format_bytes(nbytes))}</td>'


def _size_span(nbytes: int) -> str:
    return f'<span title="{nbytes:,} bytes">{esc(format_bytes(nbytes))}</span>'


# -- the timeline chart -----------------------------------------------------------------------------
_BINARY_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))


def nice_axis(top: int, ticks: int = 5) -> tuple[int, int]:
    """``(axis_max, step)`` in bytes: a round step (1, 2, 2.5 or 5 × 10^k in a binary unit) ≥ ``top``."""
    top = max(int(top), 1)
    unit = 1
    for _, size in _BINARY_UNITS:
        if top >= size:
            unit = size
    raw = top / unit / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        step_units = factor * magnitude
        if step_units >= raw:
            break
    step = max(1, int(round(step_units * unit)))
    axis_max = step * math.ceil(top / step)
    return axis_max, step


def _tick_label(value: int) -> str:
    if value == 0:
        return "0"
    for unit, size in reversed(_BINARY_UNITS):
        if value >= size:
            number = value / size
            return f"{number:.{0 if number == int(number) else 1}f} {unit}"
    return f"{value} B"


class _Chart:
    """Geometry of the timeline chart (in SVG user units)."""

    width = 960
    height = 340
    left = 78
    right = 18
    top = 30
    bottom = 40

    def __init__(self, timeline: Timeline, axis_max: int) -> None:
        self.x0 = timeline.index[0]
        self.x1 = max(timeline.index[-1], self.x0 + 1)
        self.axis_max = axis_max
        self.plot_w = self.width - self.left - self.right
        self.plot_h = self.height - self.top - self.bottom

    def x(self, index: int) -> float:
        return self.left + self.plot_w * (index - self.x0) / (self.x1 - self.x0)

    def y(self, nbytes: int) -> float:
        return self.top + self.plot_h * (1 - nbytes / self.axis_max)


def _num(v: float) -> str:
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def timeline_svg(profile: Profile, max_points: int = MAX_CHART_POINTS) -> str:
    """Stacked areas of live bytes by category, phase bands, and the peak marked; ``""`` if empty."""
    tl = profile.timeline
    if not len(tl):
        return ""
    totals = tl.totals()
    peak = peak_sample(tl)
    assert peak is not None
    axis_max, step = nice_axis(max(max(totals), 1))
    chart = _Chart(tl, axis_max)
    kept = downsample(tl, max_points)
    categories = stack_categories(tl)
    steps = len(set(tl.step))
    out: list[str] = [
        f'<svg id="timeline-chart" class="chart" viewBox="0 0 {chart.width} {chart.height}" '
        f'role="img" '
        f'aria-label="Live memory by category over {steps} traced steps; '
        f'peak {esc(format_bytes(totals[peak]))}" '
        f'data-x0="{chart.x0}" data-x1="{chart.x1}" data-ymax="{axis_max}" data-points="{len(kept)}">'
    ]
    # phase bands, labelled in the top margin
    out.append('<g class="bands">')
    segments = phase_segments(tl)
    for k, seg in enumerate(segments):
        xa = chart.x(tl.index[seg.start])
        xb = chart.x(tl.index[segments[k + 1].start]) if k + 1 < len(segments) else chart.x(chart.x1)
        phase = PHASE_NAMES.get(seg.phase, seg.phase)
        title = f"{phase}, step {seg.step + 1}: {seg.stop - seg.start} samples"
        out.append(
            f'<rect class="band" data-phase="{esc(seg.phase)}" data-step="{seg.step + 1}" '
            f'x="{_num(xa)}" y="{chart.top}" width="{_num(max(xb - xa, 0.5))}" height="{chart.plot_h}" '
            f'fill="{PHASE_COLORS.get(seg.phase, "#f4f4f4")}"><title>{esc(title)}</title></rect>'
        )
        long_label, short_label = f"{phase} · step {seg.step + 1}", seg.label
        label = long_label if xb - xa > 7 * len(long_label) else (short_label if xb - xa > 34 else "")
        if label:
            out.append(
                f'<text class="band-label" x="{_num((xa + xb) / 2)}" y="{chart.top - 8}" '
                f'text-anchor="middle">{esc(label)}</text>'
            )
    out.append("</g>")
    # grid and y axis
    out.append('<g class="grid">')
    value = 0
    while value <= axis_max:
        y = chart.y(value)
        out.append(
            f'<line x1="{chart.left}" x2="{chart.width - chart.right}" y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="tick" x="{chart.left - 6}" y="{_num(y + 4)}" text-anchor="end">'
            f"{esc(_tick_label(value))}</text>"
        )
        value += step
    out.append("</g>")
    out.append(
        f'<rect id="plot-area" x="{chart.left}" y="{chart.top}" width="{chart.plot_w}" '
        f'height="{chart.plot_h}" fill="none" stroke="#999"/>'
    )
    # stacked areas, bottom to top
    out.append('<g class="series-group">')
    lower = [0] * len(kept)
    for category in categories:
        column = tl.bytes[category]
        upper = [lower[j] + column[i] for j, i in enumerate(kept)]
        xs = [chart.x(tl.index[i]) for i in kept]
        top_edge = " L".join(f"{_num(x)},{_num(chart.y(v))}" for x, v in zip(xs, upper, strict=True))
        if any(lower):
            bottom_edge = " L".join(
                f"{_num(x)},{_num(chart.y(v))}" for x, v in zip(reversed(xs), reversed(lower), strict=True)
            )
        else:
            bottom_edge = f"{_num(xs[-1])},{_num(chart.y(0))} L{_num(xs[0])},{_num(chart.y(0))}"
        at_peak = column[peak]
        out.append(
            f'<path class="series" data-category="{esc(category)}" fill="{_color(category)}" '
            f'd="M{top_edge} L{bottom_edge} Z"><title>{esc(_name(category))}: '
            f"{esc(format_bytes(at_peak))} at the peak</title></path>"
        )
        lower = upper
    out.append("</g>")
    # the peak
    px, py = chart.x(tl.index[peak]), chart.y(totals[peak])
    label = f"peak {format_bytes(totals[peak])}"
    anchor_right = px > chart.left + chart.plot_w * 0.7
    lx = px - 8 if anchor_right else px + 8
    where = f"{PHASE_NAMES.get(tl.phase[peak], tl.phase[peak])} of step {tl.step[peak] + 1}"
    tooltip = f"{label} ({totals[peak]:,} bytes): {where}, {tl.op[peak]} in {module_label(tl.module[peak])}"
    out.append(
        f'<g id="peak-marker" data-index="{tl.index[peak]}" data-sample="{peak}" data-bytes="{totals[peak]}" '
        f'pointer-events="none"><title>{esc(tooltip)}</title>'
        f'<line x1="{_num(px)}" x2="{_num(px)}" y1="{chart.top}" y2="{chart.top + chart.plot_h}" '
        f'class="peak-line"/>'
        f'<circle cx="{_num(px)}" cy="{_num(py)}" r="4.5" class="peak-dot" pointer-events="visiblePainted"/>'
        f'<text x="{_num(lx)}" y="{_num(max(py, chart.top + 14) + 4)}" '
        f'text-anchor="{"end" if anchor_right else "start"}" class="peak-label">{esc(label)}</text></g>'
    )
    out.append(
        f'<text class="axis-label" x="{chart.left + chart.plot_w / 2:.0f}" y="{chart.height - 8}" '
        f'text-anchor="middle">operators, in execution order ({steps} step{"s" if steps != 1 else ""})</text>'
        f'<text class="axis-label" transform="translate(14 {chart.top + chart.plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">live memory</text>'
    )
    out.append("</svg>")
    return "".join(out)


def _legend(profile: Profile) -> str:
    tl = profile.timeline
    peak = peak_sample(tl)
    items = []
    for category in reversed(stack_categories(tl)):
        at_peak = tl.bytes[category][peak] if peak is not None else 0
        items.append(
            f'<li data-category="{esc(category)}">'
            f'<i class="swatch" style="background:{_color(category)}"></i>'
            f'{esc(_name(category))} <span class="muted">{_size_span(at_peak)} at the peak</span></li>'
        )
    phases = []
    for phase in ("forward", "backward", "optimizer"):
        if phase in tl.phase:
            phases.append(
                f'<li><i class="swatch band-swatch" style="background:{PHASE_COLORS[phase]}"></i>'
                f"{PHASE_NAMES[phase]}</li>"
            )
    return f'<ul class="legend">{"".join(items)}</ul><ul class="legend phases">{"".join(phases)}</ul>'


# -- alive at the peak ------------------------------------------------------------------------------
def _stacked_bar(by_category: dict[str, int], whole: int) -> str:
    parts = []
    for category, nbytes in sorted(by_category.items(), key=lambda kv: -kv[1]):
        if nbytes and whole:
            parts.append(
                f'<i style="width:{100.0 * nbytes / whole:.3f}%;background:{_color(category)}" '
                f'title="{esc(_name(category))}: {esc(format_bytes(nbytes))}"></i>'
            )
    return f'<span class="bar">{"".join(parts)}</span>'


def _category_section(profile: Profile) -> str:
    breakdown = {c: n for c, n in profile.peak_breakdown.items() if n}
    rows = []
    for category, nbytes in sorted(breakdown.items(), key=lambda kv: -kv[1]):
        rows.append(
            f'<tr><td><i class="swatch" style="background:{_color(category)}"></i>{esc(_name(category))}</td>'
            f'<td class="num">{_size_span(nbytes)}</td>'
            f'<td class="num">{format_share(nbytes, profile.peak_bytes)}</td></tr>'
        )
    rows.append(
        f'<tr class="total"><td>total</td><td class="num">{_size_span(profile.peak_bytes)}</td>'
        '<td class="num">100.0%</td></tr>'
    )
    return (
        '<div id="by-category"><h3>By category</h3>'
        f'<div class="wide-bar">{_stacked_bar(breakdown, profile.peak_bytes)}</div>'
        f'<table class="compact"><thead><tr><th>category</th><th class="num">size</th>'
        f'<th class="num">share</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _tree_row(node: ModuleNode, peak: int, root_name: str) -> str:
    name = root_name if node.name == "" else node.local_name
    details = "; ".join(
        f"{_name(c)} {format_bytes(n)}" for c, n in sorted(node.by_category.items(), key=lambda kv: -kv[1])
    )
    own = f"own {format_bytes(node.own_total)}" if node.children and node.own_total else ""
    cls = "node" if node.is_model_module else "node outside"
    return (
        f'<span class="{cls}" title="{esc(module_label(node.name))}: {esc(details)}">'
        f'<span class="mname">{esc(name)}</span> <span class="mtype">{esc(node.type)}</span></span>'
        f"{_stacked_bar(node.by_category, peak)}"
        f'<span class="num size" title="{node.total:,} bytes">{esc(format_bytes(node.total))}</span>'
        f'<span class="num share">{format_share(node.total, peak)}</span>'
        f'<span class="own">{esc(own)}</span>'
    )


def _tree_html(node: ModuleNode, peak: int, root_name: str, depth: int, open_depth: int) -> str:
    kids = [child for child in node.children if child.total]
    row = _tree_row(node, peak, root_name)
    if not kids:
        return f'<div class="leaf" data-module="{esc(node.name)}">{row}</div>'
    inner = "".join(_tree_html(child, peak, root_name, depth + 1, open_depth) for child in kids)
    is_open = " open" if depth < open_depth else ""
    return (
        f'<details data-module="{esc(node.name)}"{is_open}><summary>{row}</summary>'
        f'<div class="children">{inner}</div></details>'
    )


def _module_section(profile: Profile, open_depth: int = 2) -> str:
    root = module_hierarchy(profile)
    hidden = sum(1 for node in root.walk() if node.total == 0)
    note = (
        f'<p class="muted">{hidden} module{"s" if hidden != 1 else ""} holding nothing at the peak '
        f"{'are' if hidden != 1 else 'is'} left out.</p>"
        if hidden
        else ""
    )
    return (
        '<div id="by-module"><h3>By module <span class="muted">(each row: the module and everything under '
        "it; click to open or close)</span></h3>"
        '<p class="buttons"><button type="button" data-expand="all">open all</button> '
        '<button type="button" data-expand="none">close all</button></p>'
        f'<div id="module-tree">{_tree_html(root, root.total, profile.model, 0, open_depth)}</div>'
        f"{note}</div>"
    )


# -- tables -----------------------------------------------------------------------------------------
_LAYER_COLUMNS = (
    ("layer", "name", False),
    ("type", "type", False),
    ("calls", "calls", True),
    ("params", "param_bytes", True),
    ("buffers", "buffer_bytes", True),
    ("grads", "grad_bytes", True),
    ("opt state", "optimizer_state_bytes", True),
    ("activations", "activation_bytes", True),
    ("output", "output_bytes", True),
    ("fwd temp", "forward_temp_bytes", True),
    ("bwd temp", "backward_temp_bytes", True),
)


def _th(label: str, numeric: bool) -> str:
    kind = "num" if numeric else "text"
    cls = ' class="num"' if numeric else ""
    return f'<th data-type="{kind}"{cls} tabindex="0">{esc(label)}</th>'


def _layers_section(profile: Profile) -> str:
    at_peak = {node.name: node.own_total for node in module_hierarchy(profile).walk()}
    head = "".join(_th(label, numeric) for label, _, numeric in _LAYER_COLUMNS) + _th("at peak", True)
    rows = []
    for layer in profile.layers:
        cells = []
        for _, attr, numeric in _LAYER_COLUMNS:
            value = getattr(layer, attr)
            if not numeric:
                shown = module_label(value) if attr == "name" else value
                cells.append(f'<td data-v="{esc(value)}">{esc(shown)}</td>')
            elif attr == "calls":
                cells.append(f'<td class="num" data-v="{value}">{value}</td>')
            else:
                cells.append(_size_cell(value))
        own = at_peak.get(layer.name, 0)
        cells.append(_size_cell(own))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<section id="layers" class="wide"><h2>Memory per layer</h2>'
        '<p class="muted">Each module\'s own parameters, buffers, gradients and optimizer state; the '
        "activations it saved for backward (alive at the end of forward); its outputs; the highest rise of "
        "live memory while its forward and backward ran; and what it held at the peak. Click a column "
        "to sort.</p>"
        f'<div class="scroll"><table id="layer-table" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _report_table_section(section_id: str, table: ReportTable) -> str:
    numeric = [
        all(isinstance(row[k], (int, float)) for row in table.rows if k < len(row))
        for k in range(len(table.columns))
    ]
    head = "".join(_th(col, numeric[k]) for k, col in enumerate(table.columns))
    rows = []
    for row in table.rows:
        cells = []
        for k, value in enumerate(row):
            column = table.columns[k] if k < len(table.columns) else ""
            if isinstance(value, int) and column in table.byte_columns:
                cells.append(_size_cell(value))
            elif isinstance(value, (int, float)):
                cells.append(f'<td class="num" data-v="{value}">{esc(value)}</td>')
            else:
                cells.append(f'<td data-v="{esc(value)}">{esc(value)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    note = f'<p class="muted">{esc(table.note)}</p>' if table.note else ""
    return (
        f'<section id="{section_id}" class="wide"><h2>{esc(table.title)}</h2>{note}'
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


# -- the page ---------------------------------------------------------------------------------------
_CSS = """
:root{--fg:#1d1f23;--muted:#646b75;--line:#d9dce1;--bg:#fff;--head:#f5f6f8}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 48px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header,section,footer,section.wide>h2,section.wide>p{max-width:1180px}section.wide{max-width:none}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.muted{color:var(--muted);font-weight:normal}
.headline{font-size:16px;margin:6px 0 14px}.headline b{color:#8e2b7a}
dl.meta{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:2px 14px;margin:0;
background:var(--head);padding:10px 14px;border-radius:6px}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;font-variant-numeric:tabular-nums}
svg.chart{width:100%;height:auto;display:block;font-size:11px}
svg .grid line{stroke:#e3e5e8;stroke-width:1}svg .tick{fill:var(--muted)}
svg .band-label{fill:#4a4f57;font-size:11px}svg .axis-label{fill:var(--muted);font-size:12px}
svg .series{stroke:none}svg .peak-line{stroke:#222;stroke-width:1;stroke-dasharray:4 3}
svg .peak-dot{fill:#fff;stroke:#222;stroke-width:2}svg .peak-label{font-weight:600;font-size:12px;fill:#222;
paint-order:stroke;stroke:#fff;stroke-width:3px}
ul.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 18px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.band-swatch{border:1px solid #c9ccd1}
.bar{display:inline-flex;height:12px;background:#eef0f3;border-radius:2px;overflow:hidden;vertical-align:-1px}
.bar i{display:block;height:100%}
.wide-bar .bar{width:100%;height:18px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:var(--head);position:sticky;top:0}
.num{text-align:right}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
table.compact{margin-top:8px}tr.total td{font-weight:600}
.scroll{display:inline-block;max-width:100%;max-height:80vh;overflow:auto;border:1px solid var(--line);
border-radius:4px;vertical-align:top}
#module-tree{font-variant-numeric:tabular-nums}
#module-tree summary,#module-tree .leaf{display:grid;
grid-template-columns:minmax(220px,1fr) 240px 90px 60px 130px;gap:10px;align-items:center;padding:1px 0}
#module-tree summary{cursor:pointer;list-style:none}
#module-tree summary::-webkit-details-marker{display:none}
#module-tree summary .node::before{content:"\\25B8";display:inline-block;width:14px;color:var(--muted)}
#module-tree details[open]>summary .node::before{content:"\\25BE"}
#module-tree .leaf .node{padding-left:14px}
#module-tree .children{margin-left:16px;border-left:1px dotted #c5c9cf;padding-left:6px}
#module-tree .bar{width:240px}
#module-tree .mtype{color:var(--muted)}#module-tree .outside .mname{font-style:italic}
#module-tree .own{color:var(--muted);font-size:12px}
.buttons button{font:inherit;font-size:12px;padding:1px 8px}
footer{margin-top:36px;color:var(--muted);font-size:12px}
"""

_JS = """
(function(){
function val(row,col,num){var v=row.cells[col].getAttribute('data-v');return num?parseFloat(v):v;}
document.querySelectorAll('table.sortable th').forEach(function(th){
 th.addEventListener('click',function(){
  var table=th.closest('table'),body=table.tBodies[0],col=th.cellIndex,num=th.dataset.type==='num';
  var asc=th.getAttribute('aria-sort')?th.getAttribute('aria-sort')==='descending':!num;
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=val(a,col,num),y=val(b,col,num);var c=num?x-y:String(x).localeCompare(y);
   return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});
  table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',asc?'ascending':'descending');});
 th.addEventListener('keydown',function(e){if(e.key==='Enter'){th.click();}});});
document.querySelectorAll('button[data-expand]').forEach(function(b){b.addEventListener('click',function(){
 var open=b.getAttribute('data-expand')==='all';
 document.querySelectorAll('#module-tree details').forEach(function(d){d.open=open;});});});
})();
"""


def _meta(profile: Profile, generated: str) -> str:
    from memadvise._version import __version__

    items = [
        ("model", profile.model),
        ("mode", profile.mode),
        ("batch size", profile.batch_size),
        ("optimizer", profile.optimizer),
        ("training loop", profile.train_loop or "—"),
        ("device", profile.device),
        ("trace", _TRACE_NAMES.get(profile.trace, profile.trace)),
        ("torch", profile.torch_version or "unknown"),
        ("profiled", profile.created or "unknown"),
        ("report written", generated),
        ("steps traced", profile.steps),
        ("timeline samples", len(profile.timeline)),
        ("memadvise", __version__),
    ]
    cells = "".join(f'<dt>{esc(k)}</dt><dd data-field="{esc(k)}">{esc(v)}</dd>' for k, v in items)
    meta = f'<dl class="meta">{cells}</dl>'
    if profile.assumptions:
        listed = "".join(f"<li>{esc(a)}</li>" for a in profile.assumptions)
        meta += f'<div id="assumptions"><h3>Assumptions of this trace</h3><ul>{listed}</ul></div>'
    return meta


def _headline(profile: Profile) -> str:
    text = f"<b>Peak {esc(format_bytes(profile.peak_bytes))}</b> ({profile.peak_bytes:,} bytes)"
    if profile.peak_op:
        text += (
            f" in {esc(profile.peak_phase)} of step {profile.peak_step + 1}, during "
            f"<code>{esc(profile.peak_op)}</code> in <code>{esc(module_label(profile.peak_module))}</code>"
        )
    return f'<p class="headline">{text}</p>'


def render_html(
    profile: Profile,
    *,
    what_if: ReportTable | None = None,
    plan: ReportTable | None = None,
    extra: Sequence[ReportTable] = (),
    generated: str | None = None,
    max_points: int = MAX_CHART_POINTS,
) -> str:
    """The whole report as one HTML document (a string; nothing is written or printed).

    ``what_if`` (estimates of other scenarios) and ``plan`` (the plan's options) are optional sections,
    rendered only when given; ``extra`` adds further tables at the end. ``generated`` is the time shown
    as "report written" (default: now, UTC).
    """
    when = generated or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    chart = timeline_svg(profile, max_points)
    if chart:
        timeline = chart + _legend(profile)
        totals = profile.timeline.totals()
        if max(totals) != profile.peak_bytes:
            timeline += (
                f'<p class="muted">The highest traced sample is {esc(format_bytes(max(totals)))}; the '
                f"profile's peak, {esc(format_bytes(profile.peak_bytes))}, was reached before the first "
                "operator (memory allocated before the trace).</p>"
            )
    else:
        timeline = '<p class="muted">No operators were traced, so there is no timeline.</p>'
    sections = [
        '<section id="timeline"><h2>Memory over the traced steps</h2>'
        '<p class="muted">Live bytes by category after each operator, stacked; shaded bands are the phases '
        f"of each step. Hover for details.</p>{timeline}</section>",
        f'<section id="at-peak"><h2>Alive at the peak</h2>{_category_section(profile)}'
        f"{_module_section(profile)}</section>",
        _layers_section(profile),
    ]
    if what_if is not None:
        sections.append(_report_table_section("what-if", what_if))
    if plan is not None:
        sections.append(_report_table_section("plan-options", plan))
    for k, table in enumerate(extra):
        sections.append(_report_table_section(f"extra-{k + 1}", table))
    title = f"memadvise report: {profile.model}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{_headline(profile)}{_meta(profile, when)}</header>"
        f"{''.join(sections)}"
        "<footer>Sizes in binary units: 1 KiB = 2^10 bytes, 1 MiB = 2^20 bytes, 1 GiB = 2^30 bytes; hover a "
        "size for the exact byte count. Opening this file fetches nothing: "
        f"no network, no fonts, no scripts from elsewhere.</footer><script>{_JS}</script></body></html>\n"
    )

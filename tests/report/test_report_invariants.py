"""What the terminal reports say must hold together: rows sum to their totals, the peak is the same
number everywhere it is printed, names are unique and no size is broken across lines.

A golden file only says that a rendering has not changed; these checks say whether it is right. They
read the golden files as they are frozen in tests/report/golden (without changing them) and fresh
renderings of the same hand-built profile at several console widths, parsing the text a user sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fixed_width import render_text
from report_profiles import toy_profile

from memadvise.reporters.console import module_tree, render_profile, timeline_chart

GOLDEN = Path(__file__).resolve().parent / "golden"
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
SIZE = re.compile(r"^(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)$")
CATEGORY_TABLE = "Alive at the peak, by category"
LAYER_TABLE = "Top "
HOLDER_TABLE = "Who holds the peak"
TREE_TITLE = "Alive at the peak, by module"


def size(text: str) -> tuple[float, float]:
    """``"57.1 MiB"`` -> (bytes, half of the last printed digit in bytes: the rounding error)."""
    match = SIZE.match(text.strip())
    assert match, f"not a size: {text!r}"
    number, unit = match.groups()
    decimals = len(number.partition(".")[2])
    return float(number) * UNITS[unit], 0.5 * 10**-decimals * UNITS[unit]


def percent(text: str) -> float:
    return float(text.strip().rstrip("%"))


# --------------------------------------------------------------------------- the texts


def _profile_report(width: int) -> str:
    return render_text(render_profile(toy_profile(), top=5, tree=True), width=width)


REPORTS: dict[str, Callable[[], str]] = {
    "golden/profile_report.txt": lambda: (GOLDEN / "profile_report.txt").read_text(encoding="utf-8"),
    "golden/profile_report_tree.txt": lambda: (GOLDEN / "profile_report_tree.txt").read_text(
        encoding="utf-8"
    ),
    "80 columns": lambda: _profile_report(80),
    "100 columns": lambda: _profile_report(100),
    "160 columns": lambda: _profile_report(160),
}
TREES: dict[str, Callable[[], str]] = {
    "golden/module_tree.txt": lambda: (GOLDEN / "module_tree.txt").read_text(encoding="utf-8"),
    "golden/module_tree_depth1.txt": lambda: (GOLDEN / "module_tree_depth1.txt").read_text(encoding="utf-8"),
    "golden/profile_report_tree.txt": lambda: (GOLDEN / "profile_report_tree.txt").read_text(
        encoding="utf-8"
    ),
    "80 columns": lambda: render_text(module_tree(toy_profile()), width=80),
    "160 columns": lambda: render_text(module_tree(toy_profile()), width=160),
}
TIMELINES: dict[str, Callable[[], str]] = {
    "golden/timeline_w60.txt": lambda: (GOLDEN / "timeline_w60.txt").read_text(encoding="utf-8"),
    "golden/profile_report.txt": lambda: (GOLDEN / "profile_report.txt").read_text(encoding="utf-8"),
    "100 columns": lambda: render_text(timeline_chart(toy_profile()), width=100),
}


def _header_peak(text: str) -> float:
    """The exact byte count of the header line ``Peak 57.1 MiB  (59,867,136 bytes) ...``."""
    match = re.search(r"^Peak (\S+ \S+)\s+\(([\d,]+) bytes", text, re.MULTILINE)
    assert match, "no peak line"
    shown, err = size(match.group(1))
    exact = float(match.group(2).replace(",", ""))
    assert abs(shown - exact) <= err, f"the header's peak {match.group(1)} is not {match.group(2)} bytes"
    return exact


def _table(text: str, title: str) -> list[list[list[str]]]:
    """The body of the rich table whose title line starts with ``title``: one entry per printed row,
    each a list of lines, each line its cells (a row wrapped over two lines has two lines)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    body = next(i for i in range(start, len(lines)) if lines[i].startswith("┡"))
    rows: list[list[list[str]]] = []
    for line in lines[body + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("├"):  # a row separator
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if rows and cells[0] == "" and any(cells):
            rows[-1].append(cells)  # the continuation of a wrapped row
        else:
            rows.append([cells])
    return rows


def _cells(row: list[list[str]]) -> list[str]:
    """A row's cells, the wrapped parts joined back as a reader would."""
    return [" ".join(part for part in column if part) for column in zip(*row, strict=True)]


# --------------------------------------------------------------------------- the checks

@pytest.mark.parametrize("source", list(REPORTS))
def test_category_rows_sum_to_the_total_and_the_total_is_the_peak(source: str) -> None:
    text = REPORTS[source]()
    peak = _header_peak(text)
    rows = [_cells(r) for r in _table(text, CATEGORY_TABLE)]
    *categories, total = rows
    assert total[0] == "total"
    sizes = [size(r[1]) for r in categories]
    total_bytes, total_err = size(total[1])
    rounding = sum(err for _, err in sizes) + total_err
    assert abs(sum(b for b, _ in sizes) - total_bytes) <= rounding
    assert abs(total_bytes - peak) <= total_err
    assert percent(total[2]) == 100.0
    assert abs(sum(percent(r[2]) for r in categories) - 100.0) <= 0.05 * len(categories) + 1e-9
    for (nbytes, err), row in zip(sizes, categories, strict=True):
        assert abs(100 * nbytes / peak - percent(row[2])) <= 100 * err / peak + 0.05, row
    names = [r[0] for r in categories]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("source", list(REPORTS))
def test_layer_names_are_unique_and_no_cell_is_wrapped(source: str) -> None:
    rows = _table(REPORTS[source](), LAYER_TABLE)
    assert rows
    wrapped = [r for r in rows if len(r) > 1]
    assert not wrapped, f"{len(wrapped)} rows wrapped over several lines"
    names = [r[0][0] for r in rows]
    assert all("…" not in n for n in names), names
    assert len(names) == len(set(names)), names
    for row in rows:
        for cell in row[0][2:]:
            size(cell)  # every figure is a whole size


@pytest.mark.parametrize("source", list(REPORTS))
def test_holders_are_unique_and_within_the_peak(source: str) -> None:
    text = REPORTS[source]()
    peak = _header_peak(text)
    by_category = {r[0]: size(r[1]) for r in map(_cells, _table(text, CATEGORY_TABLE))}
    holders = [_cells(r) for r in _table(text, HOLDER_TABLE)]
    pairs = [(h[0], h[1]) for h in holders]
    assert len(pairs) == len(set(pairs)), pairs
    held: dict[str, float] = {}
    for _module, category, shown, share in holders:
        nbytes, err = size(shown)
        held[category] = held.get(category, 0.0) + nbytes - err
        assert abs(100 * nbytes / peak - percent(share)) <= 100 * err / peak + 0.05
    for category, nbytes in held.items():
        assert nbytes <= by_category[category][0] + by_category[category][1], category
    sizes = [size(h[2])[0] for h in holders]
    assert sizes == sorted(sizes, reverse=True), "holders are listed largest first"


TREE_LINE = re.compile(
    r"^(?P<indent>(?:[│ ]   )*)(?:[├└]── )?"  # the tree's guides
    r"(?P<name>\S+)(?: \((?P<type>[^)]*)\))?  (?P<size>\S+ \S+)  (?P<share>\S+)%"
)


@pytest.mark.parametrize("source", list(TREES))
def test_module_tree_children_fit_in_their_parents_and_the_root_is_the_peak(source: str) -> None:
    text = TREES[source]()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TREE_TITLE))
    nodes: list[tuple[int, str, float, float, float]] = []  # depth, name, bytes, rounding, share
    for line in lines[start + 1 :]:
        match = TREE_LINE.match(line)
        if match is None:
            if nodes:
                break
            continue
        depth = len(match["indent"]) // 4 + (0 if line[0] not in "├└│ " else 1)
        nbytes, err = size(match["size"])
        nodes.append((depth, match["name"], nbytes, err, float(match["share"])))
    assert nodes and nodes[0][0] == 0
    root_bytes, root_err = nodes[0][2], nodes[0][3]
    if "Peak " in text:
        assert abs(root_bytes - _header_peak(text)) <= root_err
    assert nodes[0][4] == 100.0
    for k, (depth, name, nbytes, err, share) in enumerate(nodes):
        assert abs(100 * nbytes / root_bytes - share) <= 100 * (err + root_err) / root_bytes + 0.05, name
        children = []
        for later in nodes[k + 1 :]:
            if later[0] <= depth:
                break
            if later[0] == depth + 1:
                children.append(later)
        if children:
            slack = err + sum(c[3] for c in children)
            assert sum(c[2] for c in children) <= nbytes + slack, f"{name}: children hold more than it"
        siblings = [n[1] for n in children]
        assert len(siblings) == len(set(siblings)), f"{name}: {siblings}"


@pytest.mark.parametrize("source", list(TIMELINES))
def test_the_timeline_marks_the_peak_it_scales_to(source: str) -> None:
    text = TIMELINES[source]()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Timeline"))
    axis_top = re.match(r"^(\S+ \S+) ┤", lines[start + 1])
    assert axis_top, lines[start + 1]
    mark = next(re.search(r"peak (\S+ \S+)", line) for line in lines[start:] if "▲" in line)
    assert mark is not None
    assert mark.group(1) == axis_top.group(1)
    if "Peak " in text:
        top, err = size(axis_top.group(1))
        assert abs(top - _header_peak(text)) <= err

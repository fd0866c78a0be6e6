"""The reporters, one per format, and the registry the command line picks them from.

``table`` (the terminal report; plain text in a file), ``json``, ``csv`` (a profile's per-layer or
timeline table) and ``html`` (a profile's self-contained page). Options that only one format has (the
table's ``top``/``tree``/``depth``, the CSV's ``table``) are the reporter's own fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memadvise.errors import UsageError
from memadvise.reporters.base import CsvTable, Format, Reporter

if TYPE_CHECKING:
    from rich.console import RenderableType

DEFAULT_TOP = 10  # rows of a profile's layer and holder tables
DEFAULT_CHECK_TOP = 3  # layers named per changed model in a check
TEXT_WIDTH = 140  # a table written to a file (not a terminal) is this wide …
WIDE_TEXT_WIDTH = 160  # … or this, for the plans' wide options table


@dataclass(frozen=True)
class TableReporter(Reporter):
    """The terminal report: rich tables for a console (:meth:`renderable`), or the same as plain text."""

    name = Format.TABLE.value
    suffix = ".txt"

    top: int | None = None
    tree: bool = False
    depth: int | None = None
    width: int | None = None

    def renderables(self) -> dict[type, Callable[[Any], RenderableType]]:
        from memadvise.analyzer.estimate import Estimate
        from memadvise.check.baseline import CheckRun
        from memadvise.model.profile import Profile
        from memadvise.planner import GpuRanking, Plan
        from memadvise.reporters.check_report import render_check
        from memadvise.reporters.console import render_profile
        from memadvise.reporters.estimate_report import render_estimate
        from memadvise.reporters.plan_report import render_gpu_list, render_plan

        tree = self.tree or self.depth is not None
        return {
            Profile: lambda p: render_profile(p, top=self.top or DEFAULT_TOP, tree=tree, depth=self.depth),
            Estimate: render_estimate,
            Plan: render_plan,
            GpuRanking: render_gpu_list,
            CheckRun: lambda run: render_check(run, self.top or DEFAULT_CHECK_TOP),
        }

    def renderable(self, result: Any) -> RenderableType:
        """The report of ``result`` as a rich renderable, for a console to print (with ``markup=False``:
        names from files are shown as they are, control characters as visible escapes)."""
        from memadvise.model.text import printable_result

        result = printable_result(result)
        for kind, render in self.renderables().items():
            if isinstance(result, kind):
                return render(result)
        raise TypeError(f"the {self.name} format does not render a {type(result).__name__}")

    def renderers(self) -> Mapping[type, Callable[[Any], str]]:
        from memadvise.planner import GpuRanking, Plan

        def plain(render: Callable[[Any], RenderableType], width: int) -> Callable[[Any], str]:
            from memadvise.model.text import printable_result

            return lambda result: _plain_text(render(printable_result(result)), self.width or width)

        return {
            kind: plain(render, WIDE_TEXT_WIDTH if kind in (Plan, GpuRanking) else TEXT_WIDTH)
            for kind, render in self.renderables().items()
        }


def _plain_text(renderable: RenderableType, width: int) -> str:
    """A renderable as plain text ``width`` columns wide (what a file gets instead of the console)."""
    import io

    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), markup=False)
    console.print(renderable)
    return console.export_text()


@dataclass(frozen=True)
class JsonReporter(Reporter):
    """JSON documents: a profile as ``Profile.save`` writes it; estimates, plans and checks with their
    baselines."""

    name = Format.JSON.value
    suffix = ".json"

    top: int | None = None

    def renderers(self) -> Mapping[type, Callable[[Any], str]]:
        from memadvise.analyzer.estimate import Estimate
        from memadvise.check.baseline import CheckRun
        from memadvise.model.profile import Profile
        from memadvise.planner import GpuRanking, Plan
        from memadvise.reporters.check_report import check_json
        from memadvise.reporters.estimate_report import estimate_json
        from memadvise.reporters.plan_report import gpu_list_json, plan_json

        return {
            Profile: lambda p: p.to_json(),
            Estimate: estimate_json,
            Plan: plan_json,
            GpuRanking: gpu_list_json,
            CheckRun: lambda run: check_json(run, self.top or DEFAULT_CHECK_TOP),
        }


@dataclass(frozen=True)
class CsvReporter(Reporter):
    """A profile's per-layer table (one row per module) or timeline (one row per sample) as CSV."""

    name = Format.CSV.value
    suffix = ".csv"

    table: CsvTable = CsvTable.LAYERS

    def renderers(self) -> Mapping[type, Callable[[Any], str]]:
        from memadvise.model.profile import Profile
        from memadvise.reporters.tables import table_csv

        return {Profile: lambda p: table_csv(p, CsvTable(self.table).value)}


@dataclass(frozen=True)
class HtmlReporter(Reporter):
    """A profile as one self-contained HTML page."""

    name = Format.HTML.value
    suffix = ".html"
    other_suffixes = (".htm",)

    def renderers(self) -> Mapping[type, Callable[[Any], str]]:
        from memadvise.model.profile import Profile
        from memadvise.reporters.html import render_html

        return {Profile: render_html}


REPORTERS: tuple[type[Reporter], ...] = (TableReporter, JsonReporter, CsvReporter, HtmlReporter)


def reporter_for(name: str, **options: Any) -> Reporter:
    """The reporter of format ``name`` (``table``, ``json``, ``csv``, ``html``) with its options."""
    for cls in REPORTERS:
        if cls.name == name:
            return cls(**options)
    raise UsageError(f"unknown format {name!r}; use one of {', '.join(cls.name for cls in REPORTERS)}")


def format_for_path(path: str) -> Format | None:
    """The format a file name implies (``report.json`` → JSON, ``report.html`` → HTML), if any."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    for cls in REPORTERS:
        if suffix and suffix in (cls.suffix, *cls.other_suffixes):
            return Format(cls.name)
    return None

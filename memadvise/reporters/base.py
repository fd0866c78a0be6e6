"""The one reporter contract: a format name, the file suffix that implies it, and ``render(result) -> str``.

A result is what a command computes: a ``Profile``, an analyzer ``Estimate``, a planner ``Plan`` (or the
``GpuRanking`` of ``--list-gpus``), a check's ``CheckRun``. A reporter turns the kinds it declares into
text — never printing nor writing: the command line shows the text or writes it to the file it was
given. Each reporter maps its kinds to one function each, imported only when asked, so that choosing a
format does not import the whole analyzer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, ClassVar


class Format(str, Enum):
    """The formats of ``memadvise profile`` and ``memadvise report``."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


class CsvTable(str, Enum):
    """Which table ``--format csv`` writes."""

    LAYERS = "layers"
    TIMELINE = "timeline"


class Reporter(ABC):
    """Turns results into text in one format.

    ``name`` is the format (``--format NAME``); ``suffix`` the file suffix that implies it (``-o
    report.html``), ``other_suffixes`` more that do. :meth:`kinds` are the result types it renders.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    other_suffixes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def renderers(self) -> Mapping[type, Callable[[Any], str]]:
        """Each result kind this reporter renders, with the function that renders it."""

    def kinds(self) -> tuple[type, ...]:
        return tuple(self.renderers())

    def render(self, result: Any) -> str:
        """The report of ``result`` as text (a whole document: JSON, CSV, HTML or a plain-text table)."""
        for kind, render in self.renderers().items():
            if isinstance(result, kind):
                return render(result)
        raise TypeError(f"the {self.name} format does not render a {type(result).__name__}")

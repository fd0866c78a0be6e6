"""``memadvise report``: render a saved profile — terminal, JSON, CSV or HTML — without running torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memadvise.cli.common import DebugOpt, handles_errors
from memadvise.cli.profile_cmd import (
    DepthOpt,
    FormatOpt,
    OutputOpt,
    TableOpt,
    TopOpt,
    TreeOpt,
    choose_format,
    emit_report,
)

HELP = """Render a saved profile (from `memadvise profile --output profile.json`) as a report.

Nothing is traced again and torch is not imported; the formats are those of
`memadvise profile`. --format html (or -o FILE.html) writes one self-contained page.

\b
Examples:
  memadvise report profile.json
  memadvise report profile.json --tree --depth 3
  memadvise report profile.json -o report.html
  memadvise report profile.json --format csv --table timeline -o timeline.csv
"""


@handles_errors
def report_command(
    profile_json: Annotated[
        Path, typer.Argument(metavar="PROFILE_JSON", help="A profile saved as JSON by memadvise profile.")
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 10,
    tree: TreeOpt = False,
    depth: DepthOpt = None,
    table: TableOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.model.profile import load_profile

    chosen = choose_format(fmt, output, tree=tree or depth is not None, table=table)
    emit_report(load_profile(profile_json), chosen, output, top=top, tree=tree, depth=depth, table=table)

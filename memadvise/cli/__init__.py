"""The ``memadvise`` command line: a thin typer layer over the library."""

from __future__ import annotations

import typer

from memadvise.cli.check_cmd import HELP as CHECK_HELP
from memadvise.cli.check_cmd import check_command
from memadvise.cli.estimate_cmd import HELP as ESTIMATE_HELP
from memadvise.cli.estimate_cmd import estimate_command
from memadvise.cli.init_cmd import HELP as INIT_HELP
from memadvise.cli.init_cmd import init_command
from memadvise.cli.plan_cmd import HELP as PLAN_HELP
from memadvise.cli.plan_cmd import plan_command
from memadvise.cli.profile_cmd import HELP as PROFILE_HELP
from memadvise.cli.profile_cmd import profile_command
from memadvise.cli.report_cmd import HELP as REPORT_HELP
from memadvise.cli.report_cmd import report_command
from memadvise.cli.run_cmd import HELP as RUN_HELP
from memadvise.cli.run_cmd import RUN_SETTINGS, run_command
from memadvise.cli.usage import OneLineErrors

app = typer.Typer(
    name="memadvise",
    help="Memory profiler and advisor for PyTorch models: exact training peak, per-layer memory, what-ifs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)
app.command("profile", help=PROFILE_HELP)(profile_command)
app.command("estimate", help=ESTIMATE_HELP)(estimate_command)
app.command("plan", help=PLAN_HELP)(plan_command)
app.command("check", help=CHECK_HELP)(check_command)
app.command("report", help=REPORT_HELP)(report_command)
app.command("init", help=INIT_HELP)(init_command)
app.command("run", help=RUN_HELP, context_settings=RUN_SETTINGS)(run_command)


def _version(value: bool) -> None:
    if value:
        from memadvise._version import __version__

        typer.echo(f"memadvise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Memory profiler and advisor for PyTorch models."""


def main() -> None:
    app(prog_name="memadvise")

"""The ``memadvise`` command line: a thin typer layer over the library."""

from __future__ import annotations

import typer

from memadvise.cli.check_cmd import HELP as CHECK_HELP
from memadvise.cli.check_cmd import check_command
from memadvise.cli.common import Command, Group, help_text
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

app = typer.Typer(
    name="memadvise",
    help=help_text(
        """Memory profiler and advisor for PyTorch models: exact training peak, per-layer memory, what-ifs.

        \b
        Examples:
          memadvise profile sample_models/gpt2.py --batch-size 4
          memadvise profile sample_models/gpt2.py -b 2 -o gpt2.json
          memadvise estimate gpt2.json --batch-size 32 --precision bf16-mixed
          memadvise plan gpt2.json --gpu 24GB
          memadvise report gpt2.json -o report.html
          memadvise profile --help
        """
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)
app.command("profile", help=help_text(PROFILE_HELP), cls=Command)(profile_command)
app.command("estimate", help=help_text(ESTIMATE_HELP), cls=Command)(estimate_command)
app.command("plan", help=help_text(PLAN_HELP), cls=Command)(plan_command)
app.command("check", help=help_text(CHECK_HELP), cls=Command)(check_command)
app.command("report", help=help_text(REPORT_HELP), cls=Command)(report_command)
app.command("init", help=help_text(INIT_HELP), cls=Command)(init_command)
app.command("run", help=help_text(RUN_HELP), cls=Command, context_settings=RUN_SETTINGS)(run_command)


def _version(value: bool) -> None:
    if value:
        from memadvise._version import __version__

        typer.echo(f"memadvise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", metavar="", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Memory profiler and advisor for PyTorch models."""


def main() -> None:
    app(prog_name="memadvise")

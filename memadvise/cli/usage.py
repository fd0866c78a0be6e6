"""Usage mistakes caught by the option parser (a bad option value, an unknown option, a missing argument)
as one line on stderr — ``memadvise: error: …`` and exit code 2 — like every other error of memadvise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

EXIT_USAGE = 2


def _parser_class(name: str) -> type[Exception]:
    """The parser's exception class ``name`` (typer carries its own copy of click's exceptions)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


ClickError = _parser_class("ClickException")
ParserUsageError = _parser_class("UsageError")


def one_line(error: Exception) -> str:
    """The parser error's message on one line, with where to find help for usage errors."""
    format_message = getattr(error, "format_message", None)
    text = format_message() if callable(format_message) else str(error)
    message = " ".join(str(text).split()).replace("Value error, ", "")
    ctx = getattr(error, "ctx", None)
    if isinstance(error, ParserUsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class OneLineErrors(TyperGroup):
    """The command group: the parser's own usage errors become one ``memadvise: error:`` line, exit 2.

    ``--help`` and the help shown when no command is given are left as they are."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # the help is already shown
                sys.exit(EXIT_USAGE)
            print(f"memadvise: error: {one_line(error)}", file=sys.stderr)
            sys.exit(EXIT_USAGE if isinstance(error, ParserUsageError) else getattr(error, "exit_code", 1))
        except typer.Abort:
            print("memadvise: error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

"""``memadvise profile``: trace a model file's training (or inference) steps and report memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memadvise.cli.common import (
    BatchSizeOpt,
    DebugOpt,
    DeviceOpt,
    ModeChoice,
    ModeOpt,
    OptimizerChoice,
    OptimizerOpt,
    handles_errors,
    progress,
    stderr_console,
    stdout_console,
)
from memadvise.reporters import Format, format_for_path

HELP = """Trace a model file and report its exact peak memory, what holds it, and memory per layer.

MODEL_FILE is a Python file defining build_model() and example_inputs(batch_size) (and optionally
loss_fn(output, inputs)); use FILE.py:factory to call another factory than build_model.

\b
Examples:
  memadvise profile sample_models/gpt2.py --batch-size 4
  memadvise profile sample_models/resnet.py --mode inference --format json
  memadvise profile model.py:build_large --optimizer sgd --output profile.json
  memadvise profile sample_models/bert.py --format csv --output layers.csv
"""


@handles_errors
def profile_command(
    model_file: Annotated[str, typer.Argument(metavar="MODEL_FILE", help="model.py or model.py:factory")],
    batch_size: BatchSizeOpt = 1,
    mode: ModeOpt = ModeChoice.train,
    optimizer: OptimizerOpt = OptimizerChoice.adamw,
    device: DeviceOpt = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            help="table, json or csv (per-layer) (default: from the suffix of --output, else table).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the layer and holder tables.")] = 10,
    debug: DebugOpt = False,
) -> None:
    from memadvise.api import profile_file

    chosen = fmt or (format_for_path(str(output)) if output else None) or Format.TABLE
    with progress(f"Profiling {model_file} ({mode.value}, batch {batch_size})…"):
        prof = profile_file(
            model_file,
            batch_size=batch_size,
            mode=mode.value,
            optimizer=optimizer.value,
            device=device.value if device else None,
        )
    if chosen is Format.JSON:
        text = prof.to_json()
    elif chosen is Format.CSV:
        from memadvise.reporters.tables import layers_csv

        text = layers_csv(prof)
    else:
        from memadvise.reporters.console import render_profile

        renderable = render_profile(prof, top=top)
        if output is None:
            stdout_console().print(renderable)
            return
        from rich.console import Console

        file_console = Console(record=True, width=140, file=open("/dev/null", "w"))  # noqa: SIM115
        file_console.print(renderable)
        text = file_console.export_text()
    if output is None:
        typer.echo(text.rstrip("\n"))
    else:
        _write(output, text)
        stderr_console().print(f"wrote {chosen.value} profile to {output}")


def _write(path: Path, text: str) -> None:
    from memadvise.errors import UsageError

    try:
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None

"""``memadvise check``: profile models and compare them with a baseline; exit 1 on a memory regression."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from memadvise.cli.common import (
    DebugOpt,
    DeviceOpt,
    MemoryLimitOpt,
    SeqLenOpt,
    handles_errors,
    progress,
    show,
)
from memadvise.cli.target_opts import ImageSizeOpt, TaskOpt
from memadvise.model.limits import MAX_BATCH_SIZE, MAX_ROWS
from memadvise.model.profile import Mode, OptimizerName
from memadvise.model.text import printable
from memadvise.reporters import reporter_for

EXIT_REGRESSION = 1

HELP = """Profile models and compare them with a baseline file: exit 1 on a memory regression.

Each MODEL_FILE (or FILE.py:factory) is profiled and its peak, parameters, activations, gradients and
optimizer state are compared with the baseline entry for the same file, factory, batch size, mode,
optimizer and device (and --seq-len, --image-size and --task when given: they are part of the entry).
A figure regresses when it grows by more than the tolerance (default 2%); the
report names the model, the figure, old → new, the change in bytes and %, and the layers that changed
most. Improvements are reported too; --update records the new figures (and creates the file).

Without MODEL_FILE arguments, models, batch sizes, modes, tolerance and baseline come from
\\[tool.memadvise.check] in pyproject.toml (or \\[check] in memadvise.toml), found from the current folder
up. Exit codes: 0 within tolerance, 1 regression, 2 bad input (missing/corrupt baseline, bad option).
Under GitHub Actions, ::error annotations are written to stderr.

\b
Examples:
  memadvise check model.py --baseline memory-baseline.json --update  # record
  memadvise check model.py --baseline memory-baseline.json           # gate
  memadvise check model.py:build_large -b 8 -B base.json -t 2%,50MiB
  memadvise check timm:convnext_tiny --image-size 160 -B base.json
  memadvise check           # everything listed in \\[tool.memadvise.check]
  memadvise check --format json > memory-check.json
"""


class CheckFormat(str, Enum):
    text = "text"
    json = "json"


ModelFilesArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="MODEL_FILE", help="model.py or model.py:factory (default: the config's)."),
]
BaselineOpt = Annotated[
    Path | None, typer.Option("--baseline", "-B", help="Baseline JSON file (default: from the config).")
]
ToleranceOpt = Annotated[
    str | None,
    typer.Option("--tolerance", "-t", help="Allowed growth: 2%, 50MiB or 2%,50MiB (the larger); default 2%."),
]
UpdateOpt = Annotated[
    bool,
    typer.Option("--update", metavar="", help="Write the new figures to the baseline (creating it); exit 0."),
]
CheckBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", "-b", min=1, max=MAX_BATCH_SIZE, help="Batch size (default: the config's, else 1)."
    ),
]
CheckModeOpt = Annotated[
    Mode | None, typer.Option("--mode", "-m", help="train or inference (default train).")
]
CheckOptimizerOpt = Annotated[
    OptimizerName | None, typer.Option("--optimizer", help="Optimizer of a training step (default adamw).")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="pyproject.toml or memadvise.toml (default: found upwards).")
]
FormatOpt = Annotated[CheckFormat, typer.Option("--format", "-f", help="text or json (on stdout).")]
AnnotationsOpt = Annotated[
    bool | None,
    typer.Option(
        "--annotations/--no-annotations",
        metavar="",
        help="GitHub ::error lines on stderr (default: under Actions).",
    ),
]
TopOpt = Annotated[int, typer.Option("--top", min=1, max=MAX_ROWS, help="Layers named per changed model.")]


@handles_errors
def check_command(
    model_files: ModelFilesArg = None,
    baseline: BaselineOpt = None,
    tolerance: ToleranceOpt = None,
    update: UpdateOpt = False,
    batch_size: CheckBatchOpt = None,
    mode: CheckModeOpt = None,
    optimizer: CheckOptimizerOpt = None,
    device: DeviceOpt = None,
    seq_len: SeqLenOpt = None,
    image_size: ImageSizeOpt = None,
    task: TaskOpt = None,
    memory_limit: MemoryLimitOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = CheckFormat.text,
    annotations: AnnotationsOpt = None,
    top: TopOpt = 3,
    debug: DebugOpt = False,
) -> None:
    from memadvise.check import find_config, load_config, plan_checks, run_checks
    from memadvise.reporters.check_report import github_annotations

    config_path = config or find_config(Path.cwd())
    plan = plan_checks(
        model_files or [],
        config=load_config(config_path) if config_path else None,
        baseline=baseline,
        tolerance=tolerance,
        batch_size=batch_size,
        mode=mode.value if mode else None,
        optimizer=optimizer.value if optimizer else None,
        device=device.value if device else None,
        seq_len=seq_len,
        image_size=image_size,
        task=task.value if task is not None else None,
    )
    profiler = None
    if memory_limit is not None:
        from functools import partial

        from memadvise.api import profile_file

        profiler = partial(profile_file, memory_limit=memory_limit)
    run = run_checks(plan, update=update, progress=progress, profiler=profiler)

    for warning in (*run.warnings, *(w for r in run.results for w in r.warnings)):
        typer.echo(f"memadvise: warning: {printable(warning)}", err=True)
    reporter = reporter_for("json" if fmt is CheckFormat.json else "table", top=top)
    show(reporter, run, None, "check", highlight=False)
    if annotations if annotations is not None else os.environ.get("GITHUB_ACTIONS") == "true":
        workspace = os.environ.get("GITHUB_WORKSPACE")
        for line in github_annotations(run, Path(workspace) if workspace else None, top):
            typer.echo(printable(line), err=True)
    if run.regressed and not update:
        raise typer.Exit(EXIT_REGRESSION)

"""``memadvise run``: run an unmodified training script and profile its first optimizer steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memadvise.cli.common import DebugOpt, OutputOpt, handles_errors, progress
from memadvise.cli.profile_cmd import DepthOpt, FormatOpt, TopOpt, TreeOpt, choose_format, emit_report

HELP = """Run your training script unchanged and profile its first optimizer steps.

SCRIPT runs as 'python SCRIPT ARGS...' would run it (memadvise's options go before SCRIPT; everything
after it is the script's). The first module whose forward pass starts outside any other, in training
mode with trainable parameters, is the model; backward() calls and optimizer.step() calls mark the
phases and the steps. After --steps optimizer steps (default 2) the script is stopped and the report
is the same as 'memadvise profile' gives (-o profile.json for estimate and plan); --continue lets the
script run to its end untraced.

Works with plain PyTorch loops, Hugging Face Trainer scripts and PyTorch Lightning scripts (where
optimizer.step() runs the forward and backward passes in its closure: the update after them is the
optimizer phase).

\b
Examples:
  memadvise run train.py --epochs 1 --lr 3e-4
  memadvise run --steps 3 -o profile.json train.py --config configs/small.yaml
  memadvise run --continue train.py   # profile the first steps, then finish
  memadvise run examples/train_lightning.py --epochs 1   # PyTorch Lightning
"""


@handles_errors
def run_command(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(metavar="SCRIPT", help="The training script to run.")],
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Optimizer steps to profile before the script is stopped.")
    ] = 2,
    keep_going: Annotated[
        bool, typer.Option("--continue", help="Let the script run to its end after the profiled steps.")
    ] = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 10,
    tree: TreeOpt = False,
    depth: DepthOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.capture.script import run_script

    chosen = choose_format(fmt, output, tree=tree or depth is not None, table=None)
    with progress(f"Running {script.name}, profiling {steps} optimizer steps"):
        prof = run_script(script, list(ctx.args), steps=steps, keep_going=keep_going)
    emit_report(prof, chosen, output, top=top, tree=tree, depth=depth)


RUN_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False}

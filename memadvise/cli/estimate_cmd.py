"""``memadvise estimate``: what-if memory for another batch size, precision, checkpointing, pruning…"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from memadvise.cli.common import (
    DebugOpt,
    DeviceOpt,
    FakeOpt,
    FormatOpt,
    ModeOpt,
    OutputOpt,
    SeqLenOpt,
    TargetArg,
    TargetDeviceOpt,
    TextFormat,
    TraceBatchSizeOpt,
    TrainLoop,
    TrainLoopOpt,
    handles_errors,
    load_or_profile,
    module_names,
    show,
)
from memadvise.model.profile import Mode, OptimizerName
from memadvise.reporters import reporter_for

if TYPE_CHECKING:
    from memadvise.analyzer import Estimate, Scenario
    from memadvise.model.profile import Profile

HELP = """Estimate peak memory under changed settings, from a saved profile or a model file.

TARGET is a profile saved with 'memadvise profile --format json -o FILE.json' (nothing runs: the
estimate replays the profile's allocations with the changes, in milliseconds), or a model file, which
is profiled first: at --trace-batch-size, with the asked precision and optimizer when they can be
traced (everything else is estimated from that trace).

Levers combine: --batch-size (samples per forward pass; with --grad-accum K the effective batch is
K times that), --precision, --checkpoint (module names, comma-separated or repeated, or 'auto' to
let memadvise pick the set with the lowest peak for the least recompute), --prune
SPARSITY[:unstructured|:structured], --optimizer, --frozen (modules not trained, LoRA-style).
--seq-len traces the model file at another sequence length (its example_inputs must take seq_len).

\b
Examples:
  memadvise profile sample_models/gpt2.py -b 2 --format json -o gpt2.json
  memadvise estimate gpt2.json --batch-size 32
  memadvise estimate gpt2.json -b 16 --precision bf16-mixed --checkpoint auto
  memadvise estimate gpt2.json --optimizer adamw-8bit --grad-accum 4
  memadvise estimate gpt2.json --frozen transformer.wte,transformer.h.0
  memadvise estimate sample_models/mlp.py --prune 0.5:structured
  memadvise estimate sample_models/gpt2.py --seq-len 64 --format json
  memadvise estimate sample_models/gpt2.py --mode inference --precision int8
"""


@handles_errors
def estimate_command(
    target: TargetArg,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Samples per forward pass.")
    ] = None,
    seq_len: SeqLenOpt = None,
    train_loop: TrainLoopOpt = TrainLoop.tutorial,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32, bf16-mixed, fp16-mixed, bf16, fp16 (training) or int8, int4 (weight-only inference)."
        ),
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(help="Modules to checkpoint (names, comma-separated or repeated), 'auto' or 'none'."),
    ] = None,
    prune: Annotated[
        str | None, typer.Option(help="SPARSITY[:unstructured|:structured], e.g. 0.5:structured.")
    ] = None,
    optimizer: Annotated[OptimizerName | None, typer.Option(help="Optimizer to estimate.")] = None,
    grad_accum: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.")
    ] = 1,
    frozen: Annotated[
        list[str] | None,
        typer.Option(help="Modules whose parameters are not trained (comma-separated or repeated)."),
    ] = None,
    trace_batch_size: TraceBatchSizeOpt = 2,
    mode: ModeOpt = Mode.TRAIN,
    device: DeviceOpt = None,
    fake: FakeOpt = False,
    target_device: TargetDeviceOpt = None,
    fmt: FormatOpt = TextFormat.table,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.analyzer import Pruning, Scenario, estimate
    from memadvise.model.scenario import parse_precision

    chosen_precision = parse_precision(precision)
    scenario = Scenario(
        batch_size=batch_size,
        precision=chosen_precision,
        checkpoint=module_names(checkpoint),
        prune=Pruning.parse(prune) if prune is not None else None,
        optimizer=optimizer,
        grad_accum=grad_accum,
        frozen=module_names(frozen),
    )
    asked = scenario
    profile, scenario = load_or_profile(
        target, scenario, trace_batch_size, mode, device, fake, target_device, seq_len, train_loop=train_loop
    )
    result = estimate(profile, scenario)
    if not target.endswith(".json") and (seq_len is not None or scenario != asked):
        # What was asked was traced (another sequence length, precision or optimizer): the baseline is the
        # model file as it is, traced once more, so that the report shows the change.
        baseline, _ = load_or_profile(
            target,
            Scenario(),
            trace_batch_size,
            mode,
            device,
            fake,
            target_device,
            None,
            train_loop=train_loop,
            scaling=False,
        )
        result = against(result, baseline, asked, seq_len)
    show(reporter_for(fmt.value), result, output, f"{fmt.value} estimate")


def against(result: Estimate, baseline: Profile, asked: Scenario, seq_len: int | None) -> Estimate:
    """``result`` set against ``baseline`` (another trace of the same model file), described by what was
    asked (its traced levers included)."""
    from dataclasses import replace

    text = asked.describe()
    if seq_len is not None:
        text = f"seq {seq_len}" if text == "as profiled" else f"seq {seq_len}, {text}"
    base = baseline.peak_bytes
    return replace(
        result,
        scenario={**asked.to_dict(), "seq_len": seq_len},
        scenario_text=text,
        baseline=baseline,
        baseline_peak_bytes=base,
        change_bytes=result.peak_bytes - base,
        change_ratio=(result.peak_bytes / base) if base else 1.0,
    )

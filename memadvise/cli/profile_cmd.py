"""``memadvise profile``: trace a model file's training (or inference) steps and report memory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memadvise.cli.common import (
    BatchSizeOpt,
    DebugOpt,
    DeviceOpt,
    ExpertLoadOpt,
    FakeOpt,
    MemoryLimitOpt,
    ModeOpt,
    OptimizerOpt,
    OutputOpt,
    TargetDeviceOpt,
    TrainLoop,
    TrainLoopOpt,
    check_expert_load,
    chosen_device,
    cuda_target,
    handles_errors,
    precheck,
    resolve_target,
    show,
    step_progress,
    warn,
)
from memadvise.cli.target_opts import TARGETS_HELP, ImageSizeOpt, TaskOpt
from memadvise.model.limits import MAX_DEPTH, MAX_GPUS, MAX_ROWS, MAX_SEQ_LEN, MAX_STEPS, MAX_WORKERS
from memadvise.model.profile import Mode, OptimizerName
from memadvise.reporters import CsvTable, Format, format_for_path, reporter_for

if TYPE_CHECKING:
    from memadvise.model.profile import Profile

#: The fewest traced steps that tell a leak from warm-up (memadvise.capture.leaks.MIN_LEAK_STEPS, which
#: imports torch; tests/cli checks they agree).
MIN_LEAK_STEPS = 3
#: The precisions a trace runs in (memadvise.capture.training.TRACED_PRECISIONS, likewise).
TRACED_PRECISIONS = ("fp32", "bf16", "fp16", "bf16-mixed", "fp16-mixed")

HELP = (
    """Trace a model file and report its exact peak memory, what holds it, and memory per layer.

MODEL_FILE is a Python file defining build_model() and example_inputs(batch_size) (and optionally
loss_fn(output, inputs), train_step(model, inputs, optimizer) to replace the whole training step, and
make_dataloader()); use FILE.py:factory to call another factory than build_model ('memadvise init
model.py' writes a template).

"""
    + TARGETS_HELP
    + """

--steps K (K >= 3) traces K steps and reports memory that grows from step to step as a leak, with
where the surviving tensors were created; the peak stays the max over the first two steps.
--health adds per-layer numerical figures (max |activation|, gradient norms), fp16/bf16 flags and
precision advice. --dataloader-workers/--pin-memory (or the file's make_dataloader()) add the host
memory of prefetched and pinned batches.

Saved as JSON, a profile also holds its allocation program, which 'memadvise estimate' and
'memadvise plan' replay for other batch sizes, precisions, optimizers and checkpointing; for JSON
output memadvise traces the steps once more at twice the batch to fit batch scaling
(--scaling/--no-scaling decide). --precision traces bf16/fp16 (model cast) or bf16-mixed/fp16-mixed
(autocast); --seq-len is passed to example_inputs(batch_size, seq_len).

A training step is PyTorch's tutorial loop as Python runs it: the output and loss stay alive through
optimizer.step() and zero_grad(), until the next forward pass returns. --train-loop lean frees them
right after backward(), as memory-careful loops do.

The terminal report has a compact timeline under the summary; --tree adds
memory at the peak by module hierarchy. --format html (or -o FILE.html) writes
one self-contained page: the timeline chart, what is alive at the peak by
category and by module, and the sortable per-layer table.

--mode generate traces greedy model.generate(max_new_tokens=N, min_new_tokens=N, do_sample=False)
under no_grad (or the file's own generate(model, inputs, new_tokens)): the peak, whether it falls in
the prefill or in decoding, and the KV cache (kv_cache_bytes) and its growth per decode step.

\b
Examples:
  memadvise profile sample_models/gpt2.py --batch-size 4
  memadvise profile sample_models/gpt2.py --tree --depth 3
  memadvise profile sample_models/gpt2.py --output report.html
  memadvise profile sample_models/resnet.py --mode inference --format json
  memadvise profile sample_models/lstm_lm.py --output profile.json
  memadvise profile model.py:build_large --optimizer sgd
  memadvise profile sample_models/bert.py --format csv --output layers.csv
  memadvise profile sample_models/bert.py --table timeline -o timeline.csv
  memadvise profile sample_models/mlp.py --steps 5
  memadvise profile sample_models/gpt2.py --health
  memadvise profile sample_models/gpt2.py --precision bf16-mixed --seq-len 64
  memadvise profile sample_models/mlp.py --dataloader-workers 4 --pin-memory
  memadvise profile sample_models/llama2_7b.py --fake
  memadvise profile sample_models/llama2_7b.py --fake --gpu A100-80GB
  memadvise profile sample_models/resnet.py --fake --target-device cpu
  memadvise profile path/to/hf-model/ --fake --seq-len 512
  memadvise profile meta-llama/Llama-3.1-8B --fake --precision bf16-mixed
  memadvise profile timm:convnext_tiny --fake -b 32
  memadvise profile moe_model.py --fake --expert-load worst
  memadvise profile torchvision:resnet50 --image-size 160 -b 8
  memadvise profile sample_models/llama_tiny.py --mode generate --new-tokens 8
"""
)

FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="table, json, csv or html (default: from the suffix of --output, else table).",
    ),
]
TopOpt = Annotated[
    int, typer.Option("--top", min=1, max=MAX_ROWS, help="Rows in the layer and holder tables.")
]
TreeOpt = Annotated[
    bool,
    typer.Option("--tree", metavar="", help="Add memory at the peak by module hierarchy (table format)."),
]
DepthOpt = Annotated[
    int | None,
    typer.Option(
        "--depth",
        min=1,
        max=MAX_DEPTH,
        help="Levels of the module tree to show (implies --tree; default: all).",
    ),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        "--steps",
        max=MAX_STEPS,
        help="Trace K >= 3 steps and report leaks (default: 2 steps, no leak check).",
    ),
]
HealthOpt = Annotated[
    bool,
    typer.Option(
        "--health", metavar="", help="Gather numerical health: activation ranges, gradient norms, NaN/Inf."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--dataloader-workers",
        min=0,
        max=MAX_WORKERS,
        help="DataLoader workers, for the host-memory estimate.",
    ),
]
PinOpt = Annotated[
    bool | None,
    typer.Option(
        "--pin-memory/--no-pin-memory",
        metavar="",
        help="DataLoader pin_memory, for the host-memory estimate.",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="Trace in fp32, bf16 or fp16 (model and inputs cast), or bf16-mixed/fp16-mixed (autocast).",
    ),
]
SeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        min=1,
        max=MAX_SEQ_LEN,
        help="Sequence length, for files whose example_inputs take seq_len.",
    ),
]
GpuKernelsOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help="Catalog GPU whose kernels a fake CUDA trace follows (SDPA kernel choice); default H100.",
    ),
]
FsdpOpt = Annotated[
    int | None,
    typer.Option(
        "--fsdp",
        min=2,
        max=MAX_GPUS,
        help="Trace one rank of FSDP2 over N fake ranks (with --fake --target-device cpu).",
    ),
]
ScalingOpt = Annotated[
    bool | None,
    typer.Option(
        "--scaling/--no-scaling",
        metavar="",
        help="Trace once more at twice the batch so 'memadvise estimate' can change the batch size "
        "(default: on for JSON output).",
    ),
]
TableOpt = Annotated[
    CsvTable | None,
    typer.Option(
        "--table",
        help="With --format csv: layers (one row per module, the default) or timeline (one row per sample).",
    ),
]


NewTokensOpt = Annotated[
    int | None,
    typer.Option("--new-tokens", min=1, help="With --mode generate: tokens to generate (greedy)."),
]
CacheOpt = Annotated[
    str,
    typer.Option(
        "--cache", help="With --mode generate: the KV cache, dynamic (grows) or static (preallocated)."
    ),
]


@handles_errors
def profile_command(
    model_file: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL_FILE",
            help="model.py[:factory], a Hugging Face config folder or Hub name, timm:NAME, torchvision:NAME "
            "(default: the model key of tool.memadvise in pyproject.toml).",
            show_default=False,
        ),
    ] = None,
    batch_size: BatchSizeOpt = 1,
    mode: ModeOpt = Mode.TRAIN,
    optimizer: OptimizerOpt = OptimizerName.ADAMW,
    device: DeviceOpt = None,
    fake: FakeOpt = False,
    target_device: TargetDeviceOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    top: TopOpt = 10,
    tree: TreeOpt = False,
    depth: DepthOpt = None,
    table: TableOpt = None,
    steps: StepsOpt = None,
    health: HealthOpt = False,
    dataloader_workers: WorkersOpt = None,
    pin_memory: PinOpt = None,
    precision: PrecisionOpt = "fp32",
    seq_len: SeqLenOpt = None,
    train_loop: TrainLoopOpt = TrainLoop.tutorial,
    scaling: ScalingOpt = None,
    fsdp: FsdpOpt = None,
    gpu: GpuKernelsOpt = None,
    memory_limit: MemoryLimitOpt = None,
    new_tokens: NewTokensOpt = None,
    cache: CacheOpt = "dynamic",
    task: TaskOpt = None,
    image_size: ImageSizeOpt = None,
    expert_load: ExpertLoadOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.errors import UsageError

    if steps is not None and steps < MIN_LEAK_STEPS:
        raise UsageError(
            f"--steps must be at least {MIN_LEAK_STEPS} to tell a leak from warm-up, not {steps}"
        )
    model_file = resolve_target(model_file, "MODEL_FILE")
    chosen = choose_format(fmt, output, tree=tree or depth is not None, table=table)
    where = chosen_device(device, fake, target_device)
    if health and where == "meta":
        raise UsageError("--health needs real values; it cannot be combined with --fake")
    check_expert_load(expert_load, where)
    if precision not in TRACED_PRECISIONS:
        choices = ", ".join(TRACED_PRECISIONS)
        raise UsageError(f"precision {precision!r} cannot be traced; use one of {choices}")
    fake_target = target_device.value if target_device else None
    if fsdp is not None and (where != "meta" or fake_target == "cuda"):
        raise UsageError("--fsdp traces one rank fake on CPU kernels: add --fake --target-device cpu")
    if gpu is not None and (where != "meta" or fake_target == "cpu" or fsdp is not None):
        raise UsageError("--gpu chooses the kernels of a fake CUDA trace: add --fake (target device cuda)")
    precheck(model_file, where)
    from memadvise.api import profile_file  # imports torch: only once the arguments are checked

    kind = ", fake" if where == "meta" else ""
    n_steps = steps or 2
    phases = 3 if mode is Mode.TRAIN else 1
    if mode is Mode.GENERATE:
        n_steps = 1  # one generation: a prefill and a decode phase per token
    with step_progress(f"Profiling {Path(model_file).name}{kind}", n_steps, phases) as on_phase:
        prof = profile_file(
            model_file,
            batch_size=batch_size,
            mode=mode.value,
            optimizer=optimizer.value,
            device=where,
            target_device=target_device.value if target_device else None,
            steps=steps or 2,
            health=health,
            dataloader_workers=dataloader_workers,
            pin_memory=pin_memory,
            progress=on_phase,
            precision=precision,
            seq_len=seq_len,
            train_loop=train_loop.value,
            gpu=cuda_target(gpu),
            scaling=scaling if scaling is not None else chosen is Format.JSON,
            fsdp=fsdp,
            memory_limit=memory_limit,
            new_tokens=new_tokens,
            cache=cache,
            task=task.value if task else None,
            image_size=image_size,
            warn=warn,
            expert_load=expert_load,
        )
    emit_report(prof, chosen, output, top=top, tree=tree, depth=depth, table=table)


def choose_format(fmt: Format | None, output: Path | None, *, tree: bool, table: CsvTable | None) -> Format:
    """The report format (``--format``, else the suffix of ``--output``, else table), checked against
    the options that only apply to one format — before any model runs."""
    from memadvise.errors import UsageError

    chosen = fmt or (format_for_path(str(output)) if output else None) or Format.TABLE
    if tree and chosen is not Format.TABLE:
        extra = " (the HTML report always shows the module tree)" if chosen is Format.HTML else ""
        raise UsageError(f"--tree and --depth apply to the table format, not {chosen.value}{extra}")
    if table is not None and chosen is not Format.CSV:
        raise UsageError(f"--table chooses the table of --format csv; it does not apply to {chosen.value}")
    return chosen


def emit_report(
    prof: Profile,
    chosen: Format,
    output: Path | None,
    *,
    top: int = 10,
    tree: bool = False,
    depth: int | None = None,
    table: CsvTable | None = None,
) -> None:
    """Render ``prof`` in the chosen format to the terminal (stdout) or to ``output``."""
    options: dict[str, object] = {}
    what = "report" if chosen in (Format.HTML, Format.TABLE) else "profile"
    if chosen is Format.TABLE:
        options = {"top": top, "tree": tree, "depth": depth}
    elif chosen is Format.CSV:
        options = {"table": table or CsvTable.LAYERS}
        what = f"{(table or CsvTable.LAYERS).value} table"
    show(reporter_for(chosen.value, **options), prof, output, f"{chosen.value} {what}")

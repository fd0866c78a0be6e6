"""``memadvise plan``: a configuration that fits a GPU, and the GPUs and RAM to run it."""

from __future__ import annotations

from enum import Enum
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
    from memadvise.model.profile import Profile
    from memadvise.planner import Pins

HELP = """Find a batch size, precision, checkpointing, optimizer and accumulation that fit a GPU.

TARGET is a saved profile (profile.json) or a model file (profiled first). --gpu takes a size
(24GB = 24*10^9 bytes, 24GiB or 24G = 24*2^30, 512MiB; a plain number is bytes) or a name from the
bundled catalog ('RTX 4090', 'A100 80GB', 'H100'); without --gpu, memadvise plans for this machine's
GPU (found with NVML). The budget is what nvidia-smi would show: the GPU's memory minus the CUDA
context and cuBLAS workspace (--reserve replaces that overhead; --reserve 0 plans exact tensor
bytes), and each option's reserved memory comes from a model of PyTorch's caching allocator.

The search covers every lever you do not pin: --precision, --checkpoint (none or auto), --optimizer
(8-bit AdamW for Adam on a GPU), --batch-size (else the largest that fits), --grad-accum (to reach
--min-batch). --goal max-batch (default), min-memory or fastest. --gpus N --strategy
ddp|zero1|zero2|zero3|fsdp (and --nodes M) plans one GPU's share of data-parallel training; with a
model file, --fake --target-device cpu and fsdp/zero3, one rank of the real FSDP2 is traced.
--list-gpus ranks the catalog's GPUs for this model, with the system RAM to pair with each.

\b
Examples:
  memadvise plan gpt2.json --gpu 24GB
  memadvise plan gpt2.json --gpu "RTX 4090" --min-batch 64 --goal fastest
  memadvise plan sample_models/llama2_7b.py --fake --gpu H100 --gpus 8 \\
      --strategy zero3
  memadvise plan gpt2.json --gpu 16GiB --precision fp32 --reserve 0
  memadvise plan sample_models/llama2_7b.py --fake --list-gpus
  memadvise plan gpt2.json --gpu A10 --format json
"""


class GoalChoice(str, Enum):
    max_batch = "max-batch"
    min_memory = "min-memory"
    fastest = "fastest"


@handles_errors
def plan_command(
    target: TargetArg,
    gpu: Annotated[
        str | None, typer.Option(help="GPU memory (24GB, 80GiB) or catalog name (A100 80GB).")
    ] = None,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs per node for data-parallel training.")] = 1,
    nodes: Annotated[int, typer.Option(min=1, help="Nodes (each with --gpus GPUs).")] = 1,
    strategy: Annotated[
        str | None, typer.Option(help="ddp, zero1, zero2, zero3 or fsdp (default ddp with several GPUs).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Pin the micro-batch per GPU.")
    ] = None,
    min_batch: Annotated[
        int | None,
        typer.Option("--min-batch", min=1, help="Smallest effective batch (accumulation allowed)."),
    ] = None,
    seq_len: SeqLenOpt = None,
    train_loop: TrainLoopOpt = TrainLoop.tutorial,
    goal: Annotated[
        GoalChoice, typer.Option(help="max-batch, min-memory or fastest.")
    ] = GoalChoice.max_batch,
    precision: Annotated[str | None, typer.Option(help="Pin the precision (fp32, bf16-mixed, …).")] = None,
    checkpoint: Annotated[
        list[str] | None, typer.Option(help="Pin checkpointing: module names, auto or none.")
    ] = None,
    optimizer: Annotated[OptimizerName | None, typer.Option(help="Pin the optimizer.")] = None,
    grad_accum: Annotated[
        int | None, typer.Option("--grad-accum", min=1, help="Pin the accumulation.")
    ] = None,
    reserve: Annotated[
        str | None, typer.Option(help="Memory not available to tensors (default: CUDA context + workspace).")
    ] = None,
    list_gpus: Annotated[
        bool, typer.Option("--list-gpus", metavar="", help="Rank the catalog's GPUs for this model.")
    ] = False,
    trace_batch_size: TraceBatchSizeOpt = 2,
    mode: ModeOpt = Mode.TRAIN,
    device: DeviceOpt = None,
    fake: FakeOpt = False,
    target_device: TargetDeviceOpt = None,
    fmt: FormatOpt = TextFormat.table,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.errors import UsageError
    from memadvise.model.scenario import parse_precision, parse_strategy
    from memadvise.planner import Goal, Pins, budget_for, local_budget, rank_gpus, search

    if batch_size is not None and min_batch is not None:
        raise UsageError("--batch-size pins the micro-batch and --min-batch asks for a search; give one")
    pins = Pins(
        batch_size=batch_size,
        min_batch=min_batch,
        precision=parse_precision(precision),
        checkpoint=module_names(checkpoint) if checkpoint is not None else None,
        optimizer=optimizer,
        grad_accum=grad_accum,
        gpus=gpus * nodes,
        strategy=strategy,
    )
    if strategy is not None:
        parse_strategy(strategy)  # a clear error before any model runs
    budget = None
    if gpu is not None:
        from memadvise.planner.budget import check_gpu_text

        check_gpu_text(gpu)
    if not list_gpus:
        budget = budget_for(gpu, reserve) if gpu is not None else local_budget(reserve)
    profile = _profile(
        target, pins, trace_batch_size, mode, device, fake, target_device, seq_len, train_loop, gpu
    )
    if budget is None:
        result: object = rank_gpus(profile, pins, Goal(goal.value), reserve)
    else:
        result = search(profile, budget, pins, Goal(goal.value))
    show(reporter_for(fmt.value), result, output, f"{fmt.value} plan")


def _catalog_name(gpu: str | None) -> str | None:
    """A --gpu that names a catalog card (its kernels then decide a fake CUDA trace); ``None`` for sizes."""
    if gpu is None:
        return None
    from memadvise.errors import UsageError
    from memadvise.planner.budget import catalog_card

    try:
        card = catalog_card(gpu)
    except UsageError:
        return None
    return None if card is None else card.name


def _profile(
    target: str,
    pins: Pins,
    trace_batch_size: int,
    mode: Mode,
    device: object,
    fake: bool,
    target_device: object,
    seq_len: int | None,
    train_loop: TrainLoop = TrainLoop.tutorial,
    gpu: str | None = None,
) -> Profile:
    from memadvise.analyzer import Scenario
    from memadvise.planner import fsdp_trace_ranks

    wanted = Scenario(precision=pins.precision, optimizer=pins.optimizer)
    fake_cpu = (fake or getattr(device, "value", None) == "meta") and getattr(
        target_device, "value", None
    ) == "cpu"
    fsdp = fsdp_trace_ranks(pins, fake_cpu)
    profile, _ = load_or_profile(
        target,
        wanted,
        trace_batch_size,
        mode,
        device,
        fake,
        target_device,
        seq_len,
        fsdp,
        train_loop=train_loop,
        gpu=_catalog_name(gpu),
    )
    return profile

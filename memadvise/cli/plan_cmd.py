"""``memadvise plan``: a configuration that fits a GPU, and the GPUs and RAM to run it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memadvise.cli.common import (
    DebugOpt,
    DeviceOpt,
    ExpertLoadOpt,
    FakeOpt,
    FormatOpt,
    GpusOpt,
    LoraDropoutOpt,
    LoraOpt,
    LoraTargetsOpt,
    MemoryLimitOpt,
    ModeOpt,
    NodesOpt,
    OffloadOpt,
    OutputOpt,
    SeqLenOpt,
    StrategyOpt,
    TargetArg,
    TargetDeviceOpt,
    TextFormat,
    TraceBatchSizeOpt,
    TrainLoop,
    TrainLoopOpt,
    handles_errors,
    load_or_profile,
    lora_of,
    module_names,
    refuse_typed_trace_options,
    resolve_target,
    show,
)
from memadvise.cli.target_opts import ImageSizeOpt, TaskOpt
from memadvise.model.limits import MAX_BATCH_SIZE, MAX_GRAD_ACCUM
from memadvise.model.profile import Mode, OptimizerName
from memadvise.reporters import reporter_for

if TYPE_CHECKING:
    from memadvise.model.profile import Profile

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
--offload optimizer|optimizer+params moves optimizer state (and parameters and gradients) to host
memory, and the system-RAM advice grows by what it moves.
--list-gpus ranks the catalog's GPUs for this model, with the price per hour, the option each gets
and the system RAM to pair with it; --goal cheapest ranks the cards that fit by price (the shipped
table's date and source are printed; --prices FILE gives your own: {"prices": {"H100": 2.5}}).
Without TARGET, the model key of tool.memadvise in pyproject.toml (or of memadvise.toml) is used.

\b
Examples:
  memadvise plan gpt2.json --gpu 24GB
  memadvise plan gpt2.json --gpu "RTX 4090" --min-batch 64 --goal fastest
  memadvise plan sample_models/llama2_7b.py --fake --gpu H100 --gpus 8 \\
      --strategy zero3
  memadvise plan gpt2.json --gpu 16GiB --precision fp32 --reserve 0
  memadvise plan sample_models/llama2_7b.py --fake --list-gpus
  memadvise plan gpt2.json --list-gpus --goal cheapest
  memadvise plan gpt2.json --gpu 24GB --offload optimizer
  memadvise plan gpt2.json --gpu A10 --format json
  memadvise plan gpt2.json --gpu 8GB --lora 8 --lora-targets c_attn
"""


class GoalChoice(str, Enum):
    max_batch = "max-batch"
    min_memory = "min-memory"
    fastest = "fastest"
    cheapest = "cheapest"


@handles_errors
def plan_command(
    ctx: typer.Context,
    target: TargetArg = None,
    gpu: Annotated[
        str | None, typer.Option(help="GPU memory (24GB, 80GiB) or catalog name (A100 80GB).")
    ] = None,
    gpus: GpusOpt = 1,
    nodes: NodesOpt = 1,
    strategy: StrategyOpt = None,
    offload: OffloadOpt = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", min=1, max=MAX_BATCH_SIZE, help="Pin the micro-batch per GPU."),
    ] = None,
    min_batch: Annotated[
        int | None,
        typer.Option(
            "--min-batch",
            min=1,
            max=MAX_BATCH_SIZE * MAX_GRAD_ACCUM,
            help="Smallest effective batch (accumulation allowed).",
        ),
    ] = None,
    seq_len: SeqLenOpt = None,
    train_loop: TrainLoopOpt = TrainLoop.tutorial,
    goal: Annotated[
        GoalChoice, typer.Option(help="max-batch, min-memory, fastest, or cheapest (with --list-gpus).")
    ] = GoalChoice.max_batch,
    precision: Annotated[str | None, typer.Option(help="Pin the precision (fp32, bf16-mixed, …).")] = None,
    checkpoint: Annotated[
        list[str] | None, typer.Option(help="Pin checkpointing: module names, auto or none.")
    ] = None,
    optimizer: Annotated[OptimizerName | None, typer.Option(help="Pin the optimizer.")] = None,
    grad_accum: Annotated[
        int | None, typer.Option("--grad-accum", min=1, max=MAX_GRAD_ACCUM, help="Pin the accumulation.")
    ] = None,
    lora: LoraOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = 0.0,
    reserve: Annotated[
        str | None, typer.Option(help="Memory not available to tensors (default: CUDA context + workspace).")
    ] = None,
    list_gpus: Annotated[
        bool, typer.Option("--list-gpus", metavar="", help="Rank the catalog's GPUs for this model.")
    ] = False,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="Price table (JSON) for --list-gpus, instead of the shipped one.", show_default=False
        ),
    ] = None,
    trace_batch_size: TraceBatchSizeOpt = 2,
    mode: ModeOpt = Mode.TRAIN,
    device: DeviceOpt = None,
    fake: FakeOpt = False,
    target_device: TargetDeviceOpt = None,
    memory_limit: MemoryLimitOpt = None,
    fmt: FormatOpt = TextFormat.table,
    output: OutputOpt = None,
    prompt_len: Annotated[
        int | None, typer.Option("--prompt-len", min=1, help="--mode generate: prompt length in tokens.")
    ] = None,
    new_tokens: Annotated[
        int | None,
        typer.Option("--new-tokens", min=1, help="--mode generate: tokens generated per sequence."),
    ] = None,
    weights: Annotated[
        str, typer.Option("--weights", help="--mode generate: weights stored in bf16, int8 or int4.")
    ] = "bf16",
    kv_dtype: Annotated[
        str | None, typer.Option("--kv-dtype", help="--mode generate: KV cache dtype (default bf16).")
    ] = None,
    task: TaskOpt = None,
    image_size: ImageSizeOpt = None,
    expert_load: ExpertLoadOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.errors import UsageError
    from memadvise.model.scenario import parse_offload, parse_precision, parse_strategy
    from memadvise.planner import Goal, Pins, budget_for, local_budget, rank_gpus, search

    if mode is Mode.GENERATE:
        from memadvise.cli.plan_generate import plan_generate

        plan_generate(
            resolve_target(target),
            gpu,
            reserve,
            batch_size,
            prompt_len,
            new_tokens,
            weights,
            kv_dtype,
            trace_batch_size,
            device,
            fake,
            target_device,
            seq_len,
            fmt,
            output,
            memory_limit,
            expert_load,
        )
        return
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
        offload=parse_offload(offload),
        lora=lora_of(lora, lora_targets, lora_dropout),
    )
    if strategy is not None:
        parse_strategy(strategy)  # a clear error before any model runs
    budget = None
    if gpu is not None:
        from memadvise.planner.budget import check_gpu_text

        check_gpu_text(gpu)
    if goal is GoalChoice.cheapest and not list_gpus:
        raise UsageError("--goal cheapest compares the catalog's GPUs: add --list-gpus (and drop --gpu)")
    if list_gpus and gpu is not None:
        raise UsageError("--list-gpus plans every catalog GPU: drop --gpu")
    price_table = None
    if prices is not None:
        from memadvise.planner.prices import load_prices

        if not list_gpus:
            raise UsageError("--prices is for --list-gpus")
        price_table = load_prices(prices)
    if not list_gpus:
        budget = budget_for(gpu, reserve) if gpu is not None else local_budget(reserve)
    target = resolve_target(target)
    refuse_typed_trace_options(ctx, target)
    from memadvise.analyzer import Scenario
    from memadvise.planner import fsdp_trace_ranks

    fake_cpu = (fake or getattr(device, "value", None) == "meta") and getattr(
        target_device, "value", None
    ) == "cpu"
    profile, _ = load_or_profile(
        target,
        Scenario(precision=pins.precision, optimizer=pins.optimizer),
        trace_batch_size,
        mode,
        device,
        fake,
        target_device,
        seq_len,
        fsdp_trace_ranks(pins, fake_cpu),
        train_loop=train_loop,
        gpu=_catalog_name(gpu),
        memory_limit=memory_limit,
        task=task,
        image_size=image_size,
        expert_load=expert_load,
    )
    source, setup = _source(
        target, profile, trace_batch_size, device, fake, target_device, seq_len, gpu, expert_load
    )
    if budget is None:
        result: object = rank_gpus(
            profile, pins, Goal(goal.value), reserve, source=source, setup=setup, prices=price_table
        )
    else:
        result = search(profile, budget, pins, Goal(goal.value), source=source, setup=setup)
    show(reporter_for(fmt.value), result, output, f"{fmt.value} plan")


def _source(
    target: str,
    profile: Profile,
    trace_batch_size: int,
    device: object,
    fake: bool,
    target_device: object,
    seq_len: int | None,
    gpu: str | None,
    expert_load: str | None = None,
) -> tuple[str, str]:
    """What ``memadvise estimate`` takes before an option's flags to replay this plan's profile, and
    the command to run first: nothing for a saved profile; for a model file, ``memadvise profile`` with
    the options it was traced with, saving the profile next to the working folder."""
    import shlex

    if target.endswith(".json"):
        return shlex.quote(target), ""
    path = Path(target.rpartition(":")[0] if ":" in Path(target).name else target)
    saved = f"{path.stem}-plan-profile.json"
    words = ["memadvise", "profile", target, "--batch-size", str(trace_batch_size)]
    words += ["--mode", profile.mode]
    if profile.mode == Mode.TRAIN.value:
        words += ["--optimizer", profile.optimizer, "--train-loop", profile.train_loop]
    if profile.precision != "fp32":
        words += ["--precision", profile.precision]
    if device is not None:
        words += ["--device", str(getattr(device, "value", device))]
    if fake:
        words.append("--fake")
    if target_device is not None:
        words += ["--target-device", str(getattr(target_device, "value", target_device))]
    if seq_len is not None:
        words += ["--seq-len", str(seq_len)]
    if profile.fsdp_ranks:
        words += ["--fsdp", str(profile.fsdp_ranks)]
    if expert_load is not None:
        words += ["--expert-load", expert_load]
    name = _catalog_name(gpu)
    if name is not None and profile.device.startswith("cuda") and (fake or str(device) == "meta"):
        words += ["--gpu", name]
    words += ["-o", saved]
    return shlex.quote(saved), shlex.join(words)


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

"""``memadvise estimate``: what-if memory for another batch size, precision, checkpointing, pruning…"""

from __future__ import annotations

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
SPARSITY[:unstructured|:structured], --optimizer, --frozen (modules not trained), --lora RANK
(PEFT-style adapters on a frozen base; --lora-targets q_proj,v_proj or all-linear, --lora-dropout P),
--precision nf4 with --lora (QLoRA), --low-rank RANK or FRACTION (weights trained as two factors;
--low-rank-targets as for --lora).
--seq-len traces the model file at another sequence length (its example_inputs must take seq_len).
--gpus N [--nodes M] --strategy ddp|zero1|zero2|zero3|fsdp gives one GPU's share of data-parallel
training; --offload optimizer|optimizer+params moves state to host memory and says what that costs.
Without TARGET, the model key of tool.memadvise in pyproject.toml (or of memadvise.toml) is used.

\b
Examples:
  memadvise profile sample_models/gpt2.py -b 2 --format json -o gpt2.json
  memadvise estimate gpt2.json --batch-size 32
  memadvise estimate gpt2.json -b 16 --precision bf16-mixed --checkpoint auto
  memadvise estimate gpt2.json --optimizer adamw-8bit --grad-accum 4
  memadvise estimate gpt2.json --frozen transformer.wte,transformer.h.0
  memadvise estimate gpt2.json --lora 8 --lora-targets c_attn
  memadvise estimate gpt2.json --lora 16 --precision nf4
  memadvise estimate gpt2.json --low-rank 0.25 --low-rank-targets c_fc,c_proj
  memadvise estimate sample_models/mlp.py --prune 0.5:structured
  memadvise estimate gpt2.json --gpus 8 --strategy zero3 --offload optimizer
  memadvise estimate sample_models/gpt2.py --seq-len 64 --format json
  memadvise estimate sample_models/gpt2.py --mode inference --precision int8
  memadvise estimate gen.json -b 64 --new-tokens 4096 --kv-dtype fp8

A generation profile (memadvise profile MODEL --mode generate --new-tokens N -o gen.json) takes
--batch-size, --prompt-len, --new-tokens, --kv-dtype (fp8, int8, bf16, fp16, fp32) and --cache
(dynamic or static): weights stay, the KV cache follows its formula, and the prefill's and the decode
steps' other memory is scaled from the traced steps.
"""


@handles_errors
def estimate_command(
    ctx: typer.Context,
    target: TargetArg = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", min=1, max=MAX_BATCH_SIZE, help="Samples per forward pass."),
    ] = None,
    seq_len: SeqLenOpt = None,
    train_loop: TrainLoopOpt = TrainLoop.tutorial,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32, bf16-mixed, fp16-mixed, bf16, fp16 (training), nf4 (QLoRA, with --lora) "
            "or int8, int4 (weight-only inference)."
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
        int, typer.Option("--grad-accum", min=1, max=MAX_GRAD_ACCUM, help="Micro-batches per optimizer step.")
    ] = 1,
    frozen: Annotated[
        list[str] | None,
        typer.Option(help="Modules whose parameters are not trained (comma-separated or repeated)."),
    ] = None,
    gpus: GpusOpt = 1,
    nodes: NodesOpt = 1,
    strategy: StrategyOpt = None,
    offload: OffloadOpt = None,
    lora: LoraOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = 0.0,
    low_rank: Annotated[
        str | None,
        typer.Option(
            "--low-rank",
            metavar="RANK",
            help="Train weights as two factors: a rank (16) or a fraction (0.25).",
        ),
    ] = None,
    low_rank_targets: Annotated[
        str | None,
        typer.Option("--low-rank-targets", help="Weights to factorise, as for --lora-targets."),
    ] = None,
    trace_batch_size: TraceBatchSizeOpt = 2,
    mode: ModeOpt = Mode.TRAIN,
    device: DeviceOpt = None,
    fake: FakeOpt = False,
    target_device: TargetDeviceOpt = None,
    memory_limit: MemoryLimitOpt = None,
    fmt: FormatOpt = TextFormat.table,
    output: OutputOpt = None,
    new_tokens: Annotated[
        int | None, typer.Option("--new-tokens", min=1, help="Generation profiles: tokens to generate.")
    ] = None,
    prompt_len: Annotated[
        int | None, typer.Option("--prompt-len", min=1, help="Generation profiles: prompt length in tokens.")
    ] = None,
    kv_dtype: Annotated[
        str | None, typer.Option("--kv-dtype", help="Generation profiles: KV cache dtype (fp8, int8, bf16…).")
    ] = None,
    cache: Annotated[
        str | None, typer.Option("--cache", help="Generation profiles: dynamic or static KV cache.")
    ] = None,
    task: TaskOpt = None,
    image_size: ImageSizeOpt = None,
    expert_load: ExpertLoadOpt = None,
    debug: DebugOpt = False,
) -> None:
    from memadvise.analyzer import Pruning, Scenario, estimate
    from memadvise.errors import UsageError
    from memadvise.model.scenario import LowRank, parse_offload, parse_precision, parse_strategy

    generation = (new_tokens, prompt_len, kv_dtype, cache)
    if mode is Mode.GENERATE or any(v is not None for v in generation):
        _generation_estimate(resolve_target(target), batch_size, *generation, fmt, output)
        return

    chosen_precision = parse_precision(precision)
    scenario = Scenario(
        batch_size=batch_size,
        precision=chosen_precision,
        checkpoint=module_names(checkpoint),
        prune=Pruning.parse(prune) if prune is not None else None,
        optimizer=optimizer,
        grad_accum=grad_accum,
        frozen=module_names(frozen),
        gpus=gpus * nodes,
        strategy=parse_strategy(strategy) if strategy is not None else None,
        offload=parse_offload(offload),
        lora=lora_of(lora, lora_targets, lora_dropout),
        low_rank=LowRank.parse(low_rank, low_rank_targets) if low_rank is not None else None,
    )
    if low_rank is None and low_rank_targets is not None:
        raise UsageError("--low-rank-targets needs --low-rank RANK")
    target = resolve_target(target)
    refuse_typed_trace_options(ctx, target)
    asked = scenario
    def traced(wanted: Scenario, seq: int | None, scaling: bool = True) -> tuple[Profile, Scenario]:
        """The saved profile, or the model file traced for ``wanted`` with this command's options."""
        return load_or_profile(
            target,
            wanted,
            trace_batch_size,
            mode,
            device,
            fake,
            target_device,
            seq,
            train_loop=train_loop,
            scaling=scaling,
            memory_limit=memory_limit,
            task=task,
            image_size=image_size,
            expert_load=expert_load,
        )

    profile, scenario = traced(scenario, seq_len)
    result = estimate(profile, scenario)
    if not target.endswith(".json") and (seq_len is not None or scenario != asked):
        # What was asked was traced (another sequence length, precision or optimizer): the baseline is the
        # model file as it is, traced once more, so that the report shows the change.
        baseline, _ = traced(Scenario(), None, scaling=False)
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


def _generation_estimate(
    target: str,
    batch_size: int | None,
    new_tokens: int | None,
    prompt_len: int | None,
    kv_dtype: str | None,
    cache: str | None,
    fmt: TextFormat,
    output: object,
) -> None:
    """The what-if of a saved generation profile."""
    from memadvise.analyzer.kv_cache import GenerationScenario, generation_estimate, kv_itemsize
    from memadvise.errors import UsageError
    from memadvise.model.profile import load_profile

    if not str(target).endswith(".json"):
        raise UsageError(
            "generation what-ifs read a saved generation profile: memadvise profile MODEL --mode generate "
            "--new-tokens N -o gen.json, then memadvise estimate gen.json"
        )
    kv_itemsize(kv_dtype, 1)  # a clear error for an unknown dtype
    scenario = GenerationScenario(
        batch_size=batch_size, prompt_len=prompt_len, new_tokens=new_tokens, kv_dtype=kv_dtype, cache=cache
    )
    result = generation_estimate(load_profile(target), scenario)
    show(reporter_for(fmt.value), result, output, f"{fmt.value} estimate")  # type: ignore[arg-type]

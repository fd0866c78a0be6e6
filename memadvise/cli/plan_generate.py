"""``memadvise plan --mode generate``: the serving search (concurrent sequences, or longest context)."""

from __future__ import annotations

from pathlib import Path

import typer

from memadvise.cli.common import TextFormat, stdout_console

TRACE_NEW_TOKENS = 16  # a model file is traced generating this many tokens, then extrapolated


def plan_generate(
    target: str,
    gpu: str | None,
    reserve: str | None,
    batch_size: int | None,
    prompt_len: int | None,
    new_tokens: int | None,
    weights: str,
    kv_dtype: str | None,
    trace_batch_size: int,
    device: object,
    fake: bool,
    target_device: object,
    seq_len: int | None,
    fmt: TextFormat,
    output: Path | None,
    memory_limit: str | None = None,
    expert_load: str | None = None,
) -> None:
    """Trace (or load) a generation profile and find what fits the GPU."""
    from memadvise.analyzer.kv_cache import kv_itemsize
    from memadvise.cli.common import check_expert_load, chosen_device
    from memadvise.errors import UsageError
    from memadvise.model.profile import load_profile
    from memadvise.planner import budget_for, local_budget
    from memadvise.planner.budget import check_gpu_text
    from memadvise.planner.serving import WEIGHT_BYTES, plan_serving
    from memadvise.reporters.serving_report import render_serving, serving_json

    if weights not in WEIGHT_BYTES:
        raise UsageError(f"unknown --weights {weights!r}; use bf16, int8 or int4")
    kv_itemsize(kv_dtype, 2)
    if gpu is not None:
        check_gpu_text(gpu)
    budget = budget_for(gpu, reserve, training=False) if gpu is not None else local_budget(reserve)
    if str(target).endswith(".json"):
        profile = load_profile(target)
    else:
        from memadvise.api import profile_file

        where = chosen_device(device, fake, target_device)  # type: ignore[arg-type]
        check_expert_load(expert_load, where)
        profile = profile_file(
            target,
            batch_size=trace_batch_size,
            mode="generate",
            new_tokens=TRACE_NEW_TOKENS,
            device=where,
            target_device=getattr(target_device, "value", None),
            seq_len=seq_len,
            scaling=True,
            memory_limit=memory_limit,
            expert_load=expert_load,
        )
    plan = plan_serving(
        profile,
        budget,
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        batch_size=batch_size,
        weights=weights,
        kv_dtype=kv_dtype,
    )
    text = serving_json(plan) if fmt is TextFormat.json else render_serving(plan)
    if output is None:
        if fmt is TextFormat.json:
            typer.echo(text)
        else:
            stdout_console().print(text, highlight=False, markup=False)
        return
    output.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {fmt.value} plan to {output}", err=True)

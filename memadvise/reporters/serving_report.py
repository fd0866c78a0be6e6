"""The report of a serving plan (``memadvise plan --mode generate``): plain text or JSON."""

from __future__ import annotations

import json

from memadvise.planner.serving import ServingPlan


def render_serving(plan: ServingPlan) -> str:
    """The plan as plain text (a few lines)."""
    from memadvise.model.units import format_bytes

    lines = [f"memadvise plan  {plan.model} · generate · {plan.gpu} · weights {plan.weights}"]
    if plan.max_batch is not None:
        if plan.max_batch == 0:
            lines.append(
                f"Nothing fits: one sequence of {plan.prompt_len} + {plan.new_tokens} tokens needs "
                f"{format_bytes(plan.peak_bytes)} of {format_bytes(plan.usable_bytes)}"
            )
        else:
            lines.append(
                f"Max concurrent sequences: {plan.max_batch} "
                f"(prompt {plan.prompt_len} + {plan.new_tokens} new tokens)"
            )
    else:
        if plan.max_context == 0:
            lines.append(
                f"Nothing fits: batch {plan.batch_size} with a {plan.prompt_len}-token prompt needs "
                f"{format_bytes(plan.peak_bytes)} of {format_bytes(plan.usable_bytes)}"
            )
        else:
            lines.append(
                f"Longest context at batch {plan.batch_size}: {plan.max_context} tokens "
                f"(prompt {plan.prompt_len} + {plan.new_tokens} new tokens)"
            )
    lines.append(
        f"Peak {format_bytes(plan.peak_bytes)} of {format_bytes(plan.usable_bytes)} usable, "
        f"in {plan.peak_phase}: "
        f"weights {format_bytes(plan.weights_bytes)}, KV cache {format_bytes(plan.kv_cache_bytes)} "
        f"({plan.kv_itemsize} byte(s) per value, {plan.cache} cache)"
    )
    lines.extend(f"note: {n}" for n in plan.notes)
    return "\n".join(lines)


def serving_json(plan: ServingPlan) -> str:
    return json.dumps(plan.to_dict(), indent=2)

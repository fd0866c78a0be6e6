"""Frozen modules and gradient accumulation: which gradients exist, and for how long.

* **Frozen** (LoRA-style fine-tuning): parameters of the named modules get no gradient and no optimizer
  state. Layers that run before the first trainable one build no autograd graph at all, so they save
  no activations and do no backward work. A frozen linear, convolution or embedding layer further on
  still passes gradients through, but no longer saves its input for a weight gradient; a frozen
  RMSNorm written as ``weight * normalised`` no longer saves the normalised tensor.
* **Gradient accumulation** over K micro-batches: from the second micro-batch on, the gradients of the
  earlier ones are alive during the whole forward and backward pass, and each new gradient is a
  temporary added into them. The second traced step stands for such a micro-batch (it also holds
  the optimizer state, as every micro-batch after the first step does).
"""

from __future__ import annotations

import numpy as np

from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode, Phase
from memadvise.model.program import ParamInfo

WEIGHT_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "Conv1D", "LazyLinear"}
NORMALISED_OPS = {"aten::mul", "aten::to", "aten::_to_copy"}


def freeze(
    ctx: Context, names: tuple[str, ...], layer_types: dict[str, str], casts: np.ndarray | None = None
) -> list[ParamInfo]:
    """Apply ``frozen`` module names; returns the parameters that stay trainable. ``casts`` marks the
    blocks an earlier lever added for autocast's 16-bit weight copies (see :func:`drop_frozen`)."""
    if ctx.profile.mode != Mode.TRAIN.value:
        raise UsageError("--frozen applies to training profiles")
    unknown = [n for n in names if n not in layer_types]
    if unknown:
        raise UsageError(f"no module named {unknown[0]!r} in this profile (see its layer table for names)")
    program = ctx.program
    frozen_module = ctx.under(names)
    module_index = {m: i for i, m in enumerate(program.modules)}

    def is_frozen(module: str) -> bool:
        i = module_index.get(module)
        return (
            bool(frozen_module[i])
            if i is not None
            else any(module == n or module.startswith(n + ".") or n == "" for n in names)
        )

    trainable = [p for p in program.parameters if p.trainable and not is_frozen(p.module)]
    trainable_modules = {module_index[p.module] for p in trainable if p.module in module_index}
    drop_frozen(ctx, frozen_module, trainable_modules, layer_types, casts=casts)
    ctx.note(
        "frozen layers save no input for weight gradients; "
        "layers before the first trainable one build no graph"
    )
    return trainable


def drop_frozen(
    ctx: Context,
    frozen_module: np.ndarray,
    trainable_modules: set[int],
    layer_types: dict[str, str],
    keep_inputs: np.ndarray | None = None,
    casts: np.ndarray | None = None,
) -> None:
    """Drop what frozen modules no longer need: their gradients and optimizer state; the saved
    activations and backward work of the frozen modules that run before the first trainable one (no
    graph is built there); the saved inputs of frozen weight layers, except those in ``keep_inputs``
    (per module-table entry). ``trainable_modules`` index the program's module table.

    ``casts`` (per block) marks autocast's 16-bit copies of the weights: a frozen weight is not in
    autocast's cache (it caches leaves that require grad), but a layer that passes gradients back
    still saves its cast weight for that, so the copy lives as long; only before the first trainable
    layer is it gone (a moment inside the call, not counted)."""
    program = ctx.program
    blocks = ctx.blocks
    per_param = blocks.is_category(Category.GRADIENTS) | blocks.is_category(Category.OPTIMIZER_STATE)
    drop = per_param & frozen_module[blocks.module]

    # Before the first trainable layer no graph is built: no saved activations, no backward work.
    starts = [start for m, step, start, _ in program.forward_calls if step == 0 and m in trainable_modules]
    first = min(starts) if starts else np.inf
    graphless = np.zeros(len(program.modules), dtype=bool)
    for m, step, _, end in program.forward_calls:
        if step == 0 and end <= first and frozen_module[m]:
            graphless[m] = True
    in_backward = np.zeros(len(blocks), dtype=bool)
    for step in ctx.steps():
        span = ctx.phase_span(Phase.BACKWARD, step)
        if span is not None:
            in_backward |= (blocks.alloc >= span[0]) & (blocks.alloc < span[1])
    activations = blocks.is_category(Category.ACTIVATIONS)
    drop |= graphless[blocks.module] & (activations | in_backward)
    weight_layer = np.array([layer_types.get(m, "") in WEIGHT_LAYERS for m in program.modules], dtype=bool)
    if keep_inputs is not None:
        weight_layer &= ~keep_inputs
    saved_input = activations & frozen_module[blocks.module] & weight_layer[blocks.module]
    if casts is not None:
        saved_input &= ~casts
    drop |= saved_input
    drop |= _normalised_for_weight(ctx, frozen_module, layer_types) & activations
    blocks.drop(drop)


def _normalised_for_weight(
    ctx: Context, frozen_module: np.ndarray, layer_types: dict[str, str]
) -> np.ndarray:
    """RMSNorm layers written as ``weight * normalised`` (transformers' Llama, Mistral, Qwen… norms) save
    the normalised tensor only for their weight's gradient: in each call, the last block saved inside it
    (made by the multiplication, or by the cast back to the input dtype)."""
    program = ctx.program
    blocks = ctx.blocks
    mask = np.zeros(len(blocks), dtype=bool)
    ops = np.array([op in NORMALISED_OPS for op in program.ops] + [False], dtype=bool)
    saved = blocks.is_category(Category.ACTIVATIONS) & ops[np.minimum(blocks.op, len(program.ops))]
    for module, _, start, end in program.forward_calls:
        if not frozen_module[module] or not layer_types.get(program.modules[module], "").endswith("RMSNorm"):
            continue
        inside = np.flatnonzero(
            saved & (blocks.module == module) & (blocks.alloc >= start) & (blocks.alloc < end)
        )
        if len(inside):
            mask[inside[np.argmax(blocks.alloc[inside])]] = True
    return mask


HALF_DTYPES = {"bfloat16", "float16"}


def traced_weight_casts(ctx: Context, layer_types: dict[str, str]) -> np.ndarray:
    """Per block: autocast's 16-bit copy of a weight layer's weight in a trace made under autocast — a
    16-bit block the layer saved, of exactly its weight's size, at most one per forward call (made by
    ``aten::_to_copy`` on CUDA, inside the autocast-wrapped operator on CPU). Should the layer's input
    copy be as large, either one is taken: their bytes are the same."""
    program = ctx.program
    blocks = ctx.blocks
    mask = np.zeros(len(blocks), dtype=bool)
    if not ctx.profile.precision.endswith("-mixed"):
        return mask
    index = {m: i for i, m in enumerate(program.modules)}
    sizes: dict[int, set[int]] = {}
    for p in program.parameters:
        if p.name == "weight":
            for user in p.users or (p.module,):
                if user in index and layer_types.get(user, "") in WEIGHT_LAYERS:
                    sizes.setdefault(index[user], set()).add(2 * p.nbytes // p.itemsize)
    if not sizes:
        return mask
    half = np.array([d in HALF_DTYPES for d in program.dtypes] + [False], dtype=bool)
    candidates = (
        blocks.is_category(Category.ACTIVATIONS) & half[np.minimum(blocks.dtype, len(program.dtypes))]
    )
    for module, _, start, end in program.forward_calls:
        if module not in sizes:
            continue
        inside = np.flatnonzero(
            candidates & (blocks.module == module) & (blocks.alloc >= start) & (blocks.alloc < end)
        )
        for i in inside:
            if int(round(blocks.size[i])) in sizes[module]:
                mask[i] = True
                break
    return mask


def accumulate(ctx: Context, micro_batches: int) -> None:
    """Gradients alive through a whole later micro-batch; each new gradient a short temporary."""
    if micro_batches <= 1:
        return
    if ctx.profile.mode != Mode.TRAIN.value:
        raise UsageError("--grad-accum applies to training profiles")
    steps = ctx.steps()
    step = steps[-1]
    forward = ctx.phase_span(Phase.FORWARD, step)
    if forward is None:
        return
    blocks = ctx.blocks
    grads = np.flatnonzero(blocks.is_category(Category.GRADIENTS) & (blocks.alloc >= forward[0]))
    if not len(grads):
        return
    held = blocks.take(np.isin(np.arange(len(blocks)), grads))
    held.alloc[:] = forward[0] - 0.5
    blocks.free[grads] = blocks.alloc[grads] + 0.25  # the new gradient, added into the held one
    blocks.add(held)
    ctx.note(
        f"gradient accumulation over {micro_batches} micro-batches: earlier micro-batches' gradients "
        "stay alive through the forward and backward of the next"
    )

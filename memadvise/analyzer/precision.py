"""Precision: which blocks change width, and what autocast adds.

* **Pure bf16/fp16** (``model.to(dtype)``): every floating-point block halves — parameters, gradients,
  optimizer state, activations, temporaries, floating inputs. Integer and boolean blocks (token ids,
  dropout masks, pooling indices), fp32 step counters and losses keep their size. Blocks whose dtype the trace
  could not see (temporaries inside operators) are taken to be in the compute dtype.
* **Losses** (cross-entropy, NLL, MSE… and their backward) stay fp32 under autocast, which runs them in
  fp32, and in pure 16-bit runs when the model computes its own loss (transformers upcasts the logits
  first); a ``loss_fn`` applied to 16-bit outputs runs in 16 bits.
* **fp32 islands**: transformers' RMSNorm and rotary-embedding modules upcast to fp32 in any dtype;
  the blocks allocated inside them keep their width. (Other upcasts written in model code, such as
  an attention softmax taken in fp32, cannot be seen in an fp32 trace: profile with ``--precision``
  to trace them.)
* **Mixed** (autocast, fp32 master weights): parameters, gradients and optimizer state stay fp32.
  Activations and temporaries are taken to halve (matrix products and convolutions run in 16 bits, and
  what follows them stays there); autocast's cast copies of the weights of linear and convolution
  layers (16-bit, half the parameter bytes) live from the layer's forward until its backward has run.
  This is an approximation of autocast's per-operator rules; ``memadvise profile --precision`` traces
  the real thing.
* **int8/int4 weight-only** (inference): the weights of linear layers are stored as 8-bit integers with
  one scale per output row in the weight's dtype (``out·in + out·s`` bytes), or as 4-bit integers in
  groups of 128 along the input with a bf16 scale and zero point per group (``out·⌈in/2⌉ +
  out·⌈in/128⌉·4`` bytes); other parameters stay. Activations stay in the compute dtype
  (fused weight-only kernels).
"""

from __future__ import annotations

import math

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks
from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode, Phase, module_label
from memadvise.model.program import ParamInfo
from memadvise.model.scenario import Precision

FLOAT_DTYPES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
HALF = {Precision.BF16, Precision.FP16, Precision.BF16_MIXED, Precision.FP16_MIXED}
MATMUL_LAYERS = {
    "Linear",
    "LazyLinear",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Conv1D",  # transformers' GPT-2 projection
}
INT4_GROUP = 128


def is_matmul_layer(kind: str) -> bool:
    """Layers whose weights autocast casts (``NonDynamicallyQuantizableLinear`` and other Linear
    subclasses, and ``MultiheadAttention``'s packed input projection included)."""
    return kind in MATMUL_LAYERS or kind.endswith("Linear") or kind == "MultiheadAttention"


# Losses stay fp32: autocast runs them in fp32, and models that compute their own loss (transformers)
# upcast the logits first. Their backward nodes follow.
FP32_OPS = {
    "aten::cross_entropy_loss",
    "aten::log_softmax",
    "aten::_log_softmax",
    "aten::nll_loss",
    "aten::nll_loss_nd",
    "aten::nll_loss2d",
    "aten::mse_loss",
    "aten::l1_loss",
    "aten::smooth_l1_loss",
    "aten::huber_loss",
    "aten::kl_div",
    "aten::binary_cross_entropy",
    "aten::binary_cross_entropy_with_logits",
    "LogSoftmaxBackward0",
    "NllLossBackward0",
    "NllLoss2DBackward0",
    "MseLossBackward0",
    "L1LossBackward0",
    "SmoothL1LossBackward0",
    "HuberLossBackward0",
    "BinaryCrossEntropyBackward0",
    "BinaryCrossEntropyWithLogitsBackward0",
}


# Modules that compute in fp32 whatever the model's dtype (transformers' RMSNorm and rotary embeddings
# upcast their input); their blocks keep their width in 16-bit runs.
FP32_MODULE_SUFFIXES = ("RMSNorm", "RotaryEmbedding")


def _fp32_islands(ctx: Context, layer_types: dict[str, str]) -> np.ndarray:
    """Blocks allocated inside an fp32-computing module, forward or backward."""
    program = ctx.program
    blocks = ctx.blocks
    island = np.array(
        [layer_types.get(m, "").endswith(FP32_MODULE_SUFFIXES) for m in program.modules], dtype=bool
    )
    mask = (
        island[blocks.module]
        & ~blocks.is_category(Category.PARAMETERS)
        & ~blocks.is_category(Category.BUFFERS)
    )
    for module, _, start, end in program.forward_calls:
        if island[module]:
            mask |= (blocks.alloc >= start) & (blocks.alloc < end)
    return mask


def _float_mask(ctx: Context, compute_itemsize: int) -> np.ndarray:
    """Blocks in the compute dtype: known floating dtype of that width, or unknown dtype."""
    names = ctx.program.dtypes
    known = np.array([FLOAT_DTYPES.get(n, 0) == compute_itemsize for n in names] + [True], dtype=bool)
    unknown = np.array([n == "" for n in names] + [True], dtype=bool)
    codes = np.minimum(ctx.blocks.dtype, len(names))
    return known[codes] | unknown[codes]


def compute_itemsize(params: tuple[ParamInfo, ...]) -> int:
    """Bytes per element of the model's floating parameters (the largest share wins); 4 when none."""
    by_size: dict[int, int] = {}
    for p in params:
        if p.dtype in FLOAT_DTYPES:
            by_size[p.itemsize] = by_size.get(p.itemsize, 0) + p.nbytes
    return max(by_size, key=lambda k: by_size[k]) if by_size else 4


def change_precision(
    ctx: Context,
    precision: Precision,
    matmul_modules: set[str],
    transposed: set[str] | None = None,
    layer_types: dict[str, str] | None = None,
) -> None:
    """Resize the blocks for ``precision``; ``matmul_modules`` are the layers autocast casts weights for
    (and weight-only quantisation applies to), ``transposed`` those storing their weight ``(in, out)``."""
    _health_notes(ctx, precision)
    traced = ctx.profile.precision
    if precision.value == traced:
        return
    if traced in (Precision.BF16_MIXED.value, Precision.FP16_MIXED.value):
        raise UsageError(
            f"this profile was traced under {traced}; estimate other precisions from an fp32 profile"
        )
    if precision in (Precision.INT8, Precision.INT4):
        _weight_only(ctx, precision, matmul_modules, transposed or set())
        return
    itemsize = compute_itemsize(ctx.program.parameters)
    target = 2 if precision in HALF else 4
    if itemsize == target and precision not in (Precision.BF16_MIXED, Precision.FP16_MIXED):
        return
    blocks = ctx.blocks
    loss_ops = np.array([op in FP32_OPS for op in ctx.program.ops] + [False], dtype=bool)
    fp32_loss = loss_ops[np.minimum(blocks.op, len(ctx.program.ops))]
    if precision in (Precision.BF16, Precision.FP16):
        # Pure 16-bit: only a loss the model computes itself is upcast (transformers does); a loss_fn
        # applied to 16-bit outputs runs in 16 bits.
        outside = np.array([m.startswith("<") for m in ctx.program.modules], dtype=bool)
        fp32_loss &= ~outside[blocks.module]
    floats = _float_mask(ctx, itemsize) & ~fp32_loss
    floats &= ~_fp32_islands(ctx, layer_types or {})
    counters = blocks.is_category(Category.OPTIMIZER_STATE) & (blocks.size <= 8)
    if precision in (Precision.BF16, Precision.FP16, Precision.FP32):
        blocks.size = np.where(floats & ~counters, blocks.size * target / itemsize, blocks.size)
        if precision is Precision.FP16 and ctx.profile.mode == Mode.TRAIN.value:
            ctx.note(
                "pure fp16 training without loss scaling loses small gradients; prefer bf16 or fp16-mixed"
            )
        return
    if itemsize != 4:
        raise UsageError(
            "mixed precision estimates start from an fp32 profile; this model was traced in 16 bits"
        )
    compute = blocks.is_category(Category.ACTIVATIONS) | blocks.is_category(Category.TEMPORARIES)
    kept = _optimizer_phase(ctx) | _residual_stream(ctx, matmul_modules, layer_types or {})
    halved = floats & compute & ~kept
    blocks.size = np.where(halved, blocks.size / 2, blocks.size)
    _weight_casts(ctx, matmul_modules)
    _input_cast(ctx, matmul_modules)
    ctx.note(
        "mixed precision approximated from an fp32 trace: activations and temporaries in 16 bits, "
        "16-bit weight copies for linear and convolution layers"
    )


RESIDUAL_OPS = {"aten::add", "aten::add_", "aten::layer_norm", "aten::native_layer_norm"}


def _residual_stream(ctx: Context, matmul_modules: set[str], layer_types: dict[str, str]) -> np.ndarray:
    """Blocks that stay fp32 under autocast because their inputs are fp32.

    What runs before the first matmul layer (embeddings and their dropout: autocast leaves them
    alone) is fp32. Adding a 16-bit branch to that fp32 stream promotes the sum back to fp32, so
    additions in a module that contains matmul layers (a transformer block) and the LayerNorm layers
    that normalise the stream stay fp32 as well.
    """
    program = ctx.program
    blocks = ctx.blocks
    ancestors = {name.rsplit(".", k)[0] for name in matmul_modules for k in range(1, name.count(".") + 1)}
    containers = np.array([m in ancestors for m in program.modules], dtype=bool)
    norms = np.array([layer_types.get(m, "") == "LayerNorm" for m in program.modules], dtype=bool)
    ops = np.array([op in RESIDUAL_OPS for op in program.ops] + [False], dtype=bool)
    kept = (containers[blocks.module] & ops[np.minimum(blocks.op, len(program.ops))]) | norms[blocks.module]
    index = {m: i for i, m in enumerate(program.modules)}
    users = {index[m] for m in matmul_modules if m in index}
    for step in ctx.steps():
        forward = ctx.phase_span(Phase.FORWARD, step)
        firsts = [start for m, s, start, _ in program.forward_calls if s == step and m in users]
        if forward is not None and firsts:
            kept |= (blocks.alloc >= forward[0]) & (blocks.alloc < min(firsts))
    return kept


HALF_DTYPE = {
    Precision.FP16: "float16",
    Precision.FP16_MIXED: "float16",
    Precision.BF16: "bfloat16",
    Precision.BF16_MIXED: "bfloat16",
}


def _health_notes(ctx: Context, precision: Precision) -> None:
    """What the profile's numerical health (``profile --health``) says about this precision."""
    health = ctx.profile.health
    dtype = HALF_DTYPE.get(precision)
    if health is None or dtype is None:
        if health is None and precision in (Precision.FP16, Precision.FP16_MIXED):
            ctx.note("profile with --health to check fp16 overflow and gradient underflow")
        return
    flags = [f for f in health.flags if f.dtype == dtype]
    for flag in flags[:5]:
        ctx.note(
            f"{precision.value}: {flag.kind.replace('_', ' ')} in {module_label(flag.module)} ({flag.detail})"
        )
    if dtype == "float16" and any(f.kind == "overflow" for f in flags):
        ctx.note("fp16 would overflow; prefer bf16, or keep the flagged layers in fp32")
    elif dtype == "float16" and flags:
        ctx.note("fp16 gradients would underflow; use loss scaling (torch.amp.GradScaler) or bf16")


def _optimizer_phase(ctx: Context) -> np.ndarray:
    """Blocks allocated by optimizer steps (their temporaries follow the fp32 master weights)."""
    blocks = ctx.blocks
    mask = np.zeros(len(blocks), dtype=bool)
    for phase, _, start, end in ctx.program.phases:
        if phase == Phase.OPTIMIZER.value:
            mask |= (blocks.alloc >= start) & (blocks.alloc < end)
    return mask


def _weight_casts(ctx: Context, matmul_modules: set[str]) -> None:
    """Autocast's 16-bit copy of each parameter a matmul layer uses (one per parameter, tied ones
    included: autocast caches casts per tensor), from the first user's forward to the last user's
    backward in each step."""
    program = ctx.program
    index = {m: i for i, m in enumerate(program.modules)}
    calls: dict[tuple[int, int], list[int]] = {}
    for module, step, start, _ in program.forward_calls:
        calls.setdefault((module, step), []).append(start)
    nodes: dict[tuple[int, int], int] = {}
    for module, step, _, end in program.backward_nodes:
        nodes[(module, step)] = max(end, nodes.get((module, step), 0))
    rows: list[tuple[float, float, float, int, int]] = []
    cat = CAT[Category.ACTIVATIONS.value]  # saved for the layer's backward
    forwards = {step: ctx.phase_span(Phase.FORWARD, step) for step in ctx.steps()}
    for p in program.parameters:
        users = [index[u] for u in (p.users or (p.module,)) if u in matmul_modules and u in index]
        if not users or p.dtype != "float32":
            continue
        for step, forward in forwards.items():
            starts = [s for u in users for s in calls.get((u, step), [])]
            if not starts:
                continue
            ends = [nodes[(u, step)] for u in users if (u, step) in nodes]
            until = max(ends) if ends else (forward[1] if forward else max(starts) + 1)
            rows.append((min(starts) + 0.5, until - 0.5, p.nbytes / 2, cat, users[0]))
    ctx.blocks.add(Blocks.from_rows(rows))


def _input_cast(ctx: Context, matmul_modules: set[str]) -> None:
    """The 16-bit copy of the model's floating inputs that the first matmul layer casts and saves
    (the fp32 batch itself stays alive as an input), from its forward to its backward."""
    program = ctx.program
    blocks = ctx.blocks
    inputs = blocks.is_category(Category.INPUTS) & (blocks.alloc < 0)
    floats = np.array([FLOAT_DTYPES.get(n, 0) == 4 for n in program.dtypes] + [False], dtype=bool)
    nbytes = float(blocks.size[inputs & floats[np.minimum(blocks.dtype, len(program.dtypes))]].sum())
    if not nbytes:
        return
    index = {m: i for i, m in enumerate(program.modules)}
    users = {index[m] for m in matmul_modules if m in index}
    rows: list[tuple[float, float, float, int, int]] = []
    for step in ctx.steps():
        calls = [(start, m) for m, s, start, _ in program.forward_calls if s == step and m in users]
        if not calls:
            continue
        start, first = min(calls)
        ends = [end for m, s, _, end in program.backward_nodes if s == step and m == first]
        forward = ctx.phase_span(Phase.FORWARD, step)
        until = max(ends) if ends else (forward[1] if forward else start + 1)
        rows.append((start + 0.5, until - 0.5, nbytes / 2, CAT[Category.ACTIVATIONS.value], first))
    blocks.add(Blocks.from_rows(rows))


def quantized_bytes(p: ParamInfo, precision: Precision, transposed: bool = False) -> int:
    """Storage of a linear layer's weight quantized weight-only to int8 or int4 (``transposed``: the
    weight is stored ``(in, out)``, as transformers' ``Conv1D`` does)."""
    if len(p.shape) != 2:
        return p.nbytes
    out, inp = (p.shape[1], p.shape[0]) if transposed else p.shape
    if precision is Precision.INT8:
        return out * inp + out * p.itemsize
    return out * math.ceil(inp / 2) + out * math.ceil(inp / INT4_GROUP) * 4


def _quantizable(p: ParamInfo, matmul_modules: set[str]) -> bool:
    return p.module in matmul_modules and p.name == "weight" and len(p.shape) == 2 and p.dtype in FLOAT_DTYPES


def _weight_only(ctx: Context, precision: Precision, matmul_modules: set[str], transposed: set[str]) -> None:
    """Shrink each linear weight's parameter block (found by owner and size) to its quantized storage."""
    if ctx.profile.mode != Mode.INFERENCE.value:
        raise UsageError(
            f"{precision.value} is a weight-only inference precision; estimate it from an inference profile"
        )
    blocks = ctx.blocks
    module_index = {m: i for i, m in enumerate(ctx.program.modules)}
    params = blocks.is_category(Category.PARAMETERS)
    used = np.zeros(len(blocks), dtype=bool)
    saved = 0
    for p in ctx.program.parameters:
        if not _quantizable(p, matmul_modules):
            continue
        match = np.flatnonzero(
            params & ~used & (blocks.module == module_index.get(p.module, -1)) & (blocks.size == p.nbytes)
        )
        if not len(match):
            continue  # shared with another layer (tied weights) and already counted
        used[match[0]] = True
        stored = quantized_bytes(p, precision, p.module in transposed)
        blocks.size[match[0]] = stored
        saved += p.nbytes - stored
    ctx.note(
        f"{precision.value} weight-only: linear weights {saved:,} bytes smaller; "
        "activations stay in the compute dtype"
    )

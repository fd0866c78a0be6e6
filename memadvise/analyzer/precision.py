"""Precision: which blocks change width, and what autocast adds.

* **Pure bf16/fp16** (``model.to(dtype)``): every floating-point block halves — parameters, gradients,
  optimizer state, activations, temporaries, floating inputs. Integer and boolean blocks (token ids,
  dropout masks, pooling indices), fp32 step counters and losses keep their size. Blocks whose dtype the trace
  could not see (temporaries inside operators) are taken to be in the compute dtype.
* **Losses** (cross-entropy, NLL, MSE… and their backward) stay fp32 in every precision: autocast runs
  them in fp32, and models that compute their own loss (transformers) upcast the logits first. With a
  loss computed on 16-bit logits this over-states the peak by the loss's temporaries.
* **Mixed** (autocast, fp32 master weights): parameters, gradients and optimizer state stay fp32.
  Activations and temporaries are taken to halve (matrix products and convolutions run in 16 bits, and
  what follows them stays there); autocast's cast copies of the weights of linear and convolution
  layers (16-bit, half the parameter bytes) live from the layer's forward until its backward has run.
  This is an approximation of autocast's per-operator rules; ``memadvise profile --precision`` traces
  the real thing.
* **int8/int4 weight-only** (inference): the weights of linear layers are stored as 8-bit integers with
  one scale per output row in the weight's dtype (``out·in + out·s`` bytes), or as 4-bit integers in
  groups of 128 along the input with a bf16 scale and zero point per group (``out·in/2 + out·⌈in/128⌉·4``
  bytes); other parameters stay. Activations stay in the compute dtype (fused weight-only kernels).
"""

from __future__ import annotations

import math

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks
from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.profile import Category, Mode, Phase
from memadvise.program import ParamInfo
from memadvise.scenario import Precision

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


def change_precision(ctx: Context, precision: Precision, matmul_modules: set[str]) -> None:
    """Resize the blocks for ``precision``; ``matmul_modules`` are the layers autocast casts weights for."""
    traced = ctx.profile.precision
    if precision.value == traced:
        return
    if traced in (Precision.BF16_MIXED.value, Precision.FP16_MIXED.value):
        raise UsageError(
            f"this profile was traced under {traced}; estimate other precisions from an fp32 profile"
        )
    if precision in (Precision.INT8, Precision.INT4):
        _weight_only(ctx, precision, matmul_modules)
        return
    itemsize = compute_itemsize(ctx.program.parameters)
    target = 2 if precision in HALF else 4
    if itemsize == target and precision not in (Precision.BF16_MIXED, Precision.FP16_MIXED):
        return
    blocks = ctx.blocks
    loss_ops = np.array([op in FP32_OPS for op in ctx.program.ops] + [False], dtype=bool)
    floats = _float_mask(ctx, itemsize) & ~loss_ops[np.minimum(blocks.op, len(ctx.program.ops))]
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
    blocks.size = np.where(floats & compute, blocks.size / 2, blocks.size)
    _weight_casts(ctx, matmul_modules)
    ctx.note(
        "mixed precision approximated from an fp32 trace: activations and temporaries in 16 bits, "
        "16-bit weight copies for linear and convolution layers"
    )


def _weight_casts(ctx: Context, matmul_modules: set[str]) -> None:
    """Autocast's 16-bit copy of each matmul layer's parameters, from its forward to its backward."""
    program = ctx.program
    own: dict[str, int] = {}
    for p in program.parameters:
        if p.module in matmul_modules and p.dtype == "float32":
            own[p.module] = own.get(p.module, 0) + p.nbytes // 2
    rows: list[tuple[float, float, float, int, int]] = []
    cat = CAT[Category.ACTIVATIONS.value]  # saved for the layer's backward
    for module, step, start, end in program.forward_calls:
        name = program.modules[module]
        if name not in own:
            continue
        nodes = [b for m, s, _, b in program.backward_nodes if m == module and s == step]
        forward_end = ctx.phase_span(Phase.FORWARD, step)
        until = max(nodes) if nodes else (forward_end[1] if forward_end else end)
        rows.append((start + 0.5, until - 0.5, own[name], cat, module))
    ctx.blocks.add(Blocks.from_rows(rows))


def quantized_bytes(p: ParamInfo, precision: Precision) -> int:
    """Storage of a linear layer's weight quantized weight-only to int8 or int4."""
    if len(p.shape) != 2:
        return p.nbytes
    out, inp = p.shape
    if precision is Precision.INT8:
        return out * inp + out * p.itemsize
    return math.ceil(out * inp / 2) + out * math.ceil(inp / INT4_GROUP) * 4


def _quantizable(p: ParamInfo, matmul_modules: set[str]) -> bool:
    return p.module in matmul_modules and p.name == "weight" and len(p.shape) == 2 and p.dtype in FLOAT_DTYPES


def _weight_only(ctx: Context, precision: Precision, matmul_modules: set[str]) -> None:
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
        blocks.size[match[0]] = quantized_bytes(p, precision)
        saved += p.nbytes - quantized_bytes(p, precision)
    ctx.note(
        f"{precision.value} weight-only: linear weights {saved:,} bytes smaller; "
        "activations stay in the compute dtype"
    )

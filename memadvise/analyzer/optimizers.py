"""Optimizer choice: state bytes per parameter, when the state appears, and the step's temporaries.

State (per parameter of ``n`` elements and ``s`` bytes each; PyTorch keeps state in the parameter's
dtype, plus a 4-byte fp32 ``step`` tensor on the host for Adam-style optimizers):

* sgd: none; sgd-momentum: one buffer (``n·s``);
* adam, adamw: two buffers (``2·n·s``); adagrad and rmsprop: one (``n·s``);
* adafactor (``torch.optim.Adafactor``): factored second moment, a row and a column vector for each
  matrix (``(rows + cols)·s`` per matrix slice), the full ``n·s`` for vectors;
* adamw-8bit (bitsandbytes ``AdamW8bit``, GPU only, by formula): two ``uint8`` buffers plus one fp32
  absmax per 256-element block each (``2·n + 8·⌈n/256⌉``); parameters under 4096 elements keep
  fp32 state (``8·n``). paged-adamw-8bit (``PagedAdamW8bit``) holds the same bytes in CUDA unified
  memory, which the driver can page out to host RAM.

Temporaries of the step, measured on PyTorch's single-tensor (for-loop) path, which CPU training
takes: Adam/AdamW hold two parameter-sized temporaries for the parameter being updated plus the
previous parameter's ``denom``; RMSprop and Adafactor one plus the previous one's; SGD and Adagrad
none. On CUDA, PyTorch takes the multi-tensor (``foreach``) path by default, which holds one
temporary the size of *all* parameters of a group at once (``torch._foreach_sqrt`` of the second
moments) for Adam/AdamW, Adagrad, RMSprop and Adafactor — read from PyTorch's code, not yet measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks
from memadvise.analyzer.context import Context
from memadvise.model.profile import Category, OptimizerName, Phase
from memadvise.model.program import ParamInfo


@dataclass(frozen=True)
class Rule:
    buffers: float  # state buffers of the parameter's size
    step_tensor: bool  # a 4-byte fp32 step counter per parameter (host memory on CUDA)
    current: float  # for-loop temporaries: multiples of the parameter being updated...
    previous: float  # ...and of the previous parameter
    foreach: float  # multi-tensor temporaries: multiples of the group's total parameter bytes
    eager: bool = False  # state allocated when the optimizer is built (Adagrad), not at its first step


RULES: dict[OptimizerName, Rule] = {
    OptimizerName.SGD: Rule(0, False, 0, 0, 0),
    OptimizerName.SGD_MOMENTUM: Rule(1, False, 0, 0, 0),
    OptimizerName.ADAM: Rule(2, True, 2, 1, 1),
    OptimizerName.ADAMW: Rule(2, True, 2, 1, 1),
    OptimizerName.ADAGRAD: Rule(1, True, 1, 1, 1, eager=True),
    OptimizerName.RMSPROP: Rule(1, True, 1, 1, 1),
    OptimizerName.ADAFACTOR: Rule(0, True, 1, 1, 1),
    OptimizerName.ADAMW_8BIT: Rule(0, False, 0, 0, 0),
    OptimizerName.PAGED_ADAMW_8BIT: Rule(0, False, 0, 0, 0),
}
EIGHT_BIT = (OptimizerName.ADAMW_8BIT, OptimizerName.PAGED_ADAMW_8BIT)


def state_bytes(name: OptimizerName, p: ParamInfo, on_host_counts: bool) -> int:
    """Bytes of optimizer state one parameter gets."""
    n = math.prod(p.shape)
    rule = RULES[name]
    total = int(rule.buffers * n * p.itemsize)
    if name is OptimizerName.ADAFACTOR:
        if len(p.shape) >= 2:
            slices = math.prod(p.shape[:-2])
            total += slices * (p.shape[-2] + p.shape[-1]) * p.itemsize
        else:
            total += n * p.itemsize
    if name in EIGHT_BIT:
        total += 2 * n + 8 * math.ceil(n / 256) if n >= 4096 else 8 * n
    if rule.step_tensor and on_host_counts:
        total += 4
    return total


def _temporary_bytes(name: OptimizerName, params: list[ParamInfo], foreach: bool) -> int:
    rule = RULES[name]
    sizes = [math.prod(p.shape) * p.itemsize for p in params]
    if not sizes:
        return 0
    if foreach:
        return int(rule.foreach * sum(sizes))
    return int(
        max(rule.current * s + rule.previous * (sizes[i - 1] if i else 0) for i, s in enumerate(sizes))
    )


def change_optimizer(ctx: Context, name: OptimizerName, trainable: list[ParamInfo]) -> None:
    """Replace the traced optimizer's state and temporaries with ``name``'s for the ``trainable`` parameters.

    New state appears at the start of the first optimizer step and stays; each step's temporaries sit
    at the end of its optimizer phase.
    """
    blocks = ctx.blocks
    on_cuda = ctx.profile.device.startswith("cuda")
    in_optimizer = np.zeros(len(blocks), dtype=bool)
    spans = {}
    for step in ctx.steps():
        span = ctx.phase_span(Phase.OPTIMIZER, step)
        if span is None:
            continue
        spans[step] = span
        in_optimizer |= (blocks.alloc >= span[0]) & (blocks.alloc < span[1])
    state = blocks.is_category(Category.OPTIMIZER_STATE)
    old = state | (in_optimizer & blocks.is_category(Category.TEMPORARIES))
    blocks.drop(old)
    if not spans:
        return
    first = min(spans)
    module_index = {m: i for i, m in enumerate(ctx.program.modules)}
    rows: list[tuple[float, float, float, int, int]] = []
    start = -0.5 if RULES[name].eager else spans[first][0] + 0.5
    for p in trainable:
        nbytes = state_bytes(name, p, on_host_counts=not on_cuda)
        if nbytes:
            rows.append(
                (start, np.inf, nbytes, CAT[Category.OPTIMIZER_STATE.value], module_index.get(p.module, 0))
            )
    temp = _temporary_bytes(name, trainable, foreach=on_cuda)
    if temp:
        grads = blocks.is_category(Category.GRADIENTS)
        for begin, end in spans.values():
            # Before zero_grad frees the gradients at the end of the step.
            freed = blocks.free[grads & (blocks.free >= begin) & (blocks.free < end)]
            at = float(freed.min()) if len(freed) else float(end)
            rows.append(
                (
                    at - 0.5,
                    at - 0.25,
                    temp,
                    CAT[Category.TEMPORARIES.value],
                    module_index.get("<optimizer>", 0),
                )
            )
    blocks.add(Blocks.from_rows(rows))
    if name in EIGHT_BIT:
        ctx.note(
            f"{name.value} (bitsandbytes, CUDA only) by formula: "
            "2 bytes per element plus block-wise fp32 scales"
        )
    if name is OptimizerName.PAGED_ADAMW_8BIT:
        ctx.note(
            "paged-adamw-8bit keeps its state in CUDA unified memory, outside PyTorch's allocator: "
            "the driver pages it out to host RAM when the GPU runs short; counted here as GPU memory"
        )
    if on_cuda and RULES[name].foreach:
        ctx.note(
            f"{name.value} on CUDA: multi-tensor (foreach) temporaries from PyTorch's code, not measured"
        )

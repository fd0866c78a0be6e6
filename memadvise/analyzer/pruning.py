"""Pruning: what zeroed weights save (nothing, stored densely) and what removed units save.

* **Unstructured** — single weights set to zero. Stored densely, as ``torch.nn.utils.prune`` does, a
  zero takes as many bytes as any number: the peak does not change (and until ``prune.remove()`` the
  module also keeps ``weight_orig`` and a mask of the same shape). Stored sparse, a CSR matrix with
  int64 indices takes ``nnz·(s + 8) + (rows + 1)·8`` bytes and COO ``nnz·(s + 16)``, so sparse storage
  only pays past a break-even sparsity (67% for fp32 CSR, 80% for COO), which the report gives.
* **Structured** — whole hidden units or channels removed, the layers rebuilt smaller. The linear and
  convolution layers form a chain in forward order; every one whose output feeds the next loses the
  fraction ``sparsity`` of its outputs (``round(n·(1 - sparsity))`` kept), the next one the same inputs,
  and normalisation layers between them their channels. The model's input and output widths stay.
  Activations and temporaries between the first layer and the last shrink with the hidden width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from memadvise.analyzer.context import Context
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Phase
from memadvise.model.program import ParamInfo
from memadvise.model.scenario import PruneKind, Pruning

CHAIN_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d"}
SPARSE_LAYERS = CHAIN_LAYERS | {"Conv1D", "Embedding"}  # weights unstructured pruning may zero
NORM_LAYERS = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm"}
INDEX_BYTES = 8


@dataclass(frozen=True)
class PruneReport:
    """What pruning does to the weights of the prunable layers (bytes as stored)."""

    sparsity: float
    kind: str
    layers: tuple[str, ...]
    dense_weight_bytes: int
    pruned_weight_bytes: int
    csr_bytes: int
    csr_break_even: float
    coo_break_even: float
    new_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def shape_of(self, p: ParamInfo) -> tuple[int, ...]:
        return self.new_shapes.get(f"{p.module}:{p.name}", p.shape)


def _matrix(p: ParamInfo) -> tuple[int, int]:
    rows = p.shape[0]
    return rows, math.prod(p.shape[1:])


def _sparse_figures(weights: list[ParamInfo], sparsity: float) -> tuple[int, float, float]:
    """CSR bytes at ``sparsity`` and the break-even sparsities of CSR and COO."""
    dense = sum(p.nbytes for p in weights)
    csr = 0
    csr_values = 0.0
    pointers = 0
    for p in weights:
        rows, cols = _matrix(p)
        nnz = round((1 - sparsity) * rows * cols)
        csr += nnz * (p.itemsize + INDEX_BYTES) + (rows + 1) * INDEX_BYTES
        csr_values += rows * cols * (p.itemsize + INDEX_BYTES)
        pointers += (rows + 1) * INDEX_BYTES
    csr_even = 1 - (dense - pointers) / csr_values if csr_values else 0.0
    itemsize = weights[0].itemsize if weights else 4
    coo_even = 1 - itemsize / (itemsize + 2 * INDEX_BYTES)
    return csr, max(0.0, csr_even), coo_even


def prune(ctx: Context, pruning: Pruning, layer_types: dict[str, str]) -> PruneReport:
    weights = [
        p
        for p in ctx.program.parameters
        if p.name == "weight" and layer_types.get(p.module) in SPARSE_LAYERS and len(p.shape) >= 2
    ]
    if not weights:
        raise UsageError("pruning needs linear, convolution or embedding layers, and this profile has none")
    csr, csr_even, coo_even = _sparse_figures(weights, pruning.sparsity)
    dense = sum(p.nbytes for p in weights)
    if pruning.kind is PruneKind.UNSTRUCTURED:
        ctx.note(
            f"unstructured pruning stored densely saves nothing; stored as CSR it saves memory only above "
            f"{csr_even:.0%} sparsity (COO: {coo_even:.0%}); torch.nn.utils.prune also keeps weight_orig "
            "and a mask per pruned weight until prune.remove()"
        )
        return PruneReport(
            sparsity=pruning.sparsity,
            kind=pruning.kind.value,
            layers=tuple(p.module for p in weights),
            dense_weight_bytes=dense,
            pruned_weight_bytes=dense,
            csr_bytes=csr,
            csr_break_even=csr_even,
            coo_break_even=coo_even,
        )
    return _structured(ctx, pruning, layer_types, weights, csr, csr_even, coo_even)


def _chain(ctx: Context, layer_types: dict[str, str]) -> list[str]:
    """Prunable layers in the order their forward runs (first call in step 0)."""
    program = ctx.program
    order: list[str] = []
    for module, step, _, _ in program.forward_calls:
        name = program.modules[module]
        if step == 0 and layer_types.get(name) in CHAIN_LAYERS and name not in order:
            order.append(name)
    return order


def _structured(
    ctx: Context,
    pruning: Pruning,
    layer_types: dict[str, str],
    weights: list[ParamInfo],
    csr: int,
    csr_even: float,
    coo_even: float,
) -> PruneReport:
    chain = _chain(ctx, layer_types)
    if len(chain) < 2:
        raise UsageError("structured pruning needs a chain of at least two linear or convolution layers")
    program = ctx.program
    by_module: dict[str, list[ParamInfo]] = {}
    for p in program.parameters:
        by_module.setdefault(p.module, []).append(p)
    shapes: dict[str, tuple[int, ...]] = {}
    ratio = 1.0  # kept fraction of the previous layer's outputs
    for k, name in enumerate(chain):
        weight = next((p for p in by_module.get(name, []) if p.name == "weight"), None)
        if weight is None:
            continue
        out = weight.shape[0]
        kept = out if k == len(chain) - 1 else max(1, round(out * (1 - pruning.sparsity)))
        inputs = weight.shape[1] if k == 0 else max(1, round(weight.shape[1] * ratio))
        shapes[f"{name}:weight"] = (kept, inputs, *weight.shape[2:])
        for p in by_module.get(name, []):
            if p.name == "bias":
                shapes[f"{name}:bias"] = (kept,)
        ratio = kept / out
    hidden = 1 - pruning.sparsity
    _shrink_norms(ctx, layer_types, chain, shapes, hidden)
    _resize_parameters(ctx, shapes)
    _shrink_hidden(ctx, chain, hidden)
    report = PruneReport(
        sparsity=pruning.sparsity,
        kind=pruning.kind.value,
        layers=tuple(chain[:-1]),
        dense_weight_bytes=sum(p.nbytes for p in weights),
        pruned_weight_bytes=sum(
            math.prod(shapes.get(f"{p.module}:weight", p.shape)) * p.itemsize for p in weights
        ),
        csr_bytes=csr,
        csr_break_even=csr_even,
        coo_break_even=coo_even,
        new_shapes=shapes,
    )
    ctx.note(
        f"structured pruning removes {pruning.sparsity:.0%} of the hidden units/channels of "
        f"{len(chain) - 1} layers; activations between them shrink with the hidden width"
    )
    return report


def _shrink_norms(
    ctx: Context,
    layer_types: dict[str, str],
    chain: list[str],
    shapes: dict[str, tuple[int, ...]],
    hidden: float,
) -> None:
    """Normalisation layers that run between the first and the last chain layer lose channels too."""
    program = ctx.program
    first = _first_call(ctx, chain[0])
    last = _first_call(ctx, chain[-1])
    for module, step, start, _ in program.forward_calls:
        name = program.modules[module]
        if step == 0 and first <= start < last and layer_types.get(name) in NORM_LAYERS:
            for p in program.parameters:
                if p.module == name and f"{name}:{p.name}" not in shapes:
                    shapes[f"{name}:{p.name}"] = (max(1, round(p.shape[0] * hidden)), *p.shape[1:])


def _first_call(ctx: Context, name: str) -> int:
    program = ctx.program
    return min(s for m, step, s, _ in program.forward_calls if program.modules[m] == name and step == 0)


def _resize_parameters(ctx: Context, shapes: dict[str, tuple[int, ...]]) -> None:
    """Parameter and gradient blocks of resized parameters (matched by owner and size)."""
    blocks = ctx.blocks
    module_index = {m: i for i, m in enumerate(ctx.program.modules)}
    kinds = blocks.is_category(Category.PARAMETERS) | blocks.is_category(Category.GRADIENTS)
    for p in ctx.program.parameters:
        shape = shapes.get(f"{p.module}:{p.name}")
        if shape is None:
            continue
        match = kinds & (blocks.module == module_index.get(p.module, -1)) & (blocks.size == p.nbytes)
        blocks.size[match] = math.prod(shape) * p.itemsize
    buffers = blocks.is_category(Category.BUFFERS)
    for key, shape in shapes.items():
        module = key.split(":")[0]
        owner = next((p for p in ctx.program.parameters if f"{p.module}:{p.name}" == key), None)
        if owner is None or len(owner.shape) != 1:
            continue
        match = buffers & (blocks.module == module_index.get(module, -1)) & (blocks.size == owner.nbytes)
        blocks.size[match] = shape[0] * owner.itemsize  # running statistics of a norm layer


def _shrink_hidden(ctx: Context, chain: list[str], hidden: float) -> None:
    """Activations and temporaries of the hidden width: allocated from the first chain layer's call to
    the last one's, and the backward work of the modules that ran in between (gradients excluded:
    they follow the parameters)."""
    blocks = ctx.blocks
    start = _first_call(ctx, chain[0])
    last = _first_call(ctx, chain[-1])
    compute = blocks.is_category(Category.ACTIVATIONS) | blocks.is_category(Category.TEMPORARIES)
    forward = np.zeros(len(blocks), dtype=bool)
    step0 = ctx.phase_span(Phase.FORWARD, 0)
    for step in ctx.steps():
        span = ctx.phase_span(Phase.FORWARD, step)
        if span is None or step0 is None:
            continue
        shift = span[0] - step0[0]
        forward |= (blocks.alloc >= start + shift) & (blocks.alloc < last + shift)
    program = ctx.program
    between = tuple(
        {program.modules[m] for m, step, s, _ in program.forward_calls if step == 0 and start <= s <= last}
    )
    in_chain = ctx.under(between)
    backward = np.zeros(len(blocks), dtype=bool)
    for step in ctx.steps():
        span = ctx.phase_span(Phase.BACKWARD, step)
        if span is not None:
            backward |= (blocks.alloc >= span[0]) & (blocks.alloc < span[1])
    scaled = compute & (forward | (backward & in_chain[blocks.module]))
    blocks.size = np.where(scaled, blocks.size * hidden, blocks.size)

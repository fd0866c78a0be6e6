"""LoRA, QLoRA and low-rank factorisation, from a full fine-tuning profile.

* **LoRA** (PEFT's ``LoraConfig(r, target_modules)``): every target linear layer (``W``: out×in) gets
  two trainable adapters, ``A`` (r×in) and ``B`` (out×r), in the base weights' dtype; the whole base
  model is frozen (no gradients, no optimizer state). The adapters get gradients and optimizer state.
  ``A`` saves the layer's input (as the full model's weight gradient did) and ``B`` saves the new
  r-wide activation ``A·x``. Frozen layers that are not adapted save what autograd still needs to pass
  gradients back to earlier adapters — no input of a frozen weight layer — and the layers before the
  first adapter build no graph at all. With ``lora_dropout > 0`` each adapter has its own dropout of
  its input: the dropped-out copy is saved instead of the input, with its mask (an input-sized float
  tensor on CPU, one byte per element on CUDA).
* **QLoRA** (``--precision nf4``): bitsandbytes' 4-bit NormalFloat weights for every linear layer but
  the output head (which transformers keeps), the rest of the model in bf16, activations in bf16.
  Storage per weight of ``n`` elements, from bitsandbytes' ``quantize_4bit`` with double quantisation
  (``compress_statistics``, blocksize 64): ``⌈n/2⌉`` packed bytes, one uint8 absmax per 64-element block
  (``b = ⌈n/64⌉`` bytes), one fp32 absmax per 256 of those blocks (``4·⌈b/256⌉``), an fp32 offset, the
  16-entry fp32 NF4 code (64 bytes) and the 256-entry fp32 code of the nested state (1 KiB, copied per
  weight by recent bitsandbytes). ``MatMul4Bit`` dequantises the weight to the compute dtype (an
  ``out×in`` bf16 temporary) in each layer's forward and again in its backward. The adapters stay fp32,
  PEFT's default when the base weight has no floating dtype, and PEFT casts each adapter's input to
  fp32. The storage equals what bitsandbytes 0.50's ``quantize_4bit`` returns, and a QLoRA step run
  with bitsandbytes' CPU kernels was matched (tests/integration/test_qlora.py); its CUDA kernels are
  read from its source, not measured.
* **Low-rank factorisation**: every target weight ``W`` (m×n) becomes two factors (m×r)(r×n), both
  trained: ``r·(m + n)`` weights instead of ``m·n``, with their gradients and optimizer state, and the
  r-wide activation between the two factors saved for backward. Weights shrink only below the
  break-even rank ``m·n/(m + n)``.

Target names are module-name suffixes as PEFT matches them (``q_proj`` matches
``model.layers.0.self_attn.q_proj``), or ``all-linear``: every linear layer (``nn.Linear`` and
transformers' ``Conv1D``) except the output head — the last linear layer of the forward pass when its
weight is tied to an embedding or it is called like an output head (``lm_head``, ``classifier``…).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memadvise.analyzer.blocks import CAT, Blocks
from memadvise.analyzer.context import Context
from memadvise.analyzer.finetune import drop_frozen
from memadvise.analyzer.precision import HALF, compute_itemsize
from memadvise.errors import UsageError
from memadvise.model.profile import Category, Mode, Phase
from memadvise.model.program import ParamInfo
from memadvise.model.scenario import ALL_LINEAR, Lora, LowRank, Precision, Scenario

LINEAR_TYPES = {"Linear", "LazyLinear", "Conv1D", "NonDynamicallyQuantizableLinear"}
HEAD_NAMES = {"lm_head", "embed_out", "output", "classifier", "score", "head", "output_layer"}
NF4_BLOCK = 64
NF4_NESTED_BLOCK = 256
NF4_CODES = 16 * 4 + 256 * 4  # the NF4 code and the nested state's code, fp32
NF4_OFFSET = 4


@dataclass(frozen=True)
class Layer:
    """A linear layer's weight as a matrix: ``rows`` outputs by ``cols`` inputs."""

    name: str
    weight: ParamInfo
    rows: int
    cols: int


@dataclass(frozen=True)
class LoraReport:
    """What LoRA adds and freezes: the adapted layers, the adapters' bytes (weights only) and the base
    model's trainable bytes before."""

    rank: int
    layers: tuple[str, ...]
    adapter_param_bytes: int
    adapter_params: int
    base_params: int
    dropout: float = 0.0


@dataclass(frozen=True)
class LowRankLayer:
    """One factorised weight: ``rows × cols`` as ``(rows × rank)(rank × cols)``; below ``break_even``
    (``rows·cols/(rows + cols)``) the factors hold fewer weights than the matrix."""

    name: str
    rows: int
    cols: int
    rank: int
    break_even: float
    weight_bytes: int
    factor_bytes: int


@dataclass(frozen=True)
class LowRankReport:
    layers: tuple[LowRankLayer, ...]

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def factor_bytes(self) -> int:
        return sum(layer.factor_bytes for layer in self.layers)


def _forward_order(ctx: Context) -> list[str]:
    program = ctx.program
    order: dict[str, None] = {}
    for module, step, _, _ in program.forward_calls:
        if step == 0:
            order.setdefault(program.modules[module], None)
    return list(order)


def linear_layers(ctx: Context, layer_types: dict[str, str]) -> list[Layer]:
    """The linear layers with a 2-D weight, in the order of their first forward call."""
    weights: dict[str, ParamInfo] = {}
    for p in ctx.program.parameters:
        if p.name != "weight" or len(p.shape) != 2:
            continue
        for user in p.users or (p.module,):
            weights.setdefault(user, p)
    found = []
    for name in _forward_order(ctx):
        weight = weights.get(name)
        kind = layer_types.get(name, "")
        if weight is None or not (kind in LINEAR_TYPES or kind.endswith("Linear")):
            continue
        rows, cols = (weight.shape[1], weight.shape[0]) if kind == "Conv1D" else weight.shape
        found.append(Layer(name=name, weight=weight, rows=rows, cols=cols))
    return found


def output_head(ctx: Context, layers: list[Layer], layer_types: dict[str, str]) -> str | None:
    """The output head that ``all-linear`` leaves out (as PEFT does): the last linear layer of the
    forward pass when its weight is tied to an embedding or its name says head."""
    if not layers:
        return None
    last = layers[-1]
    tied = any(layer_types.get(u, "") == "Embedding" for u in last.weight.users)
    if tied or last.name.rsplit(".", 1)[-1] in HEAD_NAMES:
        return last.name
    return None


def resolve_targets(
    ctx: Context, targets: tuple[str, ...], layer_types: dict[str, str], option: str
) -> list[Layer]:
    """The linear layers ``targets`` name (suffixes of module names, or ``all-linear``)."""
    layers = linear_layers(ctx, layer_types)
    if targets == (ALL_LINEAR,):
        head = output_head(ctx, layers, layer_types)
        chosen = [layer for layer in layers if layer.name != head]
    else:
        by_name = {layer.name: layer for layer in layers}
        chosen = []
        for suffix in targets:
            matches = [n for n in layer_types if n == suffix or n.endswith("." + suffix)]
            if not matches:
                raise UsageError(
                    f"{option}: no module name ends with {suffix!r} (see the profile's layer table)"
                )
            other = [n for n in matches if n not in by_name]
            if other:
                raise UsageError(
                    f"{option}: {other[0]!r} is a {layer_types[other[0]]}; only linear layers can be chosen"
                )
            chosen.extend(by_name[n] for n in matches)
        order = {layer.name: k for k, layer in enumerate(layers)}
        chosen = sorted({layer.name: layer for layer in chosen}.values(), key=lambda x: order[x.name])
    if not chosen:
        raise UsageError(f"{option}: this profile has no linear layer to choose")
    return chosen


def _calls(ctx: Context, module: int) -> list[tuple[int, float, float]]:
    """Every forward call of ``module`` as ``(step, start, free)``, ``free`` being the end of the
    module's last backward node in that step (what it saves lives until then), or of the forward
    phase when it has none."""
    program = ctx.program
    ends: dict[int, int] = {}
    for m, step, _, end in program.backward_nodes:
        if m == module:
            ends[step] = max(end, ends.get(step, 0))
    calls = []
    for m, step, start, end in program.forward_calls:
        if m != module:
            continue
        forward = ctx.phase_span(Phase.FORWARD, step)
        until = ends.get(step, forward[1] if forward else end)
        calls.append((step, float(start), float(until)))
    return calls


def _output_sized(ctx: Context, module: int, nbytes: float) -> list[tuple[float, float, float, int, int]]:
    """The adapter path's output-sized temporaries: ``B(A(x))`` and its scaled copy before they are
    added to the base layer's output (in each forward call), and the scaled incoming gradient while the
    adapters' backward runs (in the module's first backward node of each step)."""
    temp = CAT[Category.TEMPORARIES.value]
    rows = []
    for m, _, start, end in ctx.program.forward_calls:
        if m == module:
            rows.append((start + 0.5, max(end - 0.5, start + 0.5), 2 * nbytes, temp, module))
    first: dict[int, tuple[int, int]] = {}
    for m, step, start, end in ctx.program.backward_nodes:
        if m == module and (step not in first or start < first[step][0]):
            first[step] = (start, end)
    for start, end in first.values():
        rows.append((start - 0.25, end - 0.25, nbytes, temp, module))
    return rows


def _tokens(ctx: Context, layer: Layer, layer_stats: dict[str, tuple[int, int]], scale: float) -> float:
    """Rows of the layer's input per call (batch × sequence), from the output bytes it recorded."""
    output_bytes, calls = layer_stats.get(layer.name, (0, 0))
    itemsize = layer.weight.itemsize
    if not calls or not output_bytes:
        return 0.0
    return output_bytes / (calls * layer.rows * itemsize) * scale


def _grad_times(ctx: Context, module: int) -> dict[int, tuple[float, float]]:
    """When the module's gradients appeared and were freed, per step (before they are dropped). A
    module whose weight's gradient was recorded elsewhere (a tied weight) gets its first backward node
    and the end of that step's optimizer phase (``zero_grad``)."""
    blocks = ctx.blocks
    grads = np.flatnonzero(blocks.is_category(Category.GRADIENTS) & (blocks.module == module))
    times: dict[int, tuple[float, float]] = {}
    for i in grads:
        _, step = ctx.phase_at(float(blocks.alloc[i]))
        a, f = float(blocks.alloc[i]), float(blocks.free[i])
        if step in times:
            a, f = min(a, times[step][0]), max(f, times[step][1])
        times[step] = (a, f)
    if times:
        return times
    for m, step, start, _ in ctx.program.backward_nodes:
        if m != module:
            continue
        optimizer = ctx.phase_span(Phase.OPTIMIZER, step)
        until = float(optimizer[1]) - 0.5 if optimizer is not None else np.inf
        begin = min(float(start) + 0.5, times.get(step, (np.inf, 0.0))[0])
        times[step] = (begin, until)
    return times


def _module_index(ctx: Context) -> dict[str, int]:
    return {m: i for i, m in enumerate(ctx.program.modules)}


def adapt(
    ctx: Context,
    scenario: Scenario,
    layer_types: dict[str, str],
    trainable: list[ParamInfo],
    casts: np.ndarray,
) -> tuple[list[ParamInfo], LoraReport | None, LowRankReport | None]:
    """Apply the scenario's LoRA or low-rank factorisation (after its batch size and precision);
    returns the trainable parameters and the reports. ``casts`` marks autocast's weight copies."""
    profile = ctx.profile
    precision = scenario.precision
    nf4 = precision is Precision.NF4
    pure = precision in (Precision.BF16, Precision.FP16)
    traced_itemsize = compute_itemsize(ctx.program.parameters)
    act_itemsize = 2 if precision in HALF or nf4 else traced_itemsize
    layer_stats = {layer.name: (layer.output_bytes, layer.calls) for layer in profile.layers}
    batch_scale = (scenario.batch_size or profile.batch_size) / max(profile.batch_size, 1)
    lora_report = low_rank_report = None
    if scenario.lora is not None:
        trainable, lora_report = apply_lora(
            ctx,
            scenario.lora,
            layer_types,
            layer_stats,
            adapter_itemsize=4 if nf4 else 2 if pure else traced_itemsize,  # PEFT: fp32 over 4-bit
            act_itemsize=act_itemsize,
            batch_scale=batch_scale,
            casts=casts,
            autocast=precision in (Precision.BF16_MIXED, Precision.FP16_MIXED),
        )
    if scenario.low_rank is not None:
        trainable, low_rank_report = apply_low_rank(
            ctx,
            scenario.low_rank,
            layer_types,
            layer_stats,
            trainable,
            param_scale=2 / traced_itemsize if pure else 1.0,
            act_itemsize=act_itemsize,
            batch_scale=batch_scale,
        )
    return trainable, lora_report, low_rank_report


def apply_lora(
    ctx: Context,
    spec: Lora,
    layer_types: dict[str, str],
    layer_stats: dict[str, tuple[int, int]],
    *,
    adapter_itemsize: int,
    act_itemsize: int,
    batch_scale: float,
    casts: np.ndarray | None = None,
    autocast: bool = False,
) -> tuple[list[ParamInfo], LoraReport]:
    """Freeze the base model, add the adapters; returns the adapters (the trainable parameters).

    ``casts`` marks autocast's weight copies among the blocks; under ``autocast`` each adapter casts
    its input to 16 bits and saves that copy (the base layer's input is then not saved at all), and
    its two weights' 16-bit copies live until its backward."""
    profile = ctx.profile
    if profile.mode != Mode.TRAIN.value:
        raise UsageError("--lora applies to training profiles")
    if any(".lora_A" in name for name in ctx.program.modules):
        raise UsageError(
            "this profile traced a model with LoRA adapters already; "
            "estimate --lora from the full model's profile"
        )
    layers = resolve_targets(ctx, spec.targets, layer_types, "--lora-targets")
    index = _module_index(ctx)
    program = ctx.program
    blocks = ctx.blocks
    adapted = np.zeros(len(program.modules), dtype=bool)
    for layer in layers:
        adapted[index[layer.name]] = True
    grad_times = {layer.name: _grad_times(ctx, index[layer.name]) for layer in layers}
    rows: list[tuple[float, float, float, int, int]] = []
    no_grad_input = _first_inputs(ctx, layers, index)
    # Adapters in another dtype than the activations (fp32 over QLoRA's bf16): PEFT casts each
    # adapter's input to the adapters' dtype, and the adapter path computes in it.
    cast_input = adapter_itemsize != act_itemsize and not autocast
    lora_itemsize = adapter_itemsize if cast_input else act_itemsize
    own_input = spec.dropout > 0 or autocast or cast_input
    if own_input:
        # Each adapter saves its own copy (dropped out, or cast to 16 bits) instead of the input.
        inputs = blocks.is_category(Category.ACTIVATIONS) & adapted[blocks.module]
        if casts is not None:
            inputs &= ~casts
            casts = casts[~inputs]
        blocks.drop(inputs)
    trainable: list[ParamInfo] = []
    r = spec.rank
    # A dropout mask has the input's dtype on CPU (fp32 under autocast: dropout is not autocast) and
    # one byte per element on CUDA.
    mask_itemsize = 1 if profile.device.startswith("cuda") else adapter_itemsize if autocast else act_itemsize
    for layer in layers:
        m = index[layer.name]
        a = ParamInfo(
            layer.name, "lora_A.weight", (r, layer.cols), _dtype(adapter_itemsize), adapter_itemsize
        )
        b = ParamInfo(
            layer.name, "lora_B.weight", (layer.rows, r), _dtype(adapter_itemsize), adapter_itemsize
        )
        trainable += [a, b]
        rows.append((-1.0, np.inf, a.nbytes + b.nbytes, CAT[Category.PARAMETERS.value], m))
        for begin, end in grad_times[layer.name].values():
            rows.append((begin, end, a.nbytes + b.nbytes, CAT[Category.GRADIENTS.value], m))
        tokens = _tokens(ctx, layer, layer_stats, batch_scale)
        for _step, start, until in _calls(ctx, m):
            at = start + 0.5
            rows.append((at, until - 0.5, tokens * r * lora_itemsize, CAT[Category.ACTIVATIONS.value], m))
            width = tokens * layer.cols
            if own_input:
                rows.append((at, until - 0.5, width * lora_itemsize, CAT[Category.ACTIVATIONS.value], m))
            if spec.dropout > 0 and layer.name not in no_grad_input:
                # dropout saves its mask only for an input that requires grad
                rows.append((at, until - 0.5, width * mask_itemsize, CAT[Category.ACTIVATIONS.value], m))
            if autocast:
                copies = (a.nbytes + b.nbytes) * act_itemsize / adapter_itemsize
                rows.append((at, until - 0.5, copies, CAT[Category.ACTIVATIONS.value], m))
        rows.extend(_output_sized(ctx, m, tokens * layer.rows * lora_itemsize))
    frozen = np.array([not name.startswith("<") for name in program.modules], dtype=bool)
    drop_frozen(
        ctx, frozen, {index[layer.name] for layer in layers}, layer_types, keep_inputs=adapted, casts=casts
    )
    blocks.add(Blocks.from_rows(rows))
    base = sum(math.prod(p.shape) for p in program.parameters)
    adapter_params = sum(math.prod(p.shape) for p in trainable)
    if spec.dropout > 0:
        ctx.note(
            f"LoRA dropout {spec.dropout:g}: each adapter saves its dropped-out input and the dropout mask"
        )
    report = LoraReport(
        rank=r,
        layers=tuple(layer.name for layer in layers),
        adapter_param_bytes=sum(p.nbytes for p in trainable),
        adapter_params=adapter_params,
        base_params=base,
        dropout=spec.dropout,
    )
    return trainable, report


def _first_inputs(ctx: Context, layers: list[Layer], index: dict[str, int]) -> set[str]:
    """Adapted layers whose input needs no gradient: the first one, and its siblings that read the same
    input (in the full profile they saved none of their own: the first one's saved input is theirs)."""
    first = layers[0].name
    parent = first.rpartition(".")[0]
    blocks = ctx.blocks
    forward = ctx.phase_span(Phase.FORWARD, 0)
    saved = blocks.is_category(Category.ACTIVATIONS)
    if forward is not None:
        saved &= (blocks.alloc >= forward[0]) & (blocks.alloc < forward[1])
    found = {first}
    for layer in layers[1:]:
        if layer.name.rpartition(".")[0] != parent:
            break
        if (saved & (blocks.module == index[layer.name])).any():
            break
        found.add(layer.name)
    return found


def _dtype(itemsize: int) -> str:
    return {2: "bfloat16", 4: "float32", 8: "float64"}.get(itemsize, "float32")


def nf4_bytes(n: int) -> int:
    """Bytes of one weight of ``n`` elements in bitsandbytes' NF4 with double quantisation."""
    absmax_blocks = math.ceil(n / NF4_BLOCK)
    return (
        math.ceil(n / 2)
        + absmax_blocks
        + 4 * math.ceil(absmax_blocks / NF4_NESTED_BLOCK)
        + NF4_OFFSET
        + NF4_CODES
    )


def quantize_nf4(
    ctx: Context, scenario: Scenario, layer_types: dict[str, str], compute_itemsize: int = 2
) -> int:
    """Linear weights (all but the output head) as NF4, with the dequantised weight alive in each
    layer's forward and backward; runs after the model was taken to bf16. Returns the bytes saved."""
    if ctx.profile.mode == Mode.TRAIN.value and scenario.lora is None:
        raise UsageError("nf4 weights cannot be trained; combine --precision nf4 with --lora (QLoRA)")
    if scenario.low_rank is not None:
        raise UsageError("--low-rank trains the factorised weights, which nf4 cannot hold")
    layers = linear_layers(ctx, layer_types)
    head = output_head(ctx, layers, layer_types)
    layers = [layer for layer in layers if layer.name != head]
    if not layers:
        raise UsageError("nf4 quantises linear layers, and this profile has none")
    blocks = ctx.blocks
    index = _module_index(ctx)
    params = blocks.is_category(Category.PARAMETERS)
    used = np.zeros(len(blocks), dtype=bool)
    saved = 0
    rows: list[tuple[float, float, float, int, int]] = []
    program = ctx.program
    temp = CAT[Category.TEMPORARIES.value]
    for layer in layers:
        n = layer.rows * layer.cols
        m = index[layer.name]
        dense = n * compute_itemsize
        match = np.flatnonzero(params & ~used & (blocks.module == m) & (np.rint(blocks.size) == dense))
        if not len(match):
            continue
        used[match[0]] = True
        blocks.size[match[0]] = nf4_bytes(n)
        saved += dense - nf4_bytes(n)
        for module, _, start, end in program.forward_calls:
            if module == m:
                rows.append((start - 0.25, end - 0.25, dense, temp, m))
        for module, _, start, end in program.backward_nodes:
            if module == m:
                rows.append((start - 0.25, end - 0.25, dense, temp, m))
    blocks.add(Blocks.from_rows(rows))
    ctx.note(
        f"nf4 (bitsandbytes; its CUDA kernels assumed to work as on CPU): {len(layers)} linear weights "
        "at 0.5 byte per weight plus block-wise scales, each dequantised to bf16 in its forward and backward"
    )
    return saved


def apply_low_rank(
    ctx: Context,
    spec: LowRank,
    layer_types: dict[str, str],
    layer_stats: dict[str, tuple[int, int]],
    trainable: list[ParamInfo],
    *,
    param_scale: float,
    act_itemsize: int,
    batch_scale: float,
) -> tuple[list[ParamInfo], LowRankReport]:
    """Factorise the target weights; returns the new trainable parameter list and the report."""
    layers = resolve_targets(ctx, spec.targets, layer_types, "--low-rank-targets")
    index = _module_index(ctx)
    blocks = ctx.blocks
    kinds = blocks.is_category(Category.PARAMETERS) | blocks.is_category(Category.GRADIENTS)
    report: list[LowRankLayer] = []
    rows: list[tuple[float, float, float, int, int]] = []
    replaced: dict[tuple[str, str], list[ParamInfo]] = {}
    training = ctx.profile.mode == Mode.TRAIN.value
    for layer in layers:
        p = layer.weight
        m, n = layer.rows, layer.cols
        r = spec.rank_of(m, n)
        itemsize = p.itemsize * param_scale
        module = index[layer.name]
        owners = [index[u] for u in (p.users or (p.module,)) if u in index]
        match = (
            kinds & np.isin(blocks.module, owners) & (np.rint(blocks.size) == round(p.nbytes * param_scale))
        )
        blocks.size[match] = r * (m + n) * itemsize
        report.append(
            LowRankLayer(
                name=layer.name,
                rows=m,
                cols=n,
                rank=r,
                break_even=m * n / (m + n),
                weight_bytes=round(m * n * itemsize),
                factor_bytes=round(r * (m + n) * itemsize),
            )
        )
        replaced[(p.module, p.name)] = [
            ParamInfo(p.module, p.name + ".0", (r, n), p.dtype, p.itemsize, p.trainable, p.users),
            ParamInfo(p.module, p.name + ".1", (m, r), p.dtype, p.itemsize, p.trainable, p.users),
        ]
        if not training:
            continue
        tokens = _tokens(ctx, layer, layer_stats, batch_scale)
        for _step, start, until in _calls(ctx, module):
            rows.append(
                (start + 0.5, until - 0.5, tokens * r * act_itemsize, CAT[Category.ACTIVATIONS.value], module)
            )
    blocks.add(Blocks.from_rows(rows))
    new_trainable: list[ParamInfo] = []
    for p in trainable:
        new_trainable.extend(replaced.get((p.module, p.name), [p]))
    larger = [layer.name for layer in report if layer.rank >= layer.break_even]
    ctx.note(
        f"low-rank factorisation of {len(report)} weights: {sum(x.weight_bytes for x in report):,} bytes of "
        f"weights become {sum(x.factor_bytes for x in report):,}"
        + (f"; {len(larger)} at or above their break-even rank grow" if larger else "")
    )
    return new_trainable, LowRankReport(layers=tuple(report))

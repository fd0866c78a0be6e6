"""Independent ground truth for memadvise's peak-memory numbers.

This module deliberately shares no code with ``memadvise``: it loads a model
file on its own, runs a fixed training (or inference) loop under
``torch.profiler`` with ``profile_memory=True`` and rebuilds the live-bytes
curve as the running sum of the profiler's CPU allocator events (positive =
allocation, negative = free).  The peak of that curve inside the measured
window is the number memadvise has to reproduce.

The measured loop (``mode="train"``) is PyTorch's tutorial loop as Python runs it::

    torch.manual_seed(0)
    model = build_model(); inputs = example_inputs(batch_size); gc.collect()
    # --- window starts ---
    model.train(); opt = make_optimizer(...)
    for _ in range(2):
        out = call(model, inputs); loss = loss_fn(out, inputs)   # phase "forward"
        loss.backward()                                          # phase "backward"
        opt.step(); opt.zero_grad(set_to_none=True)              # phase "optimizer"
    # --- window ends ---

so the output and loss of one step stay alive through ``step()`` and ``zero_grad()`` and until the
next step's forward returns and its assignment replaces them. ``loop="lean"`` adds ``del out, loss``
right after ``backward()``.

``mode="inference"`` runs two ``model.eval()`` forwards under ``torch.no_grad()``.
Everything allocated since the profiler started (parameters, buffers, inputs)
counts towards the curve, and the peak is at least the level live when the
window opens.  PyTorch drops the free of a block allocated while no profiler
was recording, but it does report the free of a block allocated under an
*earlier* profiling session; garbage is therefore collected before the
profiler starts, so that leftovers of a previous run cannot lower the curve.

Peaks depend on ``torch.get_num_threads()``: some CPU kernels (oneDNN
convolution backward in particular) size scratch buffers by thread count.

What-if scenarios (keyword-only options of :func:`measure_peak`) are applied
with PyTorch's own machinery, all of it *before* the window opens unless said
otherwise, so the window's baseline holds exactly the model that is trained::

    model = build_model()
    model = transform(model)                 # e.g. prune_structured; the old model is freed here
    model.to(dtype)                          # pure "bf16"/"fp16"; floating inputs are cast too
    module.requires_grad_(False)             # every name in ``frozen``
    module.forward = checkpointed(forward)   # every name in ``checkpoint`` (use_reentrant=False);
                                             # a transformers config's use_cache is then set False
    gc.collect()
    # --- window starts ---
    opt = make_optimizer(...)                # trainable parameters only
    for _ in range(steps):
        for _ in range(grad_accum):          # micro-batches on the same example_inputs(batch_size)
            with autocast:                   # "bf16-mixed"/"fp16-mixed" only
                out = call(model, inputs); loss = loss_fn(out, inputs)         # "forward"
            loss.backward()                  # outside autocast                  "backward"
            # (lean loop only: del out, loss)
        opt.step(); opt.zero_grad(set_to_none=True)                             # "optimizer"

The loss is not divided by ``grad_accum`` (that would only add scalars).
Mixed precision keeps fp32 master weights (and fp32 gradients and optimizer
state); autocast's cache of half weight copies is dropped when the forward
phase's ``autocast`` block exits, but copies saved for backward live until
backward frees them.  On CPU, ``fp16-mixed`` runs (checked with torch 2.14 on a
Linear, the GPT-2 and the ResNet-18 zoo files, where it gives the same bytes
as ``bf16-mixed``): autocast's CPU lower-precision op list covers matmul,
linear and convolution and other ops run as they are; an op without a float16
CPU kernel would raise its own error from inside the window.  Pure ``fp16``
also runs on CPU but can be much slower than ``bf16`` (e.g. convolutions).

:func:`prune_structured` really removes hidden units/channels (it rebuilds
``nn.Linear``/``nn.Conv2d``/norm layers with fewer features), so it can be used
as ``transform=lambda m: prune_structured(m, 0.5)``.

Command line: ``python tests/groundtruth.py MODEL_FILE --batch-size 4 [--mode inference]
[--optimizer adamw] [--steps 2] [--precision bf16-mixed] [--checkpoint NAME ...] [--frozen NAME ...]
[--grad-accum K] [--prune SPARSITY]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.fx
import torch.utils.checkpoint
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

MODES = ("train", "inference")
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd-momentum", "adagrad", "rmsprop", "adafactor", "none")
PHASES = ("forward", "backward", "optimizer")
PRECISIONS = ("fp32", "bf16", "fp16", "bf16-mixed", "fp16-mixed")
_PRECISION_DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "bf16-mixed": torch.bfloat16,
    "fp16-mixed": torch.float16,
}

_PREFIX = "groundtruth::"
_WINDOW = _PREFIX + "window"
_MEMORY_EVENT = "[memory]"
_HOST_DEVICE_TYPES = {"CPU", "MKLDNN", "IDEEP"}


@dataclass(frozen=True)
class MemoryEvent:
    """One allocator event: time stamp (ns), signed size and original position."""

    t_ns: int
    nbytes: int
    index: int


@dataclass(frozen=True)
class GroundTruth:
    """Result of one measurement.

    ``peak_bytes`` is the maximum live bytes inside the window, ``peak_phase``
    the phase in which it was first reached (``None`` when the peak is the
    level already live when the window opened).
    """

    peak_bytes: int
    peak_phase: str | None
    baseline_bytes: int
    end_bytes: int
    phase_peaks: dict[str, int] = field(default_factory=dict)
    n_events: int = 0
    n_timestamp_ties: int = 0

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)


# --------------------------------------------------------------------------- model files


def load_model_file(path: str | Path) -> ModuleType:
    """Execute a model file as a fresh module (a new module object every call)."""
    path = Path(path).resolve()
    name = f"groundtruth_model_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load model file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    for required in ("build_model", "example_inputs"):
        if not callable(getattr(module, required, None)):
            raise AttributeError(f"{path} does not define {required}()")
    return module


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Call ``model`` the way the model-file format prescribes."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def default_loss(output: Any) -> torch.Tensor:
    """Loss used when a model file has no ``loss_fn``."""
    loss = getattr(output, "loss", None)
    if loss is not None:
        return loss
    if isinstance(output, (tuple, list)):
        value = output[0]
    elif getattr(output, "logits", None) is not None:
        value = output.logits
    elif isinstance(output, dict) and "logits" in output:
        value = output["logits"]
    else:
        value = output
    return value.sum()


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    """Build the optimizer named ``name`` over the trainable ``params``."""
    trainable = [p for p in params if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(trainable, lr=1e-3)
    if name == "adam":
        return torch.optim.Adam(trainable, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(trainable, lr=1e-2)
    if name == "sgd-momentum":
        return torch.optim.SGD(trainable, lr=1e-2, momentum=0.9)
    if name == "adagrad":
        return torch.optim.Adagrad(trainable, lr=1e-2)
    if name == "rmsprop":
        return torch.optim.RMSprop(trainable, lr=1e-2)
    if name == "adafactor":
        return torch.optim.Adafactor(trainable, lr=1e-2)
    if name == "none":
        return None
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A what-if configuration of the measured run (defaults: the plain fp32 run)."""

    precision: str = "fp32"
    checkpoint: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    grad_accum: int = 1
    transform: Callable[[nn.Module], nn.Module] | None = None
    loop: str = "tutorial"

    def validate(self, mode: str) -> None:
        """Reject option values that would silently measure something else."""
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        if isinstance(self.grad_accum, bool) or not isinstance(self.grad_accum, int) or self.grad_accum < 1:
            raise ValueError(f"grad_accum must be an int >= 1, got {self.grad_accum!r}")
        if self.grad_accum != 1 and mode != "train":
            raise ValueError("grad_accum only applies to mode='train'")
        if self.loop not in ("tutorial", "lean"):
            raise ValueError(f"unknown loop {self.loop!r}; expected tutorial or lean")
        if self.transform is not None and not callable(self.transform):
            raise ValueError("transform must be a callable model -> model")


def _names(value: str | Sequence[str] | None, option: str) -> tuple[str, ...]:
    """Normalise a sequence of module names (a lone string is refused: it is almost always a typo)."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise ValueError(f"{option} takes a sequence of module names, not the string {value!r}")
    return tuple(value)


def _lookup_modules(model: nn.Module, names: Iterable[str], option: str) -> list[nn.Module]:
    """Modules of ``model`` by qualified name; ValueError naming the unknown ones."""
    known = dict(model.named_modules())
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        sample = ", ".join(repr(n) for n in list(known)[:12])
        raise ValueError(f"{option}: unknown module name(s) {unknown}; model has e.g. {sample}")
    return [known[n] for n in names]


def cast_inputs(inputs: Any, dtype: torch.dtype) -> Any:
    """Cast every floating-point tensor in (nested) ``inputs`` to ``dtype``; others are kept."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype) if inputs.is_floating_point() else inputs
    if isinstance(inputs, dict):
        return {k: cast_inputs(v, dtype) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(cast_inputs(v, dtype) for v in inputs)
    if isinstance(inputs, list):
        return [cast_inputs(v, dtype) for v in inputs]
    return inputs


def apply_checkpoint(model: nn.Module, names: Iterable[str]) -> None:
    """Run each named module's forward through ``torch.utils.checkpoint`` (non-reentrant).

    The instance's ``forward`` attribute is replaced by a wrapper, so module
    hooks and ``__call__`` behave as before; only the saved activations change.
    """
    for module in _lookup_modules(model, names, "checkpoint"):
        original = module.forward

        @functools.wraps(original)
        def checkpointed(*args: Any, _forward: Callable[..., Any] = original, **kwargs: Any) -> Any:
            return torch.utils.checkpoint.checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        module.forward = checkpointed


def apply_frozen(model: nn.Module, names: Iterable[str]) -> None:
    """``requires_grad_(False)`` on every parameter of each named module."""
    for module in _lookup_modules(model, names, "frozen"):
        module.requires_grad_(False)


def prepare_model(model: nn.Module, inputs: Any, scenario: Scenario) -> tuple[nn.Module, Any]:
    """Apply a scenario's model-side changes (everything that happens before the window)."""
    if scenario.transform is not None:
        model = scenario.transform(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"transform returned {type(model).__name__}, not an nn.Module")
    if scenario.precision in ("bf16", "fp16"):
        dtype = _PRECISION_DTYPES[scenario.precision]
        model = model.to(dtype)
        inputs = cast_inputs(inputs, dtype)
    apply_frozen(model, scenario.frozen)
    apply_checkpoint(model, scenario.checkpoint)
    config = getattr(model, "config", None)
    if scenario.checkpoint and config is not None and getattr(config, "use_cache", False):
        # A transformers KV cache would be filled twice (forward and recomputation);
        # transformers' own gradient checkpointing switches it off the same way.
        config.use_cache = False
    return model, inputs


def _autocast(precision: str) -> Any:
    """The autocast context of a mixed-precision scenario (a disabled one otherwise)."""
    if precision.endswith("-mixed"):
        return torch.autocast(device_type="cpu", dtype=_PRECISION_DTYPES[precision])
    return torch.autocast(device_type="cpu", enabled=False)


# --------------------------------------------------------------------------- structured pruning

# Modules and functions that act on each unit/channel independently (or pool spatially), so a
# pruned unit can be removed on both sides of them.
_ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.Mish,
    nn.Hardswish,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
)
_POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
_ELEMENTWISE_FUNCTIONS: tuple[Any, ...] = (
    torch.relu,
    torch.nn.functional.relu,
    torch.nn.functional.gelu,
    torch.nn.functional.silu,
    torch.nn.functional.leaky_relu,
    torch.nn.functional.dropout,
    torch.tanh,
    torch.sigmoid,
)
_ELEMENTWISE_METHODS = frozenset({"relu", "relu_", "sigmoid", "tanh", "contiguous"})


@dataclass(frozen=True)
class _PrunePair:
    """A producer layer whose output units feed exactly one consumer layer."""

    producer: str
    consumer: str
    norms: tuple[str, ...]  # BatchNorm/LayerNorm modules on the path, pruned with the producer
    spatial: int | None  # flattened positions per channel (conv producer feeding a Linear)


def _only_input(node: torch.fx.Node, source: torch.fx.Node) -> bool:
    """Whether ``source`` is the single tensor input of ``node``, passed first."""
    return node.all_input_nodes == [source] and bool(node.args) and node.args[0] is source


def _is_full_flatten(node: torch.fx.Node, module: nn.Module | None) -> bool:
    """``nn.Flatten()``/``torch.flatten(x, 1)``/``x.flatten(1)`` over all non-batch dimensions."""
    if module is not None:
        return type(module) is nn.Flatten and module.start_dim == 1 and module.end_dim == -1
    if (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return bool(start == 1 and end == -1)
    return False


def _follow(
    node: torch.fx.Node,
    units: int,
    conv: bool,
    modules: dict[str, nn.Module],
    usable: Callable[[str], bool],
) -> _PrunePair | str:
    """Walk from a producer's output to the layer consuming its units, or say why that fails."""
    producer = str(node.target)
    norms: list[str] = []
    spatial: int | None = None
    flattened = False
    cur = node
    while True:
        users = list(cur.users)
        if len(users) != 1:
            return f"its output is used by {len(users)} nodes"
        nxt = users[0]
        if not _only_input(nxt, cur):
            return f"{nxt.name} mixes its output with other values"
        mod: Any = modules.get(str(nxt.target)) if nxt.op == "call_module" else None
        stateful = mod is not None and (
            next(mod.parameters(), None) is not None or next(mod.buffers(), None) is not None
        )
        if nxt.op == "call_module" and (mod is None or (stateful and not usable(str(nxt.target)))):
            return f"{nxt.target} is called more than once or shares parameters"
        kind = type(mod)
        if kind is nn.Linear:
            assert isinstance(mod, nn.Linear)
            if conv and not flattened:
                return f"{nxt.target} consumes an unflattened feature map"
            if flattened:
                if mod.in_features % units:
                    return f"{nxt.target} in_features {mod.in_features} is not a multiple of {units}"
                spatial = mod.in_features // units
            elif mod.in_features != units:
                return f"{nxt.target} in_features {mod.in_features} != {units}"
            return _PrunePair(producer, str(nxt.target), tuple(norms), spatial)
        if kind is nn.Conv2d and conv and not flattened:
            assert isinstance(mod, nn.Conv2d)
            if mod.groups != 1 or mod.in_channels != units:
                return f"{nxt.target} is grouped or has {mod.in_channels} != {units} in_channels"
            return _PrunePair(producer, str(nxt.target), tuple(norms), None)
        if mod is not None and isinstance(mod, _ELEMENTWISE_MODULES) and kind in _ELEMENTWISE_MODULES:
            pass
        elif mod is not None and kind in _POOL_MODULES and conv and not flattened:
            if getattr(mod, "return_indices", False):
                return f"{nxt.target} returns indices"
        elif kind is nn.BatchNorm2d and conv and not flattened and mod.num_features == units:
            norms.append(str(nxt.target))
        elif kind is nn.BatchNorm1d and not conv and mod.num_features == units:
            norms.append(str(nxt.target))
        elif kind is nn.LayerNorm and not conv and tuple(mod.normalized_shape) == (units,):
            norms.append(str(nxt.target))
        elif conv and not flattened and _is_full_flatten(nxt, mod):
            flattened = True
        elif nxt.op == "call_function" and nxt.target in _ELEMENTWISE_FUNCTIONS:
            pass
        elif nxt.op == "call_method" and nxt.target in _ELEMENTWISE_METHODS:
            pass
        else:
            what = f"{kind.__name__} {nxt.target}" if mod is not None else f"{nxt.op} {nxt.target}"
            return f"its output reaches {what}, which the pruner does not pass through"
        cur = nxt


def _prune_plan(model: nn.Module) -> tuple[list[_PrunePair], dict[str, str]]:
    """Prunable producer/consumer pairs of ``model`` and, for the other layers, why not."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # any tracing failure means "cannot analyse"
        raise ValueError(
            f"prune_structured: cannot trace {type(model).__name__} with torch.fx ({exc})"
        ) from exc
    modules = dict(model.named_modules())
    owners: dict[int, set[str]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        owners.setdefault(id(mod), set()).add(name)
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), set()).add(name)
    calls: dict[str, int] = {}
    attr_users: set[str] = set()
    for n in graph.nodes:
        if n.op == "call_module":
            calls[str(n.target)] = calls.get(str(n.target), 0) + 1
        elif n.op == "get_attr":
            attr_users.add(str(n.target).rpartition(".")[0])

    def usable(name: str) -> bool:
        mod = modules.get(name)
        if mod is None or calls.get(name, 0) != 1 or name in attr_users or len(owners[id(mod)]) != 1:
            return False
        return all(len(owners[id(p)]) == 1 for p in mod.parameters(recurse=False))

    pairs: list[_PrunePair] = []
    skipped: dict[str, str] = {}
    for n in graph.nodes:
        if n.op != "call_module":
            continue
        name = str(n.target)
        mod = modules.get(name)
        if type(mod) is nn.Linear:
            units, conv = mod.out_features, False
        elif type(mod) is nn.Conv2d:
            if mod.groups != 1:
                skipped[name] = "grouped convolution"
                continue
            units, conv = mod.out_channels, True
        else:
            continue
        if not usable(name):
            skipped[name] = "called more than once or shares parameters"
            continue
        found = _follow(n, units, conv, modules, usable)
        if isinstance(found, str):
            skipped[name] = found
        else:
            pairs.append(found)
    return pairs, skipped


def prunable_layers(model: nn.Module) -> dict[str, str]:
    """Producer -> consumer module names that :func:`prune_structured` would shrink."""
    pairs, _ = _prune_plan(model)
    return {p.producer: p.consumer for p in pairs}


def _kept_units(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Indices (ascending) of the ``round(n * (1 - sparsity))`` rows with the largest L1 norm."""
    n = weight.shape[0]
    keep = max(1, round(n * (1 - sparsity)))
    norms = weight.detach().float().abs().reshape(n, -1).sum(dim=1)
    order = torch.argsort(norms, descending=True, stable=True)[:keep]
    return order.sort().values


def _select(t: torch.Tensor | None, dim: int, index: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` restricted to ``index`` along ``dim`` (unchanged without an index)."""
    if t is None or index is None:
        return t
    return t.detach().index_select(dim, index.to(t.device))


def _copy_into(new: nn.Module, old: nn.Module, tensors: dict[str, torch.Tensor | None]) -> nn.Module:
    """Copy pruned tensors into a freshly built module; keep train mode and requires_grad."""
    with torch.no_grad():
        for name, value in tensors.items():
            target = getattr(new, name)
            if target is None or value is None:
                continue
            target.copy_(value)
            if isinstance(target, nn.Parameter):
                target.requires_grad_(getattr(old, name).requires_grad)
    return new.train(old.training)


def _rebuilt(mod: nn.Module, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> nn.Module:
    """A smaller copy of a Linear/Conv2d/BatchNorm/LayerNorm keeping the given units."""
    ref: torch.Tensor | None = next(iter(mod.parameters()), None)
    if ref is None:
        ref = next(iter(mod.buffers()))
    factory: dict[str, Any] = {"device": ref.device, "dtype": ref.dtype}
    if isinstance(mod, (nn.Linear, nn.Conv2d)):
        weight = _select(_select(mod.weight, 0, out_keep), 1, in_keep)
        assert weight is not None
        tensors = {"weight": weight, "bias": _select(mod.bias, 0, out_keep)}
        has_bias = mod.bias is not None
        if isinstance(mod, nn.Linear):
            new: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, **factory)
        else:
            new = nn.Conv2d(
                weight.shape[1],
                weight.shape[0],
                mod.kernel_size,  # type: ignore[arg-type]
                stride=mod.stride,  # type: ignore[arg-type]
                padding=mod.padding,  # type: ignore[arg-type]
                dilation=mod.dilation,  # type: ignore[arg-type]
                groups=1,
                bias=has_bias,
                padding_mode=mod.padding_mode,
                **factory,
            )
        return _copy_into(new, mod, tensors)
    assert out_keep is not None
    k = int(out_keep.numel())
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = type(mod)(
            k,
            eps=mod.eps,
            momentum=mod.momentum,
            affine=mod.affine,
            track_running_stats=mod.track_running_stats,
            **factory,
        )
        tensors = {
            "weight": _select(mod.weight, 0, out_keep),
            "bias": _select(mod.bias, 0, out_keep),
            "running_mean": _select(mod.running_mean, 0, out_keep),
            "running_var": _select(mod.running_var, 0, out_keep),
            "num_batches_tracked": mod.num_batches_tracked,
        }
        return _copy_into(new, mod, tensors)
    if isinstance(mod, nn.LayerNorm):
        new = nn.LayerNorm(
            k, eps=mod.eps, elementwise_affine=mod.elementwise_affine, bias=mod.bias is not None, **factory
        )
        tensors = {"weight": _select(mod.weight, 0, out_keep), "bias": _select(mod.bias, 0, out_keep)}
        return _copy_into(new, mod, tensors)
    raise ValueError(f"prune_structured: cannot rebuild {type(mod).__name__}")


def prune_structured(model: nn.Module, sparsity: float) -> nn.Module:
    """Really remove the fraction ``sparsity`` of hidden units/channels of ``model`` (no masks).

    Every ``nn.Linear``/``nn.Conv2d`` (groups=1) whose output reaches exactly one
    other Linear/Conv2d through per-unit layers only (activations, dropout,
    pooling, the matching BatchNorm1d/2d or LayerNorm, and for a conv feeding a
    Linear a full ``flatten``) keeps its ``max(1, round(n * (1 - sparsity)))``
    output units with the largest L1 weight-row norm; that layer, the norms on
    the path and the consumer's inputs (``in_features`` shrinks by
    channels x spatial size after a flatten) are rebuilt smaller, keeping the
    parameters' values, dtype, device and ``requires_grad``.  Layers feeding the
    model output, a residual add or anything else are left intact, so the
    model's input and output sizes never change.  The data flow is read with
    ``torch.fx``; the model itself keeps its classes and ``forward``.

    Modifies ``model`` in place and returns it.  ValueError for a sparsity
    outside [0, 1), a model torch.fx cannot trace, or a model with nothing prunable.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"prune_structured: sparsity must be in [0, 1), got {sparsity!r}")
    pairs, skipped = _prune_plan(model)
    if not pairs:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no nn.Linear/nn.Conv2d layers"
        raise ValueError(
            f"prune_structured: nothing in {type(model).__name__} can be pruned structurally ({reasons})"
        )
    modules = dict(model.named_modules())
    out_keep: dict[str, torch.Tensor] = {}
    in_keep: dict[str, torch.Tensor] = {}
    for pair in pairs:
        producer: Any = modules[pair.producer]
        keep = _kept_units(producer.weight, sparsity)
        out_keep[pair.producer] = keep
        for norm in pair.norms:
            out_keep[norm] = keep
        if pair.spatial is not None:
            keep = (keep[:, None] * pair.spatial + torch.arange(pair.spatial)).reshape(-1)
        in_keep[pair.consumer] = keep
    for name in dict.fromkeys([*out_keep, *in_keep]):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, attr, _rebuilt(modules[name], out_keep.get(name), in_keep.get(name)))
    return model


# --------------------------------------------------------------------------- measured loop


def _run_window(
    module: ModuleType,
    batch_size: int,
    mode: str,
    optimizer: str,
    steps: int,
    scenario: Scenario | None = None,
) -> None:
    """Build the model and run the measured steps (called inside the profiler)."""
    scenario = scenario if scenario is not None else Scenario()
    torch.manual_seed(0)
    model = module.build_model()
    inputs = module.example_inputs(batch_size)
    model, inputs = prepare_model(model, inputs, scenario)
    if mode == "train" and not any(p.requires_grad for p in model.parameters()):
        raise ValueError("no trainable parameter left (every module is frozen)")
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = getattr(module, "loss_fn", None)
    gc.collect()
    with record_function(_WINDOW):
        if mode == "train":
            model.train()
            opt = make_optimizer(optimizer, model.parameters())
            for _ in range(steps):
                for _ in range(scenario.grad_accum):
                    with record_function(_PREFIX + "forward"), _autocast(scenario.precision):
                        out = call_model(model, inputs)
                        loss = loss_fn(out, inputs) if loss_fn is not None else default_loss(out)
                    with record_function(_PREFIX + "backward"):
                        loss.backward()
                    if scenario.loop == "lean":
                        del out, loss
                with record_function(_PREFIX + "optimizer"):
                    if opt is not None:
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                    else:
                        for p in model.parameters():
                            p.grad = None
            del opt
        else:
            model.eval()
            with torch.no_grad():
                for _ in range(steps):
                    with record_function(_PREFIX + "forward"), _autocast(scenario.precision):
                        out = call_model(model, inputs)
                    del out
    del model, inputs


def _split_events(events: list[Any]) -> tuple[dict[str, list[tuple[int, int]]], list[MemoryEvent]]:
    """One pass over raw profiler events: our named ranges and the host allocator events.

    Ranges map name -> [(start_ns, end_ns)].  Memory events are sorted by time
    stamp; equal time stamps keep the order in which the profiler reported them.
    """
    ranges: dict[str, list[tuple[int, int]]] = {}
    mem: list[MemoryEvent] = []
    for i, e in enumerate(events):
        name = e.name()
        if name == _MEMORY_EVENT:
            if str(e.device_type()).rsplit(".", 1)[-1].upper() in _HOST_DEVICE_TYPES:
                mem.append(MemoryEvent(t_ns=e.start_ns(), nbytes=int(e.nbytes()), index=i))
        elif name.startswith(_PREFIX):
            ranges.setdefault(name, []).append((e.start_ns(), e.end_ns()))
    mem.sort(key=lambda m: (m.t_ns, m.index))
    return ranges, mem


def _phase_at(t_ns: int, phases: dict[str, list[tuple[int, int]]]) -> str | None:
    """Name of the phase range containing ``t_ns``, if any."""
    for name, spans in phases.items():
        if any(s <= t_ns <= e for s, e in spans):
            return name
    return None


def analyse(events: list[Any]) -> GroundTruth:
    """Rebuild the live-bytes curve from raw profiler events and find the window peak."""
    ranges, mem = _split_events(events)
    windows = ranges.get(_WINDOW, [])
    if len(windows) != 1:
        raise RuntimeError(f"expected exactly one measured window, found {len(windows)}")
    w_start, w_end = windows[0]
    phases = {p: ranges.get(_PREFIX + p, []) for p in PHASES}
    ties = sum(1 for a, b in zip(mem, mem[1:], strict=False) if a.t_ns == b.t_ns)

    live = 0
    baseline: int | None = None
    peak = 0
    peak_t: int | None = None
    phase_peaks: dict[str, int] = {}
    for ev in mem:
        if ev.t_ns > w_end:
            break
        if baseline is None and ev.t_ns >= w_start:
            baseline = peak = live
        live += ev.nbytes
        if baseline is None:
            continue
        if live > peak:
            peak, peak_t = live, ev.t_ns
        if ev.nbytes > 0:
            phase = _phase_at(ev.t_ns, phases)
            if phase is not None and live > phase_peaks.get(phase, -1):
                phase_peaks[phase] = live
    if baseline is None:  # no allocator event inside the window
        baseline = peak = live
    peak_phase = _phase_at(peak_t, phases) if peak_t is not None else None
    return GroundTruth(
        peak_bytes=peak,
        peak_phase=peak_phase,
        baseline_bytes=baseline,
        end_bytes=live,
        phase_peaks=phase_peaks,
        n_events=len(mem),
        n_timestamp_ties=ties,
    )


def measure_peak(
    path: str | Path,
    batch_size: int,
    mode: str = "train",
    optimizer: str = "adamw",
    steps: int = 2,
    *,
    precision: str = "fp32",
    checkpoint: Sequence[str] | None = None,
    frozen: Sequence[str] | None = None,
    grad_accum: int = 1,
    transform: Callable[[nn.Module], nn.Module] | None = None,
    loop: str = "tutorial",
) -> GroundTruth:
    """Measure the live-bytes peak of ``steps`` training/inference steps of a model file.

    Keyword-only options describe a what-if scenario (see the module docstring):
    ``precision`` one of :data:`PRECISIONS`; ``checkpoint`` / ``frozen`` module
    qualified names (``model.named_modules()``) to checkpoint / freeze;
    ``grad_accum`` micro-batches of ``batch_size`` per optimizer step;
    ``transform`` a ``model -> model`` callable applied right after
    ``build_model()``, before the window opens (so the untransformed model's
    memory is freed and never counts); ``loop`` ``tutorial`` or ``lean``.
    Unknown names raise ValueError.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    scenario = Scenario(
        precision=precision,
        checkpoint=_names(checkpoint, "checkpoint"),
        frozen=_names(frozen, "frozen"),
        grad_accum=grad_accum,
        transform=transform,
        loop=loop,
    )
    scenario.validate(mode)
    module = load_model_file(path)
    gc.collect()
    # Objects that survived the collection cannot be garbage created by the
    # model; freezing them makes the collection inside the window cheap
    # (a full collection costs ~0.2 s once transformers is imported).
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            _run_window(module, batch_size, mode, optimizer, steps, scenario)
    finally:
        if freeze:
            gc.unfreeze()
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None:
        raise RuntimeError("the profiler returned no results")
    return analyse(list(results.events()))


def measure_generate_peak(
    path: str | Path, batch_size: int, new_tokens: int, seq_len: int | None = None
) -> GroundTruth:
    """Measure the live-bytes peak of one greedy ``model.generate`` call of a model file::

    model = build_model(); inputs = example_inputs(batch_size[, seq_len]) without "labels"
    model.eval()
    # --- window starts ---
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False)
    del out
    # --- window ends ---
    """
    module = load_model_file(path)
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        torch.manual_seed(0)
        model = module.build_model()
        if seq_len is None:
            inputs = module.example_inputs(batch_size)
        else:
            inputs = module.example_inputs(batch_size, seq_len=seq_len)
        if isinstance(inputs, dict):
            inputs = {k: v for k, v in inputs.items() if k != "labels"}
        else:
            inputs = {"input_ids": inputs}
        model.eval()
        gc.collect()
        with record_function(_WINDOW), torch.no_grad():
            out = model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
            )
            if out.shape[-1] != inputs["input_ids"].shape[-1] + new_tokens:
                raise RuntimeError(f"generate returned {out.shape[-1]} tokens")
            del out
        del model, inputs
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None:
        raise RuntimeError("the profiler returned no results")
    return analyse(list(results.events()))


def main(argv: list[str] | None = None) -> int:
    """Print the ground truth of one model file (under an optional scenario) as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_file")
    parser.add_argument("--batch-size", type=int, default=2, help="(micro-)batch size")
    parser.add_argument("--mode", choices=MODES, default="train")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME", help="modules to checkpoint")
    parser.add_argument("--frozen", nargs="+", default=[], metavar="NAME", help="modules to freeze")
    parser.add_argument("--grad-accum", type=int, default=1, metavar="K", help="micro-batches per step")
    parser.add_argument(
        "--prune", type=float, default=None, metavar="SPARSITY", help="apply prune_structured first"
    )
    parser.add_argument("--loop", choices=("tutorial", "lean"), default="tutorial")
    args = parser.parse_args(argv)
    sparsity = args.prune
    truth = measure_peak(
        args.model_file,
        args.batch_size,
        args.mode,
        args.optimizer,
        args.steps,
        precision=args.precision,
        checkpoint=args.checkpoint,
        frozen=args.frozen,
        grad_accum=args.grad_accum,
        transform=None if sparsity is None else (lambda m: prune_structured(m, sparsity)),
        loop=args.loop,
    )
    print(truth.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

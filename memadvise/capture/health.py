"""Numerical health (``--health``): cheap reductions during the first traced step, and precision advice.

During the first step, every module's output gets one reduction (its largest magnitude, which is NaN
or inf when the output holds one), and after the first backward every module's own gradients get a few
(norm, largest magnitude, and the share of nonzero values below fp16's smallest normal and subnormal,
counted on up to 4096 evenly spaced values of each gradient).
The reductions run under a profiler range that the event walk skips (``HEALTH_RANGE``), under
``no_grad``, and their results stay on the device until the trace ends, so they neither appear in the
measured memory nor force a device synchronisation per module. The values are read once, afterwards.

From the figures come flags (fp16 overflow, gradient underflow, the first module producing NaN/Inf,
gradient norms that vanish or explode across depth) and advice strings for the precision choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from memadvise.capture.events import HEALTH_RANGE
from memadvise.capture.training import iter_tensors
from memadvise.model.profile import Health, HealthFlag, LayerHealth

FP16_MAX = 65504.0
BF16_MAX = float(torch.finfo(torch.bfloat16).max)
FP16_MIN_NORMAL = 2.0**-14  # 6.1e-5
FP16_MIN_SUBNORMAL = 2.0**-24  # 6.0e-8
UNDERFLOW_SHARE = 0.05  # flag a module when this share of its nonzero gradients would underflow
SAMPLE = 4096  # underflow shares are counted on at most this many evenly spaced values per gradient
DEPTH_RATIO = 1e3  # "orders of magnitude": first vs last layer gradient norm


@contextmanager
def excluded() -> Iterator[None]:
    """Run reductions outside the measured memory: no autograd, inside the range the event walk skips."""
    with torch.no_grad(), torch.autograd.profiler.record_function(HEALTH_RANGE):
        yield


@dataclass
class HealthMonitor:
    """Collects the reductions while the tracer runs; :meth:`report` reads them once, at the end."""

    step: int = 0
    _acts: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    _grad_parts: tuple[list[str], list[int], Any, Any, list[torch.Tensor]] | None = None
    _done_grads: bool = False

    def _grad_stats(self) -> dict[str, list[float]]:
        """name → [norm, max |g|, below normal, below subnormal, nonzero] (read after the trace)."""
        if self._grad_parts is None:
            return {}
        names, owner, norms, maxima, counts = self._grad_parts
        self._grad_parts = None
        norm_list = torch.stack([n.float() for n in norms]).tolist()
        max_list = torch.stack([m.float() for m in maxima]).tolist()
        below_normal, below_sub, zeros, sizes = (c.tolist() for c in counts)
        sumsq = [0.0] * len(names)
        amax = [0.0] * len(names)
        for k, n, m in zip(owner, norm_list, max_list, strict=True):
            sumsq[k] += n * n
            amax[k] = m if math.isnan(m) or math.isnan(amax[k]) else max(amax[k], m)
        return {
            name: [
                math.sqrt(sumsq[k]) if sumsq[k] >= 0 else sumsq[k],
                amax[k],
                below_normal[k] - zeros[k],
                below_sub[k] - zeros[k],
                sizes[k] - zeros[k],
            ]
            for k, name in enumerate(names)
        }

    def activation(self, name: str, step: int, output: Any) -> None:
        """Largest magnitude of a module's floating-point outputs (first step only)."""
        if step != self.step:
            return
        tensors = [t for t in iter_tensors(output) if t.is_floating_point() and t.numel()]
        if not tensors:
            return
        with excluded():
            values = [torch.linalg.vector_norm(t.detach(), ord=math.inf) for t in tensors]
            value = values[0] if len(values) == 1 else torch.stack([v.float() for v in values]).max()
        self._acts.append((name, value))

    def gradients(self, step: int, model: torch.nn.Module) -> None:
        """Norm, largest magnitude and underflow counts of each module's own gradients (first backward).

        A handful of operators for the whole model (foreach norms, one concatenation, segment sums),
        whatever its number of modules.
        """
        if step != self.step or self._done_grads:
            return
        self._done_grads = True
        seen: set[int] = set()  # a tied parameter counts for the first module that registers it
        names: list[str] = []
        grads: list[torch.Tensor] = []
        owner: list[int] = []
        for name, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
            seen.update(id(p) for p in own)
            mine = [p.grad.detach() for p in own if p.grad is not None and p.grad.is_floating_point()]
            mine = [g for g in mine if g.numel()]
            if mine:
                names.append(name)
                grads.extend(mine)
                owner.extend([len(names) - 1] * len(mine))
        if not grads:
            return
        with excluded():
            norms = torch._foreach_norm(grads, 2)
            maxima = torch._foreach_norm(grads, math.inf)
            lengths = torch.zeros(len(names), dtype=torch.int64)
            for g, k in zip(grads, owner, strict=True):
                lengths[k] += min(g.numel(), SAMPLE)
            lengths = lengths.to(grads[0].device)
            samples = [_sample(g) for g in grads]
            a = torch.cat([g.float() for g in samples]).abs_()
            counts = [
                torch.segment_reduce(mask.float(), "sum", lengths=lengths)
                for mask in (a < FP16_MIN_NORMAL, a < FP16_MIN_SUBNORMAL, a == 0)
            ]
            counts.append(lengths)
        self._grad_parts = (names, owner, norms, maxima, counts)

    def report(self) -> Health:
        """Read the reductions (one transfer) and turn them into layers, flags and advice."""
        act_values = torch.stack([v.float() for _, v in self._acts]).tolist() if self._acts else []
        grad_values = self._grad_stats()
        act_names = [n for n, _ in self._acts]
        order: list[str] = []
        act_max: dict[str, float] = {}
        nonfinite: dict[str, str] = {}
        first_bad: tuple[str, str] | None = None
        for name, value in zip(act_names, act_values, strict=True):
            if name not in act_max:
                order.append(name)
                act_max[name] = 0.0
            if math.isnan(value) or math.isinf(value):
                kind = "nan" if math.isnan(value) else "inf"
                nonfinite.setdefault(name, kind)
                if first_bad is None:
                    first_bad = (name, kind)
            else:
                act_max[name] = max(act_max[name], value)
        grads = grad_values
        self._acts.clear()
        names = order + [n for n in grads if n not in act_max]
        layers = tuple(
            _layer(name, act_max.get(name), nonfinite.get(name, ""), grads.get(name)) for name in names
        )
        rank = {name: i for i, name in enumerate(order)}
        bad_grads = sorted(
            (n for n, stats in grads.items() if not math.isfinite(stats[0])), key=lambda n: rank.get(n, -1)
        )
        if first_bad is None and bad_grads:  # backward runs last layer first
            first_bad = (bad_grads[-1], "nan or inf in the gradients")
        flags = _flags(layers, first_bad, order)
        return Health(layers=layers, flags=flags, advice=advice(flags))


def _sample(g: torch.Tensor) -> torch.Tensor:
    """At most ``SAMPLE`` evenly spaced values of ``g`` (a strided view, so nothing is copied)."""
    flat = g.reshape(-1)
    n = flat.numel()
    if n <= SAMPLE:
        return flat
    return flat[:: n // SAMPLE][:SAMPLE]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _layer(name: str, act: float | None, bad: str, stats: list[float] | None) -> LayerHealth:
    if stats is None:
        return LayerHealth(name=name, max_abs_activation=act if not bad else None, nonfinite=bad)
    norm, amax, below_normal, below_sub, nonzero = stats
    return LayerHealth(
        name=name,
        max_abs_activation=act if not bad else None,
        nonfinite=bad,
        grad_norm=_finite(norm),
        max_abs_grad=_finite(amax),
        grad_below_fp16_normal=below_normal / nonzero if nonzero else 0.0,
        grad_below_fp16_subnormal=below_sub / nonzero if nonzero else 0.0,
    )


def _flags(
    layers: tuple[LayerHealth, ...], first_bad: tuple[str, str] | None, order: list[str]
) -> tuple[HealthFlag, ...]:
    flags: list[HealthFlag] = []
    if first_bad is not None:
        name, kind = first_bad
        detail = kind if " " in kind else f"{kind} first produced in the forward pass"
        flags.append(HealthFlag("nonfinite", name, detail=detail))
    for layer in layers:
        value = layer.max_abs_activation
        if value is not None and value > FP16_MAX:
            flags.append(
                HealthFlag("overflow", layer.name, "float16", value, f"max |activation| {value:.3g} > 65504")
            )
        if value is not None and value > BF16_MAX:
            flags.append(
                HealthFlag("overflow", layer.name, "bfloat16", value, f"max |activation| {value:.3g}")
            )
        if layer.grad_below_fp16_subnormal >= UNDERFLOW_SHARE:
            share = layer.grad_below_fp16_subnormal
            flags.append(
                HealthFlag(
                    "grad_underflow", layer.name, "float16", share, f"{share:.0%} of gradients below 6.0e-8"
                )
            )
        elif layer.grad_below_fp16_normal >= UNDERFLOW_SHARE:
            share = layer.grad_below_fp16_normal
            flags.append(
                HealthFlag(
                    "grad_subnormal", layer.name, "float16", share, f"{share:.0%} of gradients below 6.1e-5"
                )
            )
    flags.extend(_depth_flags(layers, order))
    return tuple(flags)


def _depth_flags(layers: tuple[LayerHealth, ...], order: list[str]) -> list[HealthFlag]:
    """Gradient norms of the first and last layers with gradients, in forward order."""
    rank = {name: i for i, name in enumerate(order)}
    norms = sorted(
        ((rank[layer.name], layer) for layer in layers if layer.grad_norm and layer.name in rank),
        key=lambda pair: pair[0],
    )
    if len(norms) < 3:
        return []
    first, last = norms[0][1], norms[-1][1]
    assert first.grad_norm is not None and last.grad_norm is not None
    ratio = first.grad_norm / last.grad_norm
    detail = f"gradient norm {first.grad_norm:.3g} in `{first.name}` vs {last.grad_norm:.3g} in `{last.name}`"
    if ratio <= 1 / DEPTH_RATIO:
        return [HealthFlag("vanishing_gradients", first.name, value=ratio, detail=detail)]
    if ratio >= DEPTH_RATIO:
        return [HealthFlag("exploding_gradients", first.name, value=ratio, detail=detail)]
    return []


def advice(flags: tuple[HealthFlag, ...]) -> tuple[str, ...]:
    """One sentence per problem, most serious first; the precision choice follows from them."""
    lines: list[str] = []
    for flag in flags:
        if flag.kind == "nonfinite":
            lines.append(
                f"`{flag.module}` produces NaN/Inf ({flag.detail}); fix it first: no precision choice helps"
            )
    overflow = [f for f in flags if f.kind == "overflow" and f.dtype == "float16"]
    if overflow:
        worst = max(overflow, key=lambda f: f.value)
        lines.append(
            f"fp16 would overflow in `{overflow[0].module}` (max |activation| {overflow[0].value:.3g} > 65504"
            + (f"; largest {worst.value:.3g} in `{worst.module}`" if worst is not overflow[0] else "")
            + "); prefer bf16, or keep that module in fp32 (loss scaling does not help activations)"
        )
    under = [f for f in flags if f.kind in ("grad_underflow", "grad_subnormal")]
    if under:
        worst = max(under, key=lambda f: f.value)
        lines.append(
            f"fp16 gradients would underflow in {len(under)} module(s), worst `{worst.module}` "
            f"({worst.detail}); use loss scaling with fp16, or prefer bf16"
        )
    for flag in flags:
        if flag.kind == "vanishing_gradients":
            lines.append(
                f"gradients vanish across depth ({flag.detail}); low precision will lose the early layers"
            )
        elif flag.kind == "exploding_gradients":
            lines.append(f"gradients grow across depth ({flag.detail}); consider gradient clipping")
    if not lines:
        lines.append(
            "no numerical problem found: fp16 (with loss scaling) and bf16 both fit the measured ranges"
        )
    return tuple(lines)

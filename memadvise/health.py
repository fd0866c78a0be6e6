"""Numerical health (``--health``): cheap reductions during the first traced step, and precision advice.

During the first step, every module's output gets one reduction (its largest magnitude, which is NaN
or inf when the output holds one), and after the first backward every module's own gradients get a few
(norm, largest magnitude, how many nonzero values fall below fp16's smallest normal and subnormal).
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

from memadvise.allocator_events import HEALTH_RANGE
from memadvise.profile import Health, HealthFlag, LayerHealth
from memadvise.training import iter_tensors

FP16_MAX = 65504.0
BF16_MAX = float(torch.finfo(torch.bfloat16).max)
FP16_MIN_NORMAL = 2.0**-14  # 6.1e-5
FP16_MIN_SUBNORMAL = 2.0**-24  # 6.0e-8
UNDERFLOW_SHARE = 0.05  # flag a module when this share of its nonzero gradients would underflow
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
    _grads: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    _done_grads: bool = False

    def activation(self, name: str, step: int, output: Any) -> None:
        """Largest magnitude of a module's floating-point outputs (first step only)."""
        if step != self.step:
            return
        tensors = [t for t in iter_tensors(output) if t.is_floating_point() and t.numel()]
        if not tensors:
            return
        with excluded():
            values = [torch.linalg.vector_norm(t.detach(), ord=math.inf).float() for t in tensors]
            value = values[0] if len(values) == 1 else torch.stack(values).max()
        self._acts.append((name, value))

    def gradients(self, step: int, model: torch.nn.Module) -> None:
        """Norm, largest magnitude and underflow counts of each module's own gradients (first backward)."""
        if step != self.step or self._done_grads:
            return
        self._done_grads = True
        seen: set[int] = set()  # a tied parameter counts for the first module that registers it
        with excluded():
            for name, module in model.named_modules():
                own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
                seen.update(id(p) for p in own)
                grads = [p.grad for p in own if p.grad is not None]
                grads = [g for g in grads if g.is_floating_point() and g.numel()]
                if not grads:
                    continue
                flat = (
                    grads[0].detach().reshape(-1)
                    if len(grads) == 1
                    else torch.cat([g.detach().reshape(-1) for g in grads])
                )
                a = flat.abs().float()
                zeros = a.numel() - torch.count_nonzero(a)
                stats = torch.stack(
                    [
                        torch.linalg.vector_norm(a),
                        a.max(),
                        (torch.count_nonzero(a < FP16_MIN_NORMAL) - zeros).float(),
                        (torch.count_nonzero(a < FP16_MIN_SUBNORMAL) - zeros).float(),
                        (a.numel() - zeros).float(),
                    ]
                )
                self._grads.append((name, stats))

    def report(self) -> Health:
        """Read the reductions (one transfer) and turn them into layers, flags and advice."""
        act_values = torch.stack([v for _, v in self._acts]).tolist() if self._acts else []
        grad_values = torch.stack([v for _, v in self._grads]).tolist() if self._grads else []
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
        grads = {name: stats for (name, _), stats in zip(self._grads, grad_values, strict=True)}
        self._acts.clear()
        self._grads.clear()
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

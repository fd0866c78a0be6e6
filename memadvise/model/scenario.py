"""What-if scenarios: small frozen specs of what to change about a profiled run.

A field left at ``None`` (or empty) keeps what the profile traced. Scenarios are validated here, at
the boundary, so the analyzer can assume they make sense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from memadvise.errors import UsageError
from memadvise.model.enums import OptimizerName

AUTO = "auto"


class Strategy(str, Enum):
    """How model states are spread over the data-parallel GPUs."""

    DDP = "ddp"
    ZERO1 = "zero1"
    ZERO2 = "zero2"
    ZERO3 = "zero3"
    FSDP = "fsdp"


def parse_strategy(value: str | Strategy) -> Strategy:
    """``"zero-3"``, ``"ZeRO3"``, ``"fsdp"`` … as a :class:`Strategy`; anything else is a UsageError."""
    if isinstance(value, Strategy):
        return value
    key = str(value).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    try:
        return Strategy(key)
    except ValueError:
        choices = ", ".join(s.value for s in Strategy)
        raise UsageError(f"unknown sharding strategy {value!r}; choose one of {choices}") from None


class Offload(str, Enum):
    """What moves to host memory (ZeRO-Offload / FSDP ``CPUOffload``): the optimizer state and its step,
    or that and the parameters and gradients too."""

    OPTIMIZER = "optimizer"
    OPTIMIZER_PARAMS = "optimizer+params"


def parse_offload(text: str | None) -> Offload | None:
    """``--offload`` as an :class:`Offload` (``None``/``none`` is no offload); one clear error otherwise."""
    if text is None or text.strip().lower() == "none":
        return None
    try:
        return Offload(text.strip().lower())
    except ValueError:
        choices = ", ".join(o.value for o in Offload)
        raise UsageError(f"unknown --offload {text!r}; use one of {choices} (or none)") from None


class Precision(str, Enum):
    """Training precisions (mixed: autocast with fp32 master weights) and weight-only inference ones."""

    FP32 = "fp32"
    BF16_MIXED = "bf16-mixed"
    FP16_MIXED = "fp16-mixed"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"


def parse_precision(text: str | None) -> Precision | None:
    """``--precision`` as a :class:`Precision` (``None`` stays ``None``); one clear error otherwise."""
    if text is None:
        return None
    try:
        return Precision(text)
    except ValueError:
        choices = ", ".join(p.value for p in Precision)
        raise UsageError(f"unknown precision {text!r}; use one of {choices}") from None


class PruneKind(str, Enum):
    """Unstructured: single weights are zeroed; structured: whole hidden units/channels go."""

    UNSTRUCTURED = "unstructured"
    STRUCTURED = "structured"


@dataclass(frozen=True)
class Pruning:
    sparsity: float
    kind: PruneKind = PruneKind.UNSTRUCTURED

    @classmethod
    def parse(cls, text: str) -> Pruning:
        """``0.5``, ``50%``, ``0.5:structured``."""
        value, _, kind = text.partition(":")
        try:
            sparsity = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise UsageError(
                f"--prune takes SPARSITY[:unstructured|:structured], e.g. 0.5:structured, not {text!r}"
            ) from None
        if not 0 <= sparsity < 1:
            raise UsageError(f"pruning sparsity must be at least 0 and below 1 (or 100%), not {value}")
        try:
            prune_kind = PruneKind(kind or PruneKind.UNSTRUCTURED.value)
        except ValueError:
            raise UsageError(f"unknown pruning kind {kind!r}; use unstructured or structured") from None
        return cls(sparsity=sparsity, kind=prune_kind)


@dataclass(frozen=True)
class Scenario:
    """What to change. ``checkpoint`` is a tuple of module names, or ``("auto",)`` to let memadvise choose.

    ``batch_size`` is the micro-batch (samples per forward pass, per GPU); with ``grad_accum = K`` the
    effective batch is ``K * batch_size * gpus``. ``frozen`` names modules whose parameters are not
    trained. ``gpus`` and ``strategy`` (default DDP) give one GPU's share of data-parallel training.
    """

    batch_size: int | None = None
    precision: Precision | None = None
    checkpoint: tuple[str, ...] = ()
    prune: Pruning | None = None
    optimizer: OptimizerName | None = None
    grad_accum: int = 1
    frozen: tuple[str, ...] = ()
    gpus: int = 1
    strategy: Strategy | None = None
    offload: Offload | None = None

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise UsageError(f"--gpus must be at least 1, not {self.gpus}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {self.batch_size}")
        if self.grad_accum < 1:
            raise UsageError(f"gradient accumulation steps must be at least 1, not {self.grad_accum}")
        if AUTO in self.checkpoint and len(self.checkpoint) > 1:
            raise UsageError("--checkpoint auto cannot be combined with module names")

    @property
    def auto_checkpoint(self) -> bool:
        return self.checkpoint == (AUTO,)

    def is_baseline(self) -> bool:
        return self == Scenario()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precision"] = None if self.precision is None else self.precision.value
        data["optimizer"] = None if self.optimizer is None else self.optimizer.value
        data["checkpoint"] = list(self.checkpoint)
        data["frozen"] = list(self.frozen)
        data["strategy"] = None if self.strategy is None else self.strategy.value
        data["offload"] = None if self.offload is None else self.offload.value
        data["prune"] = (
            None if self.prune is None else {"sparsity": self.prune.sparsity, "kind": self.prune.kind.value}
        )
        return data

    def describe(self) -> str:
        """One line for reports: ``batch 16, bf16-mixed, checkpoint auto``; ``as profiled`` when empty."""
        parts = []
        if self.batch_size is not None:
            parts.append(f"batch {self.batch_size}")
        if self.grad_accum > 1:
            parts.append(f"grad-accum {self.grad_accum}")
        if self.precision is not None:
            parts.append(self.precision.value)
        if self.optimizer is not None:
            parts.append(self.optimizer.value)
        if self.checkpoint:
            parts.append("checkpoint " + ",".join(self.checkpoint))
        if self.frozen:
            parts.append("frozen " + ",".join(self.frozen))
        if self.prune is not None:
            parts.append(f"prune {self.prune.sparsity:.0%} {self.prune.kind.value}")
        if self.gpus > 1 or self.strategy is not None:
            parts.append(f"{self.gpus} GPUs {(self.strategy or Strategy.DDP).value}")
        if self.offload is not None:
            parts.append(f"offload {self.offload.value}")
        return ", ".join(parts) or "as profiled"

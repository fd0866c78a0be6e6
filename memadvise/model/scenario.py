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
    NF4 = "nf4"  # QLoRA: bitsandbytes 4-bit NormalFloat linear weights, bf16 compute


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


ALL_LINEAR = "all-linear"


def _targets(text: str | tuple[str, ...] | None, option: str) -> tuple[str, ...]:
    """Module-name suffixes from ``q_proj,v_proj`` (or a tuple); ``all-linear`` stands alone."""
    if text is None:
        return (ALL_LINEAR,)
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not names:
        raise UsageError(f"{option} needs module-name suffixes such as q_proj,v_proj, or all-linear")
    if ALL_LINEAR in names and len(names) > 1:
        raise UsageError(f"{option} all-linear cannot be combined with module names")
    return names


@dataclass(frozen=True)
class Lora:
    """LoRA adapters of ``rank`` on the linear layers whose names end with one of ``targets`` (module-name
    suffixes as PEFT matches them, or ``all-linear``: every linear layer but the output head); the base
    model is frozen. ``dropout`` is the adapters' input dropout probability."""

    rank: int
    targets: tuple[str, ...] = (ALL_LINEAR,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise UsageError(f"--lora rank must be at least 1, not {self.rank}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--lora-dropout must be at least 0 and below 1, not {self.dropout}")

    @classmethod
    def parse(cls, rank: int, targets: str | None = None, dropout: float = 0.0) -> Lora:
        return cls(rank=rank, targets=_targets(targets, "--lora-targets"), dropout=dropout)


@dataclass(frozen=True)
class LowRank:
    """Every chosen weight ``W`` (m×n) trained as two factors (m×r)(r×n). ``rank`` is an integer rank, or a
    fraction below 1 of each matrix's full rank ``min(m, n)``; ``targets`` as for :class:`Lora`."""

    rank: float
    targets: tuple[str, ...] = (ALL_LINEAR,)

    def __post_init__(self) -> None:
        if not (0 < self.rank < 1 or (self.rank >= 1 and float(self.rank).is_integer())):
            raise UsageError(
                f"--low-rank takes an integer rank or a fraction between 0 and 1, not {self.rank:g}"
            )

    @classmethod
    def parse(cls, text: str, targets: str | None = None) -> LowRank:
        """``16`` (rank 16) or ``0.25`` / ``25%`` (a quarter of each matrix's full rank)."""
        try:
            rank = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise UsageError(f"--low-rank takes a rank (16) or a fraction (0.25), not {text!r}") from None
        return cls(rank=rank, targets=_targets(targets, "--low-rank-targets"))

    def rank_of(self, rows: int, cols: int) -> int:
        """The factors' inner width for an ``rows × cols`` matrix."""
        if self.rank < 1:
            return max(1, round(self.rank * min(rows, cols)))
        return int(self.rank)


@dataclass(frozen=True)
class Scenario:
    """What to change. ``checkpoint`` is a tuple of module names, or ``("auto",)`` to let memadvise choose.

    ``batch_size`` is the micro-batch (samples per forward pass, per GPU); with ``grad_accum = K`` the
    effective batch is ``K * batch_size * gpus``. ``frozen`` names modules whose parameters are not
    trained. ``gpus`` and ``strategy`` (default DDP) give one GPU's share of data-parallel training.
    ``lora`` trains adapters on a frozen base (with ``precision=NF4``: QLoRA); ``low_rank`` trains the
    chosen weights as two factors.
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
    lora: Lora | None = None
    low_rank: LowRank | None = None

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise UsageError(f"--gpus must be at least 1, not {self.gpus}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {self.batch_size}")
        if self.grad_accum < 1:
            raise UsageError(f"gradient accumulation steps must be at least 1, not {self.grad_accum}")
        if AUTO in self.checkpoint and len(self.checkpoint) > 1:
            raise UsageError("--checkpoint auto cannot be combined with module names")
        if self.lora is not None and self.frozen:
            raise UsageError("--lora freezes the whole base model already; drop --frozen")
        if self.lora is not None and self.low_rank is not None:
            raise UsageError("--lora and --low-rank are two ways to shrink training; choose one")

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
        for key in ("lora", "low_rank"):
            if data[key] is not None:
                data[key]["targets"] = list(data[key]["targets"])
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
        if self.lora is not None:
            dropout = f" dropout {self.lora.dropout:g}" if self.lora.dropout else ""
            parts.append(f"LoRA r={self.lora.rank} on {','.join(self.lora.targets)}{dropout}")
        if self.low_rank is not None:
            rank = self.low_rank.rank
            width = f"rank {rank:g}" if rank >= 1 else f"rank {rank:g} of full"
            parts.append(f"low {width} on {','.join(self.low_rank.targets)}")
        if self.gpus > 1 or self.strategy is not None:
            parts.append(f"{self.gpus} GPUs {(self.strategy or Strategy.DDP).value}")
        if self.offload is not None:
            parts.append(f"offload {self.offload.value}")
        return ", ".join(parts) or "as profiled"

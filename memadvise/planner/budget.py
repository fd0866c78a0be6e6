"""The memory a plan may use on one GPU: its size, minus what PyTorch's process holds besides tensors.

``nvidia-smi`` shows more than ``torch.cuda.memory_allocated()``: the CUDA context and loaded kernels,
the cuBLAS workspaces, and the caching allocator's reserved-but-unused memory. The first two are
subtracted here (``--reserve`` replaces them with one figure, ``--reserve 0`` for exact tensor maths);
the allocator's reservation is predicted per plan by replaying its allocations (see
:mod:`memadvise.planner.reserved`).
"""

from __future__ import annotations

from dataclasses import dataclass

from memadvise.errors import UsageError
from memadvise.model.units import format_bytes, looks_like_size, parse_size
from memadvise.planner import hardware
from memadvise.planner.gpus import (
    CONTEXT_MEASURED,
    GpuSpec,
    cuda_context_bytes,
    find_gpu,
    library_workspace_bytes,
)

# A GPU given only by its size: the context of a recent (Ampere/Ada) card plus one cuBLAS workspace.
UNKNOWN_CONTEXT = 400 * 2**20
UNKNOWN_WORKSPACE = 8_519_680


@dataclass(frozen=True)
class Budget:
    """One GPU's memory and what is left for the training step's tensors (all in bytes)."""

    name: str
    total_bytes: int
    context_bytes: int
    workspace_bytes: int
    reserve_bytes: int
    bf16: bool = True
    gpu: GpuSpec | None = None
    exact: bool = False  # --reserve 0: tensor bytes only, no allocator model

    @property
    def usable_bytes(self) -> int:
        return max(0, self.total_bytes - self.reserve_bytes)

    @property
    def context_source(self) -> str:
        """Where the context figure comes from: a measurement on this architecture, or an assumption."""
        if self.gpu is not None and self.gpu.architecture in CONTEXT_MEASURED:
            return f"measured on {CONTEXT_MEASURED[self.gpu.architecture]}"
        return "assumed, not measured on this architecture"

    def describe(self) -> str:
        if self.exact:
            return f"{self.name}: {format_bytes(self.total_bytes)} for tensors (--reserve 0)"
        return (
            f"{self.name}: {format_bytes(self.total_bytes)} − {format_bytes(self.reserve_bytes)} reserved "
            f"(CUDA context and kernels ~{format_bytes(self.context_bytes)}, {self.context_source}; cuBLAS "
            f"workspaces {format_bytes(self.workspace_bytes)}) = {format_bytes(self.usable_bytes)} "
            "for the caching allocator"
        )


def card_number(text: str) -> GpuSpec | None:
    """The catalog card a bare model number names (``"4090"``: the RTX 4090), else ``None``."""
    text = text.strip()
    if not text.isdigit():
        return None
    try:
        return find_gpu(text)
    except UsageError:
        return None


def catalog_card(text: str) -> GpuSpec | None:
    """The catalog card ``text`` names (a name, an alias, or a card's bare model number), or ``None``
    when it is a size (``24GB``, a plain byte count); an unknown name is a usage error."""
    spec = card_number(text)
    if spec is not None:
        return spec
    if looks_like_size(text):
        parse_size(text)  # a size memadvise cannot use (too large, two dots) is an error of its own
        return None
    return find_gpu(text)


def check_gpu_text(text: str) -> None:
    """Refuse a bare number that is neither a catalog card nor a plausible size: ``--gpu 4000`` would be a
    4,000-byte GPU (give a unit, or name the card)."""
    bare = text.strip()
    if bare.isdigit() and card_number(bare) is None and int(bare) < 2**30:
        raise UsageError(
            f"--gpu {bare} would be {int(bare):,} bytes: give a unit (24GB, 24GiB) or a card name"
        )


def budget_for(gpu: str | GpuSpec, reserve: str | int | None = None, training: bool = True) -> Budget:
    """A budget from a catalog name (``"RTX 4090"``, ``"a100-80gb"``, or a card's bare model number such
    as ``"4090"``) or a size (``"24GB"``, ``"80G"``, a plain integer in bytes).
    ``reserve`` overrides the overhead taken off the top; ``training`` counts the backward thread's
    cuBLAS handle too."""
    spec = gpu if isinstance(gpu, GpuSpec) else catalog_card(str(gpu))
    if spec is not None:
        total = spec.memory_bytes
        context = cuda_context_bytes(spec, training=training)
        workspace = library_workspace_bytes(spec, training=training)
        name, bf16 = spec.name, spec.bf16
    else:
        total = parse_size(str(gpu))
        context, workspace = UNKNOWN_CONTEXT, UNKNOWN_WORKSPACE
        name, bf16 = format_bytes(total), True
    if total <= 0:
        raise UsageError("the GPU memory budget must be more than 0 bytes")
    overhead = context + workspace
    exact = False
    if reserve is not None:
        overhead = reserve if isinstance(reserve, int) else parse_size(reserve)
        exact = overhead == 0
    if overhead >= total:
        raise UsageError(f"the reserve ({format_bytes(overhead)}) leaves nothing of {format_bytes(total)}")
    return Budget(
        name=name,
        total_bytes=total,
        context_bytes=context,
        workspace_bytes=workspace,
        reserve_bytes=overhead,
        bf16=bf16,
        gpu=spec,
        exact=exact,
    )


def local_budget(reserve: str | int | None = None) -> Budget:
    """The budget of this machine's first GPU (by its catalog name, else its size as NVML reports it)."""
    found = hardware.local_gpus()
    if not found:
        raise UsageError(
            "no GPU found on this machine (NVML reports none); give --gpu SIZE or NAME, or use --list-gpus "
            f"(host RAM here: {hardware.host_ram_bytes() / 2**30:.0f} GiB)"
        )
    first = found[0]
    try:
        return budget_for(first.name, reserve)
    except UsageError:
        return budget_for(str(first.total_bytes), reserve)

"""The GPU catalog: what the planner needs to know about a card, read from ``data/gpus.json``.

The catalog is data, not code: adding a card means adding one object to ``memadvise/planner/data/gpus.json``.
Each entry gives the card's ``name``, the ``aliases`` users type, ``memory_bytes`` (the total memory the
driver reports where it is known, as nvidia-smi prints it in MiB — a little less than the marketed size
on most cards — else the marketed size in GiB; the entry's ``note`` says which), whether it runs
``bf16`` natively, dense tensor-core ``fp16_tflops``/``bf16_tflops`` with FP32 accumulate (the rate
PyTorch's matmuls get; optional, left out where not confidently known), ``bandwidth_gbps`` (GB/s,
10**9 bytes), ``architecture``, ``compute_capability`` and ``kind`` (consumer or datacenter).

Besides the card itself, a process never gets all of ``memory_bytes``: the CUDA context and the
libraries' workspaces take their share first. :func:`cuda_context_bytes` and
:func:`library_workspace_bytes` estimate those shares.

Importing this module is cheap: it imports neither torch nor the JSON file (loaded on first use).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from memadvise.errors import UsageError

MiB = 2**20

KINDS = ("consumer", "datacenter")
ARCHITECTURES = ("volta", "turing", "ampere", "ada", "hopper", "blackwell")

# Estimated device memory taken by the CUDA context of a PyTorch process, by architecture (see
# cuda_context_bytes for the reasoning).
_CONTEXT_MIB = {
    "volta": 300,
    "turing": 300,
    "ampere": 400,
    "ada": 420,
    "hopper": 500,
    "blackwell": 550,
}

# PyTorch's default cuBLAS workspace (see library_workspace_bytes).
CUBLAS_WORKSPACE_PRE_HOPPER = 4096 * 1024 * 2 + 16 * 1024 * 8  # ":4096:2:16:8" = 8.125 MiB
CUBLAS_WORKSPACE_HOPPER = 32 * MiB


@dataclass(frozen=True)
class GpuSpec:
    """One card of the catalog; see the module docstring for the meaning and units of each field."""

    name: str
    aliases: tuple[str, ...]
    memory_bytes: int
    bf16: bool
    bandwidth_gbps: float
    architecture: str
    compute_capability: str
    kind: str
    fp16_tflops: float | None = None
    bf16_tflops: float | None = None
    note: str = ""

    @property
    def compute_capability_tuple(self) -> tuple[int, int]:
        """``"8.9"`` as ``(8, 9)``, for comparisons such as ``>= (9, 0)``."""
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)


def _spec_from_json(row: dict[str, Any]) -> GpuSpec:
    """Build and check one entry; a malformed catalog is a packaging bug, reported with the card's name."""
    name = row.get("name", "?")
    try:
        spec = GpuSpec(
            name=str(row["name"]),
            aliases=tuple(str(a) for a in row.get("aliases", ())),
            memory_bytes=int(row["memory_bytes"]),
            bf16=bool(row["bf16"]),
            bandwidth_gbps=float(row["bandwidth_gbps"]),
            architecture=str(row["architecture"]),
            compute_capability=str(row["compute_capability"]),
            kind=str(row["kind"]),
            fp16_tflops=None if row.get("fp16_tflops") is None else float(row["fp16_tflops"]),
            bf16_tflops=None if row.get("bf16_tflops") is None else float(row["bf16_tflops"]),
            note=str(row.get("note", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"GPU catalog entry {name!r} is malformed: {exc}") from exc
    if spec.kind not in KINDS:
        raise ValueError(f"GPU catalog entry {name!r}: kind must be one of {KINDS}, not {spec.kind!r}")
    if spec.architecture not in ARCHITECTURES:
        raise ValueError(f"GPU catalog entry {name!r}: unknown architecture {spec.architecture!r}")
    if spec.memory_bytes <= 0:
        raise ValueError(f"GPU catalog entry {name!r}: memory_bytes must be positive")
    spec.compute_capability_tuple  # noqa: B018 - validates the "major.minor" format
    return spec


@lru_cache(maxsize=1)
def load_catalog() -> tuple[GpuSpec, ...]:
    """All cards of ``memadvise/planner/data/gpus.json``, in file order (read once, then cached)."""
    text = resources.files("memadvise.planner").joinpath("data/gpus.json").read_text(encoding="utf-8")
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("the GPU catalog must be a JSON list of objects")
    specs = tuple(_spec_from_json(row) for row in rows)
    seen: dict[str, str] = {}
    for spec in specs:
        for key in {_compact(k) for k in (spec.name, *spec.aliases)}:
            if key in seen and seen[key] != spec.name:
                raise ValueError(f"GPU catalog: {key!r} names both {seen[key]} and {spec.name}")
            seen[key] = spec.name
    return specs


def _spaced(text: str) -> str:
    """Lower case, every run of punctuation or spaces turned into one space: ``A100-SXM4`` → ``a100 sxm4``."""
    return " ".join(re.split(r"[^0-9a-z]+", text.lower())).strip()


def _compact(text: str) -> str:
    """Lower case letters and digits only: ``RTX 4090`` → ``rtx4090``."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def find_gpu(text: str) -> GpuSpec:
    """The card ``text`` names, ignoring case, spaces and punctuation (``rtx4090`` = ``RTX-4090``).

    Matching, in order:

    1. the whole text equals the card's name or one of its aliases;
    2. the text contains a name or alias as whole words, as device names do
       (``NVIDIA GeForce RTX 4090``, ``NVIDIA A100-SXM4-80GB``); the longest such match wins;
    3. otherwise it is an error: a prefix of several cards (``A100``, ``V100``) is ambiguous and the
       message lists them; anything else is unknown and the message lists every card of the catalog.
       A prefix of a single card (``L40``) is not accepted either — it may be a different card (the L40
       is not the L40S) — but the message suggests it.
    """
    catalog = load_catalog()
    query = _compact(text)
    if not query:
        raise UsageError("the GPU name is empty; give a card such as 'RTX 4090' or 'H100'")
    for spec in catalog:
        if query in {_compact(k) for k in (spec.name, *spec.aliases)}:
            return spec

    padded = f" {_spaced(text)} "
    best: tuple[int, GpuSpec] | None = None
    tie = False
    for spec in catalog:
        for key in (spec.name, *spec.aliases):
            spaced = _spaced(key)
            if f" {spaced} " in padded:
                if best is None or len(spaced) > best[0]:
                    best, tie = (len(spaced), spec), False
                elif len(spaced) == best[0] and best[1] is not spec:
                    tie = True
    if best is not None and not tie:
        return best[1]

    prefixed = [
        spec.name
        for spec in catalog
        if any(_compact(k).startswith(query) for k in (spec.name, *spec.aliases))
    ]
    if len(prefixed) > 1:
        raise UsageError(f"GPU {text!r} is ambiguous: it matches {', '.join(prefixed)}; name one of them")
    if len(prefixed) == 1:
        raise UsageError(f"unknown GPU {text!r}; did you mean {prefixed[0]!r}?")
    known = ", ".join(spec.name for spec in catalog)
    raise UsageError(f"unknown GPU {text!r}; known cards are {known} (or give a memory size such as 24GB)")


def cuda_context_bytes(gpu: GpuSpec) -> int:
    """Estimated device memory the CUDA context of a PyTorch process takes on ``gpu`` (bytes).

    Before the first tensor, a process already holds memory that ``torch.cuda.memory_reserved()`` never
    shows but ``nvidia-smi`` does: the driver's context (page tables, per-SM local memory and printf
    buffers sized by the SM count, stack, the device heap) plus the code of the kernels it has loaded.
    With lazy module loading (``CUDA_MODULE_LOADING=LAZY``, the default since CUDA 11.7 which PyTorch
    wheels use), kernels load on first call, so the figure grows a little as a run touches new operators
    (cuBLAS, cuDNN, NCCL each bring their own). Typical readings of nvidia-smi after
    ``torch.zeros(1, device="cuda")`` plus a first matmul are roughly 300 MiB on Volta/Turing, 400 MiB
    on Ampere and Ada, and 500 MiB or more on Hopper/Blackwell (more SMs, larger per-SM reservations,
    larger fatbins). The table below takes those round figures; it is an estimate to leave headroom
    for, not a measurement — measure ``nvidia-smi`` used memory minus ``memory_reserved()`` on the card
    when it matters.
    """
    return _CONTEXT_MIB.get(gpu.architecture, 500) * MiB


def library_workspace_bytes(gpu: GpuSpec, streams: int = 1) -> int:
    """cuBLAS workspace PyTorch allocates on ``gpu`` for ``streams`` streams (bytes).

    PyTorch gives each cuBLAS handle (one per device and stream that runs a matmul) a workspace taken
    from its caching allocator — so it is part of the reserved memory, and stays allocated once created.
    Its default size follows ``CUBLAS_WORKSPACE_CONFIG``'s ``:4096:2:16:8`` convention before Hopper:
    2 chunks of 4096 KiB plus 8 of 16 KiB = 8.125 MiB (about 8.5 MB); on Hopper and later
    (compute capability 9.0+) PyTorch uses 32 MiB, because cuBLAS's Hopper kernels want more scratch.
    Setting ``CUBLAS_WORKSPACE_CONFIG`` changes it; cuDNN and cuBLASLt workspaces are transient and
    sized per call, and are not included.
    """
    if streams < 1:
        raise UsageError(f"streams must be at least 1, not {streams}")
    per_stream = (
        CUBLAS_WORKSPACE_HOPPER if gpu.compute_capability_tuple >= (9, 0) else CUBLAS_WORKSPACE_PRE_HOPPER
    )
    return per_stream * streams

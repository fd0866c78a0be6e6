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

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from memadvise.errors import UsageError
from memadvise.model.schema import GPU_CATALOG, SchemaError, read_json, validate

MiB = 2**20

KINDS = ("consumer", "datacenter")
ARCHITECTURES = ("volta", "turing", "ampere", "ada", "hopper", "blackwell")

# Device memory of a PyTorch process outside the caching allocator (nvidia-smi minus
# memory_reserved()), by architecture, for (inference, training); see cuda_context_bytes.
# Hopper: measured on an H200 (torch 2.11, CUDA 13.0, driver 580, lazy module loading) by
# bench/gpu_validate.py over 13 models: 678-686 MiB after inference, 742-762 MiB after training.
# The others are not measured: the older round figures, plus for training the 64 MiB that the autograd
# thread's cuBLAS handle added on Hopper.
_CONTEXT_MIB: dict[str, tuple[int, int]] = {
    "volta": (300, 364),
    "turing": (300, 364),
    "ampere": (400, 464),
    "ada": (420, 484),
    "hopper": (686, 762),
    "blackwell": (700, 780),
}
CONTEXT_MEASURED = {"hopper": "H200, torch 2.11, CUDA 13.0 (bench/results/gpu_h200.md)"}

# PyTorch's default cuBLAS workspace per handle (see library_workspace_bytes).
CUBLAS_WORKSPACE_PRE_HOPPER = 4096 * 1024 * 2 + 16 * 1024 * 8  # ":4096:2:16:8" = 8.125 MiB
CUBLAS_WORKSPACE_HOPPER = 32 * MiB
CUBLASLT_WORKSPACE = 1 * MiB  # the cuBLASLt workspace beside it (addmm with bias, 16-bit GEMMs)


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
    try:
        rows = read_json(text)
        validate(rows, GPU_CATALOG)
    except (ValueError, SchemaError) as exc:  # a packaging bug, not the user's input
        raise ValueError(f"the GPU catalog memadvise/planner/data/gpus.json: {exc}") from None
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


def cuda_context_bytes(gpu: GpuSpec, training: bool = True) -> int:
    """Device memory of a PyTorch process on ``gpu`` that the caching allocator does not hold (bytes):
    what ``nvidia-smi`` shows beyond ``torch.cuda.memory_reserved()``.

    Before the first tensor, a process already holds memory that ``torch.cuda.memory_reserved()`` never
    shows but ``nvidia-smi`` does: the driver's context (page tables, per-SM local memory and printf
    buffers sized by the SM count, stack, the device heap) plus the code of the kernels it has loaded.
    With lazy module loading (``CUDA_MODULE_LOADING=LAZY``, the default since CUDA 11.7 which PyTorch
    wheels use), kernels load on first call, so the figure grows a little as a run touches new operators
    (cuBLAS, cuDNN, NCCL each bring their own). Typical readings of nvidia-smi after
    ``torch.zeros(1, device="cuda")`` plus a first matmul are roughly 300 MiB on Volta/Turing, 400 MiB
    on Ampere and Ada, and 500 MiB or more on Hopper/Blackwell (more SMs, larger per-SM reservations,
    larger fatbins). Each cuBLAS handle brings its own share: a training step has two, the main
    thread's and the autograd engine's (backward matmuls run on its GPU thread).

    On Hopper the figures are measured (an H200 with torch 2.11 and CUDA 13.0: 610 MiB after the
    first tensor, 676 MiB once cuBLAS is loaded, 678-686 MiB after inference and 742-762 MiB after
    training of 13 models; the largest of each is used). Other architectures keep round figures that
    have not been measured (:data:`CONTEXT_MEASURED` says which are); measure ``nvidia-smi`` used
    memory minus ``memory_reserved()`` on the card when it matters.
    """
    inference, train = _CONTEXT_MIB.get(gpu.architecture, _CONTEXT_MIB["hopper"])
    return (train if training else inference) * MiB


def library_workspace_bytes(gpu: GpuSpec, streams: int = 1, training: bool = True) -> int:
    """cuBLAS and cuBLASLt workspaces PyTorch allocates on ``gpu`` for ``streams`` streams (bytes).

    PyTorch gives each cuBLAS handle — one per thread, device and stream that runs a matmul — a
    workspace taken from its caching allocator, so it is part of the allocated and reserved memory and
    stays allocated once created. Training has two such threads: the main one (forward) and the
    autograd engine's GPU thread (backward). Each handle's cuBLAS workspace follows
    ``CUBLAS_WORKSPACE_CONFIG``'s ``:4096:2:16:8`` default before Hopper (2 chunks of 4096 KiB plus
    8 of 16 KiB = 8.125 MiB); on Hopper and later (compute capability 9.0+) PyTorch uses 32 MiB; a
    1 MiB cuBLASLt workspace sits beside it. Measured on an H200 (torch 2.11): 33 MiB after matmuls on
    the main thread. cuDNN workspaces are transient and sized per call, and are not included.
    """
    if streams < 1:
        raise UsageError(f"streams must be at least 1, not {streams}")
    per_handle = (
        CUBLAS_WORKSPACE_HOPPER if gpu.compute_capability_tuple >= (9, 0) else CUBLAS_WORKSPACE_PRE_HOPPER
    ) + CUBLASLT_WORKSPACE
    return per_handle * streams * (2 if training else 1)

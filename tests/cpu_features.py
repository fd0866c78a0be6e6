"""What this machine's CPU offers to oneDNN, for tests whose truth depends on it.

oneDNN (PyTorch's CPU library for convolutions, 16-bit matrix products and RNNs) picks its kernels at
run time from the instruction sets the CPU has, and different kernels take different scratch buffers
and reorders from PyTorch's allocator. A memory figure fitted on one kind of CPU can then miss on
another. Tests known to miss on some CPUs say so with
``pytest.mark.xfail(condition=<a flag below>, strict=True, reason=...)``: a strict known miss where the
feature exists, an ordinary test elsewhere.

The flags come from ``torch.cpu`` (cpuinfo, the detection PyTorch itself uses), with ``/proc/cpuinfo``
as a fallback where those private helpers are missing, and are capped by ``ONEDNN_MAX_CPU_ISA`` when it
is set: ``ONEDNN_MAX_CPU_ISA=AVX2 python -m pytest tests/integration`` runs oneDNN's kernels as on a
CPU without AVX-512, and the flags follow, so the known misses are checked as they would be there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch


def _proc_flags() -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def _has(torch_check: str, *proc_flags: str) -> bool:
    check: Callable[[], bool] | None = getattr(torch.cpu, torch_check, None)
    if check is not None:
        return bool(check())
    flags = _proc_flags()
    return bool(flags) and all(f in flags for f in proc_flags)


def _onednn_cap() -> int:
    """How far ``ONEDNN_MAX_CPU_ISA`` lets oneDNN go: 0 below AVX-512, 1 AVX-512 without AMX,
    2 no cap."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if not isa or isa in ("ALL", "DEFAULT") or "AMX" in isa:
        return 2
    return 1 if isa.startswith(("AVX512", "AVX10")) else 0


#: AVX-512 (F, BW, VL, DQ: oneDNN's ``avx512_core``). oneDNN's fp32 convolution backward then takes
#: less scratch than with AVX2, and 16-bit convolutions run on its AVX-512 kernels, which take
#: scratch buffers of their own.
HAS_AVX512 = _has("_is_avx512_supported", "avx512f", "avx512bw", "avx512vl", "avx512dq") and (
    _onednn_cap() >= 1
)

#: Intel AMX tiles (Sapphire Rapids and later). oneDNN runs bf16 convolutions and matrix products
#: on AMX kernels, whose scratch pads are several times larger than the AVX-512 ones.
HAS_AMX = _has("_is_amx_tile_supported", "amx_tile", "amx_bf16") and _onednn_cap() >= 2

#: avx512_fp16 (Sapphire Rapids and later): PyTorch sends fp16 convolutions, matrix products and LSTM
#: inference to oneDNN (``torch.ops.mkldnn._is_mkldnn_fp16_supported``), which runs them on AVX-512
#: kernels unless the CPU also has AMX-FP16 tiles.
_CAP = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
_FP16_ISA = _onednn_cap() >= 2 or "FP16" in _CAP or "AVX10" in _CAP
HAS_AVX512_FP16 = HAS_AVX512 and "avx512_fp16" in _proc_flags() and _FP16_ISA

#: AMX-FP16 tiles (Granite Rapids and later): oneDNN runs fp16 on AMX as it does bf16.
HAS_AMX_FP16 = _has("_is_amx_fp16_supported", "amx_fp16") and _onednn_cap() >= 2


def describe() -> str:
    """One line for the test header: what oneDNN can use here."""
    capability = torch.backends.cpu.get_cpu_capability()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    capped = f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else ""
    return (
        f"CPU for oneDNN: avx512 {HAS_AVX512}, amx {HAS_AMX}, avx512_fp16 {HAS_AVX512_FP16}, "
        f"amx_fp16 {HAS_AMX_FP16}{capped}; ATen kernels {capability}"
    )

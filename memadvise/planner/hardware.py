"""This machine's GPUs (pynvml) and RAM (psutil), and the system RAM to pair with a GPU setup."""

from __future__ import annotations

import math
from dataclasses import dataclass

from memadvise.model.profile import Profile

GiB = 2**30
# Common purchasable totals (GiB): DIMM kits and server configurations.
RAM_SIZES = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
RAM_PER_GPU_MEMORY = 1.25  # rule of thumb: system RAM >= 1.25 x total GPU memory
PROCESS_AND_OS = 4 * GiB


@dataclass(frozen=True)
class LocalGpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


def local_gpus() -> list[LocalGpu]:
    """The NVIDIA GPUs the driver reports (empty without a driver or GPU)."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPU: both mean "none here"
        return []
    try:
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            text = name.decode() if isinstance(name, bytes) else str(name)
            found.append(LocalGpu(i, text, int(memory.total), int(memory.free)))
        return found
    finally:
        pynvml.nvmlShutdown()


def host_ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class RamAdvice:
    recommended_bytes: int
    rule_bytes: int
    host_need_bytes: int
    reason: str
    offloaded_bytes: int = 0
    pinned_bytes: int = 0


def ram_for(
    total_gpu_bytes: int, profile: Profile, offloaded_bytes: int = 0, pinned_bytes: int = 0
) -> RamAdvice:
    """System RAM to buy: at least 1.25 x the GPUs' memory plus what is offloaded to the host (optimizer
    state, parameters: ``offloaded_bytes`` for all GPUs together), and never less than the host side
    needs (prefetched and pinned batches, a full state-dict copy when saving a checkpoint, the process
    and OS, the offloaded bytes), rounded up to a purchasable size. ``pinned_bytes`` (part of the
    offloaded bytes) is page-locked: the OS cannot swap it, and containers must allow it."""
    rule = math.ceil(total_gpu_bytes * RAM_PER_GPU_MEMORY) + offloaded_bytes
    loader = profile.host_memory.total_bytes if profile.host_memory is not None else 0
    checkpoint = profile.param_bytes + profile.buffer_bytes + profile.optimizer_state_bytes
    need = loader + checkpoint + PROCESS_AND_OS + offloaded_bytes
    wanted = max(rule, need)
    size = next((s * GiB for s in RAM_SIZES if s * GiB >= wanted), math.ceil(wanted / GiB) * GiB)
    reason = "1.25 x GPU memory" if rule >= need else "host needs (data loading, checkpoint copy, process)"
    if offloaded_bytes:
        reason += " + offloaded state"
    return RamAdvice(
        recommended_bytes=size,
        rule_bytes=rule,
        host_need_bytes=need,
        reason=reason,
        offloaded_bytes=offloaded_bytes,
        pinned_bytes=pinned_bytes,
    )

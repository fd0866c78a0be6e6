"""Host RAM of data loading: batches prefetched by DataLoader workers and their pinned copies.

A ``torch.utils.data.DataLoader`` with ``num_workers = N`` keeps up to ``N * prefetch_factor`` collated
batches in flight, in shared memory (default ``prefetch_factor`` 2). With ``pin_memory=True`` a thread
copies each batch into page-locked memory before the loop takes it: the copies waiting in its queue
plus the batch the loop holds, at most ``N * prefetch_factor + 1`` (``1`` without workers). CUDA's
pinned-memory allocator rounds every block up to a power of two, so pinned bytes are counted that way.
The batch the step itself uses is the profile's ``input_bytes`` and is not counted again here; worker
processes' own interpreter memory is not included either (it depends on the dataset, not the batch).
"""

from __future__ import annotations

from typing import Any

from memadvise.capture.training import iter_tensors
from memadvise.errors import UsageError
from memadvise.model.profile import HostMemory

DEFAULT_PREFETCH = 2


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 0 else 0


def batch_sizes(batch: Any) -> list[int]:
    """Bytes of every tensor in a batch (from shapes, so meta tensors work too)."""
    return [t.numel() * t.element_size() for t in iter_tensors(batch)]


def estimate_host_memory(
    batch: Any, workers: int, pin_memory: bool, prefetch_factor: int | None = None, source: str = "options"
) -> HostMemory:
    """Host bytes of prefetched and pinned batches for a loader with these settings."""
    if workers < 0:
        raise UsageError(f"dataloader workers must be at least 0, not {workers}")
    prefetch = (prefetch_factor or DEFAULT_PREFETCH) if workers > 0 else 0
    if prefetch < 0:
        raise UsageError(f"prefetch_factor must be at least 0, not {prefetch}")
    sizes = batch_sizes(batch)
    batch_bytes = sum(sizes)
    in_flight = workers * prefetch
    prefetched = in_flight * batch_bytes
    pinned = (in_flight + 1) * sum(_pow2(n) for n in sizes) if pin_memory else 0
    return HostMemory(
        workers=workers,
        prefetch_factor=prefetch,
        pin_memory=pin_memory,
        batch_bytes=batch_bytes,
        prefetched_bytes=prefetched,
        pinned_bytes=pinned,
        total_bytes=prefetched + pinned,
        source=source,
    )


def loader_settings(loader: Any) -> tuple[int, bool, int | None]:
    """``(num_workers, pin_memory, prefetch_factor)`` of a DataLoader returned by ``make_dataloader()``."""
    try:
        workers = int(loader.num_workers)
        pin = bool(loader.pin_memory)
    except (AttributeError, TypeError, ValueError):
        raise UsageError(
            f"make_dataloader() returned {type(loader).__name__}, not a torch.utils.data.DataLoader"
        ) from None
    prefetch = getattr(loader, "prefetch_factor", None)
    return workers, pin, int(prefetch) if prefetch is not None else None


#: Copies of the parameters a step keeps besides the weights: gradients and the optimizer's state.
STATE_COPIES = {
    "adamw": 3,
    "adam": 3,
    "sgd": 1,
    "sgd-momentum": 2,
    "adagrad": 2,
    "rmsprop": 2,
    "adafactor": 1,
    "none": 1,
    "adamw-8bit": 3,
}


def ram_warning(
    param_bytes: int, mode: str, optimizer: str, batch_size: int, scaling: bool, available: int
) -> str | None:
    """A warning when a real CPU run may not fit in the RAM ``available`` now, from the parameters alone.

    Training keeps the weights, their gradients and the optimizer's state (AdamW: two moments), so about
    ``param_bytes x (1 + STATE_COPIES[optimizer])`` before any activation; inference the weights. Activations
    and temporaries grow with the batch and often match that again, so the warning comes once the
    parameters' share is more than half of what is available. This is a rule of thumb, not a trace: a run
    whose activations alone overflow RAM is not caught.
    """
    copies = 1 + STATE_COPIES.get(optimizer, 3) if mode == "train" else 1
    need = param_bytes * copies
    if need <= available // 2:
        return None
    from memadvise.model.units import format_bytes

    what = f"weights, gradients and {optimizer} state" if mode == "train" else "the weights"
    bigger = f", and the batch-scaling trace runs batch {2 * batch_size}" if scaling else ""
    return (
        f"this run may not fit in RAM: {what} alone take about {format_bytes(need)} of the "
        f"{format_bytes(available)} available now; activations at batch {batch_size} come on top{bigger}. "
        "A fake trace allocates nothing: add --fake (--target-device cpu for this CPU's kernels)"
    )

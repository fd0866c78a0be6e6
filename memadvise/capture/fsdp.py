"""One rank of FSDP2 training, traced fake: ``fully_shard`` over a fake process group of N ranks.

Instead of the ZeRO formulas, PyTorch's own sharding machinery runs: each repeated block (the
children of every ``ModuleList``, else the root's children that hold parameters) and the root are
wrapped with ``torch.distributed.fsdp.fully_shard`` on a device mesh of N ranks whose collectives are
no-ops (``torch.testing``'s fake process group), and the model's tensors are fake CPU tensors. The
traced memory is one rank's: sharded parameters, gradients and optimizer state, and the all-gather and
reduce-scatter buffers and unsharded parameters alive while each unit runs, as FSDP2 allocates them.

The fake process group lives in ``torch.testing._internal`` (PyTorch's own test utilities).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from memadvise.errors import UsageError


@contextmanager
def fake_process_group(world_size: int) -> Iterator[Any]:
    """A process group of ``world_size`` fake ranks (this process is rank 0) and its CPU device mesh."""
    import torch.distributed as dist

    if world_size < 2:
        raise UsageError(f"--fsdp needs at least 2 ranks, not {world_size}")
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed, which FSDP needs")
    if dist.is_initialized():
        raise UsageError("a process group is already initialised in this process; trace FSDP in a fresh one")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    try:  # meta kernels of the collectives on fake tensors (built in from torch 2.14; a module in 2.7+)
        import torch.distributed._tools.fake_collectives  # noqa: F401
    except ImportError:
        if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 14):
            raise UsageError(
                f"--fsdp traces FSDP2's collectives on fake tensors, which needs torch 2.7 or newer "
                f"(this is {torch.__version__})"
            ) from None

    dist.init_process_group("fake", rank=0, world_size=world_size, store=FakeStore())
    try:
        with storage_resizes():
            yield init_device_mesh("cpu", (world_size,))
    finally:
        dist.destroy_process_group()


@contextmanager
def storage_resizes() -> Iterator[None]:
    """Tell the fake recorder when FSDP2 frees or re-allocates an unsharded parameter's storage in
    place (its ``free_storage``/``alloc_storage`` helpers resize the storage; the tensors live on)."""
    from torch.distributed.fsdp._fully_shard import _fsdp_param, _fsdp_param_group

    from memadvise.capture.fake import ACTIVE

    original_alloc, original_free = _fsdp_param.alloc_storage, _fsdp_param.free_storage

    def alloc_storage(tensor: torch.Tensor) -> None:
        original_alloc(tensor)
        if ACTIVE:
            ACTIVE[-1].storage_resized(tensor, tensor.untyped_storage().nbytes())

    def free_storage(tensor: torch.Tensor) -> None:
        if ACTIVE:
            ACTIVE[-1].storage_resized(tensor, 0)
        original_free(tensor)

    modules = (_fsdp_param, _fsdp_param_group)
    saved = [(m, getattr(m, "alloc_storage", None), getattr(m, "free_storage", None)) for m in modules]
    for module in modules:
        if hasattr(module, "alloc_storage"):
            module.alloc_storage = alloc_storage  # type: ignore[attr-defined]
        if hasattr(module, "free_storage"):
            module.free_storage = free_storage  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, alloc, free in saved:
            if alloc is not None:
                module.alloc_storage = alloc  # type: ignore[attr-defined]
            if free is not None:
                module.free_storage = free  # type: ignore[attr-defined]


def shard_units(model: torch.nn.Module) -> list[str]:
    """The modules FSDP wraps: repeated blocks (``ModuleList`` children), else the root's children
    that hold parameters; the root is wrapped last in :func:`apply_fsdp`."""
    units = [
        f"{name}.{child_name}" if name else child_name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        for child_name, _ in module.named_children()
    ]
    if not units:
        units = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    return units


def apply_fsdp(model: torch.nn.Module, mesh: Any) -> list[str]:
    """``fully_shard`` each unit, then the root; returns the units' names."""
    from torch.distributed.fsdp import fully_shard

    units = shard_units(model)
    modules = dict(model.named_modules())
    for name in units:
        fully_shard(modules[name], mesh=mesh)
    fully_shard(model, mesh=mesh)
    return units

"""Forward FLOPs per module, counted with PyTorch's own FLOP formulas on a fake copy of the model.

Checkpointing a module costs one more run of its forward pass in backward; to report that cost,
memadvise counts the forward FLOPs of every module (children included). The formulas are
``torch.utils.flop_counter``'s registry (matrix products, convolutions, attention); element-wise
operators count as zero, as there. The count runs on fake tensors, so it allocates nothing and does
not disturb the traced steps.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from memadvise.capture.training import call_model


class _ForwardFlops(TorchDispatchMode):
    """Adds each operator's FLOPs to every module open on ``stack``."""

    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self.stack = stack
        self.by_module: Counter[str] = Counter()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        counter = flop_registry.get(func._overloadpacket)
        if counter is not None:
            flops = int(counter(*args, **kwargs, out_val=out))
            self.total += flops
            for name in set(self.stack):
                self.by_module[name] += flops
        return out


def count_forward_flops(model: torch.nn.Module, inputs: Any) -> tuple[dict[str, int], int]:
    """FLOPs of one forward pass, per module qualified name (``""`` is the whole model), and in all."""
    stack: list[str] = []
    handles = []

    def enter(name: str) -> Any:
        def hook(*_: Any) -> None:
            stack.append(name)

        return hook

    def leave(*_: Any) -> None:
        if stack:
            stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    mode = _ForwardFlops(stack)
    try:
        with mode, torch.no_grad():
            call_model(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    return dict(mode.by_module), mode.total

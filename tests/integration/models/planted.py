"""Planted allocations of known size: a second truth that is not the allocator's own events.

One module allocates exactly ``FORWARD_SAVED`` bytes in its forward pass and saves them for backward, and
exactly ``BACKWARD_SCRATCH`` bytes (freed at once) in its backward pass, through a custom autograd
Function; a custom optimizer keeps ``OPTIMIZER_STATE`` bytes of state per parameter and takes
``OPTIMIZER_SCRATCH`` bytes of scratch in every ``step()``. Everything else is a handful of 16-float
tensors (64 bytes each) and the scalar loss (4 bytes), so the peak is known to the byte:
``OPTIMIZER_STATE + OPTIMIZER_SCRATCH`` plus the weight, its gradient, the input, the output (64 bytes
each) and the loss.

The sizes are odd numbers that no tensor of the model can have by chance.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

FORWARD_SAVED = 3_000_017
BACKWARD_SCRATCH = 5_000_011
OPTIMIZER_STATE = 7_000_003
OPTIMIZER_SCRATCH = 11_000_027
WIDTH = 16  # floats in the weight, the input and the output
SMALL_BYTES = 4 * WIDTH * 4 + 4  # weight, gradient, input, output (fp32) and the loss


class PlantedFunction(torch.autograd.Function):
    """``x * w``, plus a planted allocation saved for backward and one taken in backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        kept = torch.ones(FORWARD_SAVED, dtype=torch.uint8, device=x.device)
        ctx.save_for_backward(kept, x)
        return x * w

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        _kept, x = ctx.saved_tensors
        scratch = torch.ones(BACKWARD_SCRATCH, dtype=torch.uint8, device=grad.device)
        del scratch
        return None, grad * x


class Planted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return PlantedFunction.apply(x, self.weight)


class PlantedOptimizer(torch.optim.Optimizer):
    """Plain SGD with lr 0, plus planted state and scratch."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, {})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "planted" not in state:
                    state["planted"] = torch.zeros(OPTIMIZER_STATE, dtype=torch.uint8, device=p.device)
                scratch = torch.ones(OPTIMIZER_SCRATCH, dtype=torch.uint8, device=p.device)
                del scratch
                p.sub_(p.grad, alpha=0.0)


_OPTIMIZERS: weakref.WeakKeyDictionary[nn.Module, PlantedOptimizer] = weakref.WeakKeyDictionary()


def build_model() -> nn.Module:
    return nn.Sequential(nn.Identity(), Planted())


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.ones(WIDTH)


def train_step(model: nn.Module, inputs: torch.Tensor, optimizer: Any) -> torch.Tensor:
    """The tutorial loop with the planted optimizer (made on the first step, like any optimizer's
    state it lives as long as the model)."""
    opt = _OPTIMIZERS.get(model)
    if opt is None:
        opt = _OPTIMIZERS[model] = PlantedOptimizer(model.parameters())
    out = model(inputs)
    loss = out.sum()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

"""Mixture-of-experts models: the expert weights, the router's outputs and the routing assumption.

Routing is data-dependent (which expert each token goes to). With transformers' grouped experts
(``torch._grouped_mm``), every routed token copy — tokens x top-k rows — is one tensor whatever the
routing, so memory does not depend on how many tokens each expert gets; a fake trace (no values)
and a real run allocate the same. Models that loop over experts with per-expert index tensors do
depend on it: a fake trace answers those sizes by the fake recorder's assumptions, which the profile
lists. The note this module writes says which of the two the model is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from memadvise.model.expert_load import ExpertLoad
from memadvise.model.profile import Profile

_EXPERT_COUNT = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOP_K = ("num_experts_per_tok", "top_k", "moe_top_k")


# Module types that hold a mixture-of-experts layer: transformers' ``*Experts`` (the expert weights and
# their loop), ``*SparseMoeBlock``, ``*MoE``/``*MoELayer``, Switch Transformers' ``*SparseMLP``.
_EXPERT_BLOCK = re.compile(r"(experts|moe|moeblock|moelayer)$|sparsemoe|sparsemlp|mixtureofexperts")


def _first_int(owner: object, names: tuple[str, ...]) -> int | None:
    return next((getattr(owner, n) for n in names if isinstance(getattr(owner, n, None), int)), None)


def _grouped(config: object) -> bool:
    return getattr(config, "_experts_implementation", None) in ("grouped_mm", "batched_mm")


def expert_blocks(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Qualified names of the modules that hold an expert layer, with their expert count and top-k
    (the module's own attributes, else the model config's); blocks whose counts are unknown are left out."""
    config = getattr(model, "config", None)
    blocks = {}
    for name, module in model.named_modules():
        if not _EXPERT_BLOCK.search(type(module).__name__.lower()):
            continue
        experts = _first_int(module, _EXPERT_COUNT) or _first_int(config, _EXPERT_COUNT)
        top_k = _first_int(module, _TOP_K) or _first_int(config, _TOP_K) or 1
        if experts and experts > 1:
            blocks[name] = (experts, min(top_k, experts))
    return blocks


class ExpertRouting:
    """The routed rows of a fake trace's per-expert selections, from an :class:`ExpertLoad`.

    A selection (``nonzero``, ``argwhere``, ``masked_select``; ``torch.where(mask)`` is ``nonzero``)
    whose mask has no known values, run inside an expert block, is routing: a 1-D mask of ``experts``
    (or ``experts + 1``) entries, first in the block's call, is the "which experts got tokens" vector
    (transformers' eager experts): it selects the experts with rows, numbered busiest first. Any other
    is one expert's mask: the n-th in the block's call is the n-th busiest expert's. Its tokens are the
    block's tokens (its first floating-point input's rows: ``(batch, seq, hidden)`` or ``(tokens,
    hidden)``) when the mask holds that many elements, or that many times top-k; otherwise the mask's
    elements, over top-k when one of its dimensions is the top-k slot. Selections outside expert blocks
    keep the fake recorder's own assumption.
    """

    def __init__(self, blocks: dict[str, tuple[int, int]], load: ExpertLoad) -> None:
        self.blocks = blocks
        self.load = load
        self._selections: dict[str, int] = {}
        self._tokens: dict[str, int | None] = {}
        for experts, top_k in set(blocks.values()):
            load.check(experts, top_k)

    def install(self, model: torch.nn.Module) -> list[Any]:
        """Forward pre-hooks on the expert blocks (their handles, for the caller to remove): each call
        of a block routes its tokens afresh."""
        handles = []
        for name, module in model.named_modules():
            if name in self.blocks:
                handles.append(module.register_forward_pre_hook(self._entered(name), with_kwargs=True))
        return handles

    def _entered(self, name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
            self.entered(name, next((_rows(a) for a in (*args, *kwargs.values()) if _rows(a)), None))

        return hook

    def entered(self, module: str, tokens: int | None = None) -> None:
        """An expert block's forward starts, on ``tokens`` tokens (``None``: not known)."""
        self._selections[module] = 0
        self._tokens[module] = tokens

    def selected(self, stack: list[str], mask: tuple[int, ...]) -> tuple[int, list[int] | None, str] | None:
        """Rows a selection by ``mask`` returns inside the innermost expert block of ``stack``, the
        selected values when they are known (expert numbers), and the assumption in words; ``None``
        outside expert blocks."""
        block = next((name for name in reversed(stack) if name in self.blocks), None)
        if block is None:
            return None
        experts, top_k = self.blocks[block]
        n = self._selections.get(block, 0)
        size = math.prod(mask)
        known = self._tokens.get(block)
        if len(mask) == 1 and size in (experts, experts + 1) and n == 0 and size not in (known, None):
            rows_of = self.load.rows(known or experts, experts, top_k)
            hit = sum(1 for r in rows_of if r)
            return hit, list(range(hit)), f"experts with tokens: {hit} of {experts}"
        self._selections[block] = n + 1
        if known and size in (known, known * top_k):
            tokens = known
        else:
            tokens = size // top_k if top_k > 1 and top_k in mask and size % top_k == 0 else size
        rows = self.load.rows(tokens, experts, top_k)[n % experts]
        return rows, None, f"rows per expert by --expert-load {self.load} ({experts} experts, top-{top_k})"


def _rows(value: Any) -> int | None:
    """Rows of a floating-point tensor of two or more dimensions (tokens of hidden states)."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 2 and value.shape[-1]:
        return value.numel() // value.shape[-1]
    return None


def expert_routing(model: torch.nn.Module, load: ExpertLoad) -> ExpertRouting | None:
    """The routing a fake trace of ``model`` assumes; ``None`` without expert blocks, or with grouped
    experts (whose memory does not depend on routing)."""
    if _grouped(getattr(model, "config", None)):
        return None
    blocks = expert_blocks(model)
    return ExpertRouting(blocks, load) if blocks else None


def moe_note(model: torch.nn.Module, profile: Profile, load: ExpertLoad | None = None) -> str | None:
    """One line on the model's experts (``None`` for a model without experts); ``load`` is a fake
    trace's routing assumption."""
    config = getattr(model, "config", None)
    blocks = expert_blocks(model)
    experts = _first_int(config, _EXPERT_COUNT) or next((e for e, _ in blocks.values()), None)
    if not experts:
        return None
    top_k = _first_int(config, _TOP_K) or next((k for _, k in blocks.values()), None)
    expert_params: dict[int, torch.Tensor] = {}  # transformers' *Experts, or a block's "experts" list
    for module in model.modules():
        held = module if type(module).__name__.endswith("Experts") else getattr(module, "experts", None)
        if isinstance(held, torch.nn.Module):
            expert_params.update((id(p), p) for p in held.parameters(recurse=True))
    expert_bytes = sum(p.numel() * p.element_size() for p in expert_params.values())
    routers = [
        name
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in ("gate", "router") and isinstance(module, torch.nn.Module)
    ]
    outputs = {layer.name: layer.output_bytes for layer in profile.layers}
    router_bytes = sum(outputs.get(name, 0) for name in routers)
    if _grouped(config):
        routing = (
            "memory does not depend on tokens per expert (grouped experts: tokens x top-k rows in one tensor)"
        )
        if load is not None:
            routing += f"; --expert-load {load} has no effect"
    elif load is None:
        routing = "per-expert sizes depend on routing; this real run used the router's actual choices"
    else:
        routing = (
            f"per-expert sizes depend on routing; this fake trace assumed --expert-load {load.describe()}"
        )
    return (
        f"mixture of experts: {experts} experts, top-{top_k}; expert weights {expert_bytes:,} bytes; "
        f"router outputs {router_bytes:,} bytes per step ({len(routers)} routers); {routing}"
    )

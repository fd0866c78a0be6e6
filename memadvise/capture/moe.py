"""Mixture-of-experts models: the expert weights, the router's outputs and the routing assumption.

Routing is data-dependent (which expert each token goes to). With transformers' grouped experts
(``torch._grouped_mm``), every routed token copy — tokens x top-k rows — is one tensor whatever the
routing, so memory does not depend on how many tokens each expert gets; a fake trace (no values)
and a real run allocate the same. Models that loop over experts with per-expert index tensors do
depend on it: a fake trace answers those sizes by the fake recorder's assumptions, which the profile
lists. The note this module writes says which of the two the model is.
"""

from __future__ import annotations

import torch

from memadvise.model.profile import Profile

_EXPERT_COUNT = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOP_K = ("num_experts_per_tok", "top_k", "moe_top_k")


def moe_note(model: torch.nn.Module, profile: Profile) -> str | None:
    """One line on the model's experts (``None`` for a model without experts)."""
    config = getattr(model, "config", None)
    experts = next(
        (getattr(config, n) for n in _EXPERT_COUNT if isinstance(getattr(config, n, None), int)), None
    )
    if not experts:
        return None
    top_k = next((getattr(config, n) for n in _TOP_K if isinstance(getattr(config, n, None), int)), None)
    expert_bytes = 0
    for module in model.modules():
        if type(module).__name__.endswith("Experts"):
            expert_bytes += sum(p.numel() * p.element_size() for p in module.parameters(recurse=True))
    routers = [
        name
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in ("gate", "router") and isinstance(module, torch.nn.Module)
    ]
    outputs = {layer.name: layer.output_bytes for layer in profile.layers}
    router_bytes = sum(outputs.get(name, 0) for name in routers)
    grouped = getattr(config, "_experts_implementation", None) in ("grouped_mm", "batched_mm")
    routing = (
        "memory does not depend on tokens per expert (grouped experts: tokens x top-k rows in one tensor)"
        if grouped
        else "per-expert sizes depend on routing; a fake trace answers them by its stated assumptions"
    )
    return (
        f"mixture of experts: {experts} experts, top-{top_k}; expert weights {expert_bytes:,} bytes; "
        f"router outputs {router_bytes:,} bytes per step ({len(routers)} routers); {routing}"
    )

"""Tiny Mixtral with transformers' eager experts (a Python loop over experts, per-expert index tensors),
4 experts, top-2, 1 layer, random weights; its routers are forced to a known routing.

Each layer's router adds a fixed score table to zero logits, so which experts each token goes to is set
by the file, not by the random weights — while a fake trace, which has no values, cannot see it.
``build_model`` spreads tokens evenly (round-robin: every expert gets tokens x top-k / experts rows),
``build_worst`` sends every token to experts 0 and 1, ``build_skewed`` gives expert 0 56 of every 128
routed rows (7/16) and the other three 24 each. The expert layers are wide and the rest small, so the
per-expert activations are a large part of the peak.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import MixtralConfig, MixtralForCausalLM

VOCAB = 128
EXPERTS = 4
TOP_K = 2
TOKENS = 64  # the routing table's period: a batch of N tokens (a multiple of it) repeats it N / 64 times


class ForcedRouter(nn.Module):
    """Mixtral's top-k router whose choice is a fixed table (one row per token position, one column per
    expert; batches of N tokens, a multiple of its rows, repeat it)."""

    def __init__(self, hidden: int, table: torch.Tensor, top_k: int = TOP_K) -> None:
        super().__init__()
        self.top_k = top_k
        self.num_experts = table.shape[1]
        self.weight = nn.Parameter(torch.zeros(self.num_experts, hidden))
        self.register_buffer("table", table)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden_states = hidden_states.reshape(-1, self.weight.shape[1])
        table = self.table.repeat(hidden_states.shape[0] // self.table.shape[0], 1).to(hidden_states.dtype)
        logits = nn.functional.linear(hidden_states, self.weight) + table
        probs = torch.softmax(logits.float(), dim=-1)
        top_value, top_index = torch.topk(probs, self.top_k, dim=-1)
        top_value /= top_value.sum(dim=-1, keepdim=True)
        return logits, top_value.to(hidden_states.dtype), top_index


def routing_table(loads: list[int], tokens: int = TOKENS, top_k: int = TOP_K) -> torch.Tensor:
    """Scores that route ``loads[e]`` of every ``tokens`` tokens to expert ``e`` (each token to
    ``top_k`` different experts): each token takes the experts with the most rows still to fill."""
    experts = len(loads)
    left = list(loads)
    table = torch.zeros(tokens, experts)
    for t in range(tokens):
        chosen = sorted(range(experts), key=lambda e: (-left[e], (e - t) % experts))[:top_k]
        for rank, e in enumerate(chosen):
            left[e] -= 1
            table[t, e] = 20.0 - rank  # far above the (zero) learned logits
    assert all(n == 0 for n in left), "loads must sum to tokens x top-k, none above tokens"
    return table


def build_routed(
    loads: list[int],
    *,
    vocab: int = VOCAB,
    hidden: int = 32,
    intermediate: int = 256,
    layers: int = 1,
    heads: int = 2,
    kv_heads: int = 1,
    top_k: int = TOP_K,
    tokens: int = TOKENS,
    positions: int = 256,
    attention: str = "eager",
) -> torch.nn.Module:
    """A Mixtral with eager experts whose routers send ``loads[e]`` of every ``tokens`` tokens to expert
    ``e`` (``len(loads)`` experts, each token to ``top_k`` of them); this file's model by default."""
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        num_local_experts=len(loads),
        num_experts_per_tok=top_k,
        max_position_embeddings=positions,
        experts_implementation="eager",
    )
    config._attn_implementation = attention
    model = MixtralForCausalLM(config)
    for layer in model.model.layers:
        layer.mlp.gate = ForcedRouter(config.hidden_size, routing_table(loads, tokens, top_k), top_k)
    return model


def build_model() -> torch.nn.Module:
    return build_routed([TOKENS * TOP_K // EXPERTS] * EXPERTS)


def build_worst() -> torch.nn.Module:
    return build_routed([TOKENS] * TOP_K + [0] * (EXPERTS - TOP_K))


def build_skewed() -> torch.nn.Module:
    return build_routed([56, 24, 24, 24])


def example_inputs(batch_size: int, seq_len: int = 32) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch_size, seq_len))
    return {"input_ids": ids, "labels": ids}

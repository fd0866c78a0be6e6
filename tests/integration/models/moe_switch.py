"""A hand-written Switch-style mixture of experts (top-1, 4 experts, one MLP module per expert) that loops
over its experts with per-expert index tensors (``nonzero`` of the router's mask, ``index_select``,
``index_copy``), after a token filter outside the expert block (the tokens whose ``x.abs().sum(-1) >= 0``:
every finite token, found with ``nonzero`` too).

Its router adds a fixed score table to zero logits: ``build_model`` sends token t to expert t mod 4 (every
expert gets a quarter of the tokens), ``build_worst`` sends every token to expert 0.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 64
HIDDEN = 32
INNER = 512
EXPERTS = 4
PERIOD = 16  # the routing table's period in tokens (a batch holds a multiple of it)


class Expert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(HIDDEN, INNER)
        self.fc2 = nn.Linear(INNER, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class SwitchSparseMLP(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.num_experts = EXPERTS
        self.top_k = 1
        self.router = nn.Linear(HIDDEN, EXPERTS, bias=False)
        nn.init.zeros_(self.router.weight)
        self.register_buffer("table", table)
        self.experts = nn.ModuleList(Expert() for _ in range(EXPERTS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.router(x) + self.table.repeat(x.shape[0] // PERIOD, 1)
        router_mask = nn.functional.one_hot(logits.argmax(dim=-1), EXPERTS)
        out = x.clone()
        for e, expert in enumerate(self.experts):
            rows = torch.nonzero(router_mask[:, e]).squeeze(-1)
            out = out.index_copy(0, rows, expert(x.index_select(0, rows)))
        return out


class SwitchModel(nn.Module):
    def __init__(self, experts_of_token: list[int]) -> None:
        super().__init__()
        table = torch.zeros(PERIOD, EXPERTS)
        for t, e in enumerate(experts_of_token):
            table[t, e] = 10.0
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.moe = SwitchSparseMLP(table)
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).reshape(-1, HIDDEN)
        x = x.index_select(0, torch.nonzero(x.abs().sum(-1) >= 0).squeeze(-1))  # not routing: every token
        return self.head(self.moe(x))


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return SwitchModel([t % EXPERTS for t in range(PERIOD)])


def build_worst() -> torch.nn.Module:
    torch.manual_seed(0)
    return SwitchModel([0] * PERIOD)


def example_inputs(batch_size: int, seq_len: int = 64) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (batch_size, seq_len))

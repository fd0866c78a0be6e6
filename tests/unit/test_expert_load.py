"""``--expert-load``: its syntax, the rows per expert each assumption gives (closed forms), and how a fake
trace tells a routing selection from other selections."""

from __future__ import annotations

import pytest

from memadvise.capture.moe import ExpertRouting
from memadvise.errors import UsageError
from memadvise.model.expert_load import ExpertLoad, LoadKind, parse_expert_load


@pytest.mark.parametrize(
    ("text", "kind", "fraction"),
    [
        (None, LoadKind.UNIFORM, None),
        ("uniform", LoadKind.UNIFORM, None),
        (" Worst ", LoadKind.WORST, None),
        ("skewed:0.5", LoadKind.SKEWED, 0.5),
        ("skewed:40%", LoadKind.SKEWED, 0.4),
        ("skewed:1", LoadKind.SKEWED, 1.0),
    ],
)
def test_parse(text: str | None, kind: LoadKind, fraction: float | None) -> None:
    load = parse_expert_load(text)
    assert load.kind is kind and load.fraction == pytest.approx(fraction)


@pytest.mark.parametrize(
    "text",
    ["busy", "", "skewed", "skewed:", "skewed:0", "skewed:-0.1", "skewed:1.5", "skewed:x", "skewed:nan"]
    + ["uniform:0.5", "worst:1", "skewed:150%"],
)
def test_bad_values_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_expert_load(text)
    assert "\n" not in str(info.value) and "expert-load" in str(info.value)


@pytest.mark.parametrize("text", ["uniform", "worst", "skewed:0.3", "skewed:0.5"])
@pytest.mark.parametrize(("tokens", "experts", "top_k"), [(64, 4, 2), (10, 8, 2), (7, 3, 1), (100, 8, 8)])
def test_rows_route_every_token_copy_and_no_expert_gets_a_token_twice(
    text: str, tokens: int, experts: int, top_k: int
) -> None:
    load = parse_expert_load(text)
    if load.fraction is not None and not 1 / experts <= load.fraction <= 1 / top_k:
        return
    rows = load.rows(tokens, experts, top_k)
    assert len(rows) == experts and sum(rows) == tokens * top_k
    assert max(rows) <= tokens and rows == sorted(rows, reverse=True)


def test_rows_closed_forms() -> None:
    assert ExpertLoad().rows(64, 4, 2) == [32, 32, 32, 32]
    assert ExpertLoad().rows(10, 4, 1) == [3, 3, 2, 2]
    assert parse_expert_load("worst").rows(64, 4, 2) == [64, 64, 0, 0]
    assert parse_expert_load("skewed:0.4375").rows(64, 4, 2) == [56, 24, 24, 24]
    assert parse_expert_load("skewed:0.5").rows(64, 4, 2) == [64, 22, 21, 21]


def test_skews_the_routing_cannot_produce_are_refused() -> None:
    with pytest.raises(UsageError, match="at most 1/2"):
        ExpertRouting({"moe": (4, 2)}, parse_expert_load("skewed:0.8"))
    with pytest.raises(UsageError, match="at least 1/4"):
        ExpertRouting({"moe": (4, 2)}, parse_expert_load("skewed:0.1"))


def test_selections_in_an_expert_block() -> None:
    routing = ExpertRouting({"layers.0.mlp": (4, 2)}, parse_expert_load("skewed:0.4375"))
    stack = ["layers.0", "layers.0.mlp"]
    assert routing.selected(["layers.0"], (64, 2)) is None  # outside the block: not routing
    routing.entered("layers.0.mlp")
    hit = routing.selected(stack, (5,))  # which experts got tokens (experts + 1 entries)
    assert hit is not None and hit[:2] == (4, [0, 1, 2, 3])
    # one mask per expert, (top-k, tokens) as transformers' eager experts, then (tokens, top-k)
    assert [routing.selected(stack, (2, 64))[0] for _ in range(2)] == [56, 24]  # type: ignore[index]
    assert [routing.selected(stack, (64, 2))[0] for _ in range(2)] == [24, 24]  # type: ignore[index]
    routing.entered("layers.0.mlp")  # the next call routes afresh
    assert routing.selected([*stack, "layers.0.mlp.act"], (2, 64))[0] == 56  # type: ignore[index]


def test_worst_hits_only_top_k_experts() -> None:
    routing = ExpertRouting({"moe": (8, 2)}, parse_expert_load("worst"))
    routing.entered("moe")
    assert routing.selected(["moe"], (8,))[:2] == (2, [0, 1])  # type: ignore[index]
    assert [routing.selected(["moe"], (32,))[0] for _ in range(3)] == [32, 32, 0]  # type: ignore[index]


def test_the_block_tokens_decide_what_a_mask_covers() -> None:
    """A top-2 block on a batch of 2 x 32 tokens: a per-token (batch, seq) mask is not (top-k, tokens)."""
    routing = ExpertRouting({"moe": (4, 2)}, parse_expert_load("worst"))
    routing.entered("moe", 64)
    assert routing.selected(["moe"], (2, 32))[0] == 64  # type: ignore[index]
    assert routing.selected(["moe"], (64, 2))[0] == 64  # type: ignore[index]
    routing.entered("moe", 1)  # one token (a decode step): worst and uniform both hit top-k experts
    assert routing.selected(["moe"], (5,))[:2] == (2, [0, 1])  # type: ignore[index]
    uniform = ExpertRouting({"moe": (8, 2)}, parse_expert_load("uniform"))
    uniform.entered("moe", 1)
    assert uniform.selected(["moe"], (9,))[:2] == (2, [0, 1])  # type: ignore[index]

"""The KV cache formula, the layouts read from configs, and the generation what-ifs on hand-built
figures (no model runs)."""

from __future__ import annotations

import pytest
import torch
from hand_built import hand_built_generation, hand_built_profile
from transformers import GPT2Config, LlamaConfig, MistralConfig

from memadvise.analyzer.kv_cache import GenerationScenario, estimate_generation, kv_bytes
from memadvise.capture.generate import kv_layout
from memadvise.errors import UsageError
from memadvise.model.generation import KVLayout
from memadvise.model.profile import Profile


class _WithConfig(torch.nn.Module):
    def __init__(self, config: object) -> None:
        super().__init__()
        self.config = config


def test_layouts_from_configs_name_mha_gqa_mqa_and_the_sliding_window() -> None:
    gpt2 = kv_layout(_WithConfig(GPT2Config(n_layer=3, n_head=4, n_embd=64)))
    assert gpt2 is not None and (gpt2.layers, gpt2.kv_heads, gpt2.head_dim, gpt2.attention) == (
        3,
        4,
        16,
        "MHA",
    )
    llama = kv_layout(
        _WithConfig(LlamaConfig(num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2))
    )
    assert llama is not None and (llama.kv_heads, llama.attention) == (2, "GQA")
    mqa = kv_layout(_WithConfig(LlamaConfig(num_attention_heads=8, num_key_value_heads=1)))
    assert mqa is not None and mqa.attention == "MQA"
    mistral = kv_layout(_WithConfig(MistralConfig(num_hidden_layers=2, sliding_window=64)))
    assert mistral is not None and (mistral.sliding_window, mistral.sliding_layers) == (64, 2)
    assert kv_layout(torch.nn.Linear(2, 2)) is None


def test_formula_counts_keys_and_values_of_every_layer_and_caps_sliding_layers() -> None:
    dense = KVLayout(layers=4, heads=8, kv_heads=2, head_dim=16)
    assert kv_bytes(dense, batch=3, tokens=100, itemsize=2) == 2 * 4 * 2 * 16 * 100 * 3 * 2
    half_sliding = KVLayout(layers=4, heads=8, kv_heads=2, head_dim=16, sliding_window=10, sliding_layers=2)
    per_layer_token = 2 * 2 * 16 * 3 * 2
    assert kv_bytes(half_sliding, 3, 100, 2) == per_layer_token * (2 * 100 + 2 * 10)
    mla = KVLayout(
        layers=2, heads=8, kv_heads=8, head_dim=16, attention="MLA", kv_lora_rank=32, rope_head_dim=8
    )
    assert kv_bytes(mla, 1, 10, 2) == 2 * (32 + 8) * 10 * 2


def test_unchanged_scenario_gives_back_the_traced_peak() -> None:
    gen = hand_built_generation()
    est = estimate_generation(gen, 1, GenerationScenario())
    assert est.peak_bytes == max(gen.step_peak)
    assert est.peak_phase == "prefill"


def test_more_tokens_move_the_peak_to_decoding_with_the_cache_by_formula() -> None:
    gen = hand_built_generation()
    est = estimate_generation(gen, 1, GenerationScenario(new_tokens=1000, kv_dtype="fp8"))
    # last decode step: weights + the cache before it (1008 tokens at 8 B) + its planted 20 B rise, or
    # one layer's keys at the new length (1009 tokens · 4 values · 1 byte), whichever is larger
    assert est.peak_phase == "decode"
    assert est.decode_peak_bytes == 1000 + 8 * 1008 + max(20, 1009 * 4)
    assert est.kv_cache_bytes == 8 * 1010


def test_unknown_kv_dtype_and_cache_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        estimate_generation(hand_built_generation(), 1, GenerationScenario(kv_dtype="fp6"))
    with pytest.raises(UsageError):
        GenerationScenario(cache="paged")


def test_profiles_saved_before_generation_fields_still_read() -> None:
    data = hand_built_profile().to_dict()
    del data["kv_cache_bytes"], data["generation"]
    loaded = Profile.from_dict(data)
    assert loaded.kv_cache_bytes == 0 and loaded.generation is None


def _generation_profile() -> Profile:
    from dataclasses import replace

    return replace(hand_built_profile(), batch_size=1, mode="generate", generation=hand_built_generation())


def test_serving_plan_keeps_the_largest_batch_that_fits() -> None:
    from memadvise.planner.budget import budget_for
    from memadvise.planner.serving import plan_serving

    profile = _generation_profile()
    budget = budget_for("200000", reserve=0)
    plan = plan_serving(profile, budget, prompt_len=100, new_tokens=100, weights="bf16")
    assert plan.max_batch is not None and plan.max_batch >= 1
    assert plan.peak_bytes <= budget.usable_bytes

    def peak(batch: int) -> int:
        scenario = GenerationScenario(batch, 100, 100, "bf16", None, 2.0)
        return estimate_generation(profile.generation, 1, scenario).peak_bytes  # type: ignore[arg-type]

    assert peak(plan.max_batch) <= budget.usable_bytes < peak(plan.max_batch + 1)
    longest = plan_serving(profile, budget, prompt_len=100, batch_size=plan.max_batch, weights="int4")
    assert longest.max_context is not None and longest.max_context > 200  # lighter weights: longer context

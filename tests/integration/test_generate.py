"""Generation (``--mode generate``) against independent measurements.

The truth is tests/groundtruth.py's ``measure_generate_peak``: a plain greedy ``model.generate`` under
torch.profiler's allocator events, sharing no code with memadvise. The KV cache is checked against
the closed-form 2 · layers · kv_heads · head_dim · tokens · batch · itemsize, with the sizes read here
from the model's config. Models: a GPT-2 (multi-head attention) and a Llama (grouped-query attention),
two layers each, random weights.
"""

from __future__ import annotations

import functools
from pathlib import Path

import groundtruth
import pytest

from memadvise.analyzer.kv_cache import GenerationScenario, estimate_generation
from memadvise.api import profile_file
from memadvise.model.profile import Profile

MODELS = Path(__file__).parent / "models"
FILES = {"gpt2-mha": MODELS / "gen_gpt2.py", "llama-gqa": MODELS / "gen_llama.py"}
MAX_PEAK_ERROR = 0.02
MAX_ESTIMATE_ERROR = 0.03

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]


@functools.cache
def truth(name: str, batch: int, new_tokens: int, prompt: int | None = None) -> int:
    return groundtruth.measure_generate_peak(FILES[name], batch, new_tokens, seq_len=prompt).peak_bytes


@functools.cache
def traced(name: str, batch: int, new_tokens: int, scaling: bool = False, fake: bool = False) -> Profile:
    return profile_file(
        FILES[name],
        batch_size=batch,
        mode="generate",
        new_tokens=new_tokens,
        device="meta" if fake else "cpu",
        target_device="cpu" if fake else None,
        scaling=scaling,
    )


def closed_form_kv(name: str, batch: int, tokens: int) -> int:
    """2 · layers · kv_heads · head_dim · tokens · batch · 4 (fp32), from the config of a fresh model."""
    model = groundtruth.load_model_file(FILES[name]).build_model()
    c = model.config
    layers = getattr(c, "num_hidden_layers", None) or c.n_layer
    heads = getattr(c, "num_attention_heads", None) or c.n_head
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    hidden = getattr(c, "hidden_size", None) or c.n_embd
    return 2 * layers * kv_heads * (hidden // heads) * tokens * batch * 4


@pytest.mark.parametrize("name", sorted(FILES))
def test_generate_peak_matches_a_plain_generate_run(name: str) -> None:
    prof = traced(name, 2, 8)
    real = truth(name, 2, 8)
    assert abs(prof.peak_bytes - real) / real <= MAX_PEAK_ERROR
    assert prof.peak_phase in ("prefill", "decode")
    assert set(prof.timeline.phase) >= {"prefill", "decode"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_kv_cache_bytes_follow_the_formula_and_the_cache_tensors(name: str) -> None:
    prof = traced(name, 2, 8)
    gen = prof.generation
    assert gen is not None
    prompt = gen.prompt_len
    assert prof.kv_cache_bytes == closed_form_kv(name, 2, prompt + 8)
    # the cache object after the last forward holds prompt + 7 tokens: the last token is never fed back
    assert gen.kv_traced_tokens == prompt + 7
    assert gen.kv_traced_bytes == closed_form_kv(name, 2, prompt + 7)
    # one entry per forward pass, growing by one token's keys and values per decode step
    assert len(gen.step_kv) == 8
    step = closed_form_kv(name, 2, 1)
    assert [b - a for a, b in zip(gen.step_kv, gen.step_kv[1:], strict=False)] == [step] * 7


def test_estimate_from_batch_2_and_32_tokens_to_batch_8_and_128_tokens() -> None:
    name = "llama-gqa"
    prof = traced(name, 2, 32, scaling=True)
    assert prof.generation is not None
    est = estimate_generation(prof.generation, 2, GenerationScenario(batch_size=8, new_tokens=128))
    real = truth(name, 8, 128)
    assert abs(est.peak_bytes - real) / real <= MAX_ESTIMATE_ERROR


@pytest.mark.parametrize("name", sorted(FILES))
def test_estimate_to_a_four_times_longer_prompt(name: str) -> None:
    """From a 16-token prompt at batch 2 to a 64-token prompt at batch 8: the prefill's transients grow
    linearly with the prompt, and eager attention's scores (the GPT-2 here) with its square."""
    prof = traced(name, 2, 32, scaling=True)
    assert prof.generation is not None and prof.generation.prompt_len == 16
    est = estimate_generation(
        prof.generation, 2, GenerationScenario(batch_size=8, new_tokens=16, prompt_len=64)
    )
    real = truth(name, 8, 16, 64)
    assert abs(est.peak_bytes - real) / real <= MAX_ESTIMATE_ERROR


def test_fake_generate_on_cpu_kernels_matches_the_real_run() -> None:
    fake = traced("llama-gqa", 2, 8, fake=True)
    real = truth("llama-gqa", 2, 8)
    assert fake.trace == "fake"
    assert abs(fake.peak_bytes - real) / real <= MAX_PEAK_ERROR
    assert fake.generation is not None and len(fake.generation.step_kv) == 8


def test_profile_model_generates_and_leaves_the_model_as_it_was() -> None:
    from memadvise.api import profile_model

    module = groundtruth.load_model_file(FILES["llama-gqa"])
    model = module.build_model()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attributes = set(vars(model))
    prof = profile_model(model, module.example_inputs(2), mode="generate", new_tokens=4)
    assert prof.kv_cache_bytes == closed_form_kv("llama-gqa", 2, 16 + 4)
    assert model.training and set(vars(model)) == attributes
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert all(v.equal(before[k]) for k, v in model.state_dict().items())

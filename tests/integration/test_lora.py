"""LoRA and low-rank factorisation against real runs.

A PEFT model (``get_peft_model``) is traced as it is, real and fake, and compared with the independent
ground truth (tests/groundtruth.py) of the same run. ``estimate --lora`` from the full model's profile
is compared with the ground truth of the PEFT model; ``estimate --low-rank`` with the ground truth of a
model whose target weights really are two ``nn.Linear`` factors. Every comparison is printed.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import groundtruth as gt  # tests/ is on sys.path (tests/conftest.py)
import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from memadvise.analyzer import Lora, LowRank, Scenario, estimate
from memadvise.api import profile_file
from memadvise.model.profile import Profile
from memadvise.model.scenario import parse_precision

pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "tests" / "zoo"
PEFT_FILE = Path(__file__).resolve().parent / "models" / "peft_lora.py"
PEFT = gt.load_model_file(PEFT_FILE)
BATCH = 2

pytestmark = pytest.mark.usefixtures("single_thread")


def _targets(text: str) -> Any:
    return "all-linear" if text == "all-linear" else text.split(",")


@functools.cache
def _full(name: str, precision: str = "fp32") -> Profile:
    path = str(ZOO / f"{name}.py")
    return profile_file(path, batch_size=BATCH, device="cpu", scaling=False, precision=precision)


@functools.cache
def _lora_truth(name: str, targets: str, dropout: float = 0.0, precision: str = "fp32") -> int:
    transform = functools.partial(PEFT.lora, targets=_targets(targets), dropout=dropout)
    path = ZOO / f"{name}.py"
    return gt.measure_peak(path, BATCH, transform=transform, precision=precision).peak_bytes


def _check(label: str, predicted: int, truth: int, tolerance: float) -> None:
    error = predicted / truth - 1
    print(f"{label:45s} estimate {predicted:>11,}  real {truth:>11,}  {error:+.2%}")
    assert abs(error) <= tolerance, f"{label}: {error:+.2%} off (tolerance {tolerance:.1%})"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("factory", "name", "targets"),
    [("build_model", "gpt2", "c_attn"), ("build_llama", "llama_gqa", "q_proj,v_proj")],
)
def test_peft_model_is_traced_as_it_is(factory: str, name: str, targets: str) -> None:
    traced = profile_file(f"{PEFT_FILE}:{factory}", batch_size=BATCH, device="cpu", scaling=False)
    _check(f"PEFT {name} {targets} traced", traced.peak_bytes, _lora_truth(name, targets), 0.005)
    # The frozen base has no gradients: only the adapters do.
    model = getattr(PEFT, factory)()
    assert traced.grad_bytes == sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n
    )


@pytest.mark.slow
def test_peft_model_fake_trace_on_cpu_kernels() -> None:
    fake = profile_file(str(PEFT_FILE), batch_size=BATCH, device="meta", target_device="cpu", scaling=False)
    _check("PEFT gpt2 c_attn fake (CPU kernels)", fake.peak_bytes, _lora_truth("gpt2", "c_attn"), 0.005)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "targets", "dropout", "precision"),
    [
        ("gpt2", "c_attn", 0.0, "fp32"),
        ("gpt2", "all-linear", 0.0, "fp32"),
        ("llama_gqa", "q_proj,v_proj", 0.0, "fp32"),
        ("llama_gqa", "all-linear", 0.0, "fp32"),
        ("llama_gqa", "q_proj,v_proj", 0.1, "fp32"),
        ("gpt2", "all-linear", 0.1, "fp32"),
        ("gpt2", "c_attn,lm_head", 0.0, "fp32"),  # the output head, its weight tied to the embedding
        ("gpt2", "c_attn", 0.0, "bf16-mixed"),
        ("llama_gqa", "all-linear", 0.0, "bf16-mixed"),
        ("llama_gqa", "all-linear", 0.0, "bf16"),
        ("gpt2", "c_attn", 0.0, "traced bf16-mixed"),
        ("llama_gqa", "q_proj,v_proj", 0.0, "traced bf16-mixed"),
    ],
)
def test_lora_estimate_from_the_full_profile(name: str, targets: str, dropout: float, precision: str) -> None:
    """From an fp32 profile (the precision estimated too), or from one traced under autocast."""
    traced = precision.startswith("traced ")
    precision = precision.removeprefix("traced ")
    scenario = Scenario(
        lora=Lora.parse(8, targets, dropout), precision=None if traced else parse_precision(precision)
    )
    result = estimate(_full(name, precision if traced else "fp32"), scenario)
    truth = _lora_truth(name, targets, dropout, precision)
    label = f"{name} --lora 8 {targets} dropout {dropout:g} {'traced ' if traced else ''}{precision}"
    _check(label, result.peak_bytes, truth, 0.03)
    # The adapters' bytes are those of the real PEFT model's lora_A and lora_B weights (cast with the
    # model in a pure 16-bit run, fp32 master weights under autocast).
    real = PEFT.lora(gt.load_model_file(ZOO / f"{name}.py").build_model(), _targets(targets), dropout)
    if precision == "bf16":
        real = real.to(torch.bfloat16)
    assert result.lora is not None
    assert result.lora.adapter_param_bytes == sum(
        p.numel() * p.element_size() for n, p in real.named_parameters() if "lora_" in n
    )


def _factorise(model: nn.Module, suffixes: tuple[str, ...] | None, rank: float) -> nn.Module:
    """Every chosen ``nn.Linear`` or transformers ``Conv1D`` (all but ``lm_head`` when ``suffixes`` is
    None) as two ``nn.Linear``."""
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full = f"{parent_name}.{name}" if parent_name else name
            chosen = name != "lm_head" if suffixes is None else full.endswith(suffixes)
            if type(child) is Conv1D and chosen:
                n, m = child.weight.shape  # Conv1D stores (in, out)
            elif type(child) is nn.Linear and chosen:
                m, n = child.out_features, child.in_features
            else:
                continue
            r = int(rank) if rank >= 1 else max(1, round(rank * min(m, n)))
            factors = nn.Sequential(nn.Linear(n, r, bias=False), nn.Linear(r, m, bias=child.bias is not None))
            setattr(parent, name, factors)
    return model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "suffixes", "text", "rank"),
    [
        ("llama_gqa", None, "all-linear", "0.25"),
        ("llama_gqa", ("q_proj", "v_proj"), "q_proj,v_proj", "8"),
        ("gpt2", ("c_fc",), "c_fc", "0.25"),
    ],
)
def test_low_rank_estimate_against_a_factorised_model(
    name: str, suffixes: tuple[str, ...] | None, text: str, rank: str
) -> None:
    path = ZOO / f"{name}.py"
    transform = functools.partial(_factorise, suffixes=suffixes, rank=float(rank))
    truth = gt.measure_peak(path, BATCH, transform=transform).peak_bytes
    result = estimate(_full(name), Scenario(low_rank=LowRank.parse(rank, text)))
    _check(f"{name} --low-rank {rank} {text}", result.peak_bytes, truth, 0.03)
    # Factor weights as counted in the really factorised model.
    real = transform(gt.load_model_file(path).build_model())
    factors = [
        m for m in real.modules() if isinstance(m, nn.Sequential) and len(m) == 2 and m[0].bias is None
    ]
    assert result.low_rank is not None
    assert result.low_rank.factor_bytes == sum(
        4 * (f[0].weight.numel() + f[1].weight.numel()) for f in factors
    )
    for layer in result.low_rank.layers:  # below the break-even rank the factors are smaller
        assert (layer.factor_bytes < layer.weight_bytes) == (layer.rank < layer.break_even)
        assert math.isclose(layer.break_even * (layer.rows + layer.cols), layer.rows * layer.cols)

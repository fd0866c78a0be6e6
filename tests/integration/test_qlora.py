"""QLoRA against bitsandbytes itself, where its CPU kernels are installed (bitsandbytes >= 0.48 runs
4-bit layers on CPU; the test is skipped without it).

The NF4 storage memadvise counts is compared with the tensors ``bitsandbytes.functional.quantize_4bit``
returns, and ``estimate --lora 8 --precision nf4`` with the ground truth (tests/groundtruth.py) of a
real QLoRA step: the Llama test model in bf16 with every linear layer but ``lm_head`` a
``bitsandbytes.nn.Linear4bit`` (NF4, double quantisation, bf16 compute), LoRA from PEFT on top.
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

from memadvise.analyzer import Lora, Precision, Scenario, estimate
from memadvise.analyzer.lora import nf4_bytes
from memadvise.api import profile_file

bnb = pytest.importorskip("bitsandbytes")
peft = pytest.importorskip("peft")

ZOO = Path(__file__).resolve().parents[2] / "tests" / "zoo"
BATCH = 2

pytestmark = pytest.mark.usefixtures("single_thread")


def _stored_bytes(tensor: torch.Tensor, state: Any) -> int:
    """Bytes of a quantised weight and every tensor of its quant_state (nested state included)."""
    total = tensor.numel() * tensor.element_size()
    while state is not None:
        for t in (state.absmax, state.code, state.offset):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
        state = state.state2
    return total


@pytest.mark.parametrize("shape", [(256, 64), (4096, 4096), (11008, 4096), (100, 37)])
def test_nf4_bytes_are_those_bitsandbytes_stores(shape: tuple[int, int]) -> None:
    weight = torch.randn(*shape, dtype=torch.bfloat16)
    packed, state = bnb.functional.quantize_4bit(
        weight, blocksize=64, compress_statistics=True, quant_type="nf4"
    )
    assert nf4_bytes(math.prod(shape)) == _stored_bytes(packed, state)


def _qlora(model: nn.Module, targets: Any) -> nn.Module:
    """The model in bf16, its linear layers (but lm_head) 4-bit NF4, rank-8 LoRA adapters on ``targets``."""
    model = model.to(torch.bfloat16)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or name == "lm_head":
                continue
            quantised = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.bfloat16,
                compress_statistics=True,
                quant_type="nf4",
            )
            quantised.weight = bnb.nn.Params4bit(
                child.weight.data.float(), requires_grad=False, compress_statistics=True, quant_type="nf4"
            )
            setattr(parent, name, quantised.to("cpu"))
    return peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=targets))


@functools.cache
def _bf16_profile() -> Any:
    path = str(ZOO / "llama_gqa.py")
    return profile_file(path, batch_size=BATCH, device="cpu", scaling=False, precision="bf16")


@pytest.mark.slow
@pytest.mark.parametrize("targets", ["q_proj,v_proj", "all-linear"])
def test_qlora_estimate_against_a_bitsandbytes_run(targets: str) -> None:
    names = "all-linear" if targets == "all-linear" else targets.split(",")
    transform = functools.partial(_qlora, targets=names)
    truth = gt.measure_peak(ZOO / "llama_gqa.py", BATCH, transform=transform).peak_bytes
    predicted = estimate(_bf16_profile(), Scenario(lora=Lora.parse(8, targets), precision=Precision.NF4))
    error = predicted.peak_bytes / truth - 1
    print(
        f"llama_gqa QLoRA {targets:15s} estimate {predicted.peak_bytes:>11,}  real {truth:>11,}  {error:+.2%}"
    )
    assert abs(error) <= 0.03

"""Fake CUDA traces decide as PyTorch decides on the GPU: the attention kernel against the kernels an
H200 really ran (bench/results/gpu_h200.json, the kernel probe of bench/gpu_validate.py), the
optimizer's multi-tensor path, and CUDA's autocast lists on meta tensors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from memadvise.capture.cuda_target import (
    CudaTarget,
    EmulatedAutocast,
    cuda_optimizers,
    cuda_session,
    sdpa_backend,
)

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu_h200.json"
H200 = CudaTarget("H200", (9, 0), assumed=False)
A100 = CudaTarget("A100 80GB", (8, 0), assumed=False)
KERNELS = {
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_flash_attention": "flash",
}

# The attention calls of the measured models, as transformers and torchvision make them: (batch,
# query heads, key/value heads, length, head size), an explicit mask, grouped-query attention.
CALLS = {
    "gpt2-sdpa": ((8, 8, 8, 512, 64), False, False),
    "bert-sdpa": ((8, 8, 8, 512, 64), True, False),
    "llama-gqa": ((8, 8, 2, 512, 64), False, True),
    "vit": ((16, 6, 6, 197, 64), False, False),
}


def _ran_on_the_gpu(case: str) -> str:
    kernels = json.loads(RESULTS.read_text())["cases"][case].get("kernels") or {}
    ran = {KERNELS[k] for k in kernels if k in KERNELS}
    assert len(ran) <= 1, ran
    return ran.pop() if ran else "math"


@pytest.mark.parametrize("model", sorted(CALLS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_attention_kernel_is_the_one_the_h200_ran(model: str, precision: str) -> None:
    (b, hq, hk, n, d), masked, gqa = CALLS[model]
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    q = torch.empty(b, hq, n, d, dtype=dtype, device="meta")
    k = torch.empty(b, hk, n, d, dtype=dtype, device="meta")
    mask = torch.empty(b, 1, n, n, dtype=torch.bool, device="meta") if masked else None
    assert sdpa_backend(H200, q, k, k, mask, gqa) == _ran_on_the_gpu(f"{model}|train|{precision}")


def test_ampere_takes_flash_for_16_bit_without_a_mask_and_efficient_with_one() -> None:
    q = torch.empty(2, 4, 128, 64, dtype=torch.float16, device="meta")
    mask = torch.empty(2, 1, 128, 128, dtype=torch.bool, device="meta")
    assert sdpa_backend(A100, q, q, q, None, False) == "flash"
    assert sdpa_backend(A100, q, q, q, mask, False) == "efficient"
    assert sdpa_backend(A100, q.float(), q.float(), q.float(), None, False) == "efficient"


def _attention_saved_bytes(target: CudaTarget | None, dtype: torch.dtype) -> int:
    """Bytes saved for backward by one causal attention call on meta tensors, under a session for
    ``target`` (``None``: no session, so PyTorch's meta path, the math decomposition)."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage._cdata] = storage.nbytes()  # each storage once, however many tensors use it
        return t

    with cuda_session(target) if target else contextlib.nullcontext(), torch.device("meta"):
        q = torch.empty(2, 4, 256, 64, dtype=dtype, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
    return sum(saved.values())


def test_fused_attention_saves_no_probabilities() -> None:
    probs = 2 * 4 * 256 * 256 * 2  # the (batch, heads, n, n) bf16 matrix the math path keeps
    math = _attention_saved_bytes(None, torch.bfloat16)
    cudnn = _attention_saved_bytes(H200, torch.bfloat16)
    assert math >= probs
    assert cudnn < probs
    assert math - cudnn >= probs / 2


def test_optimizers_take_the_multi_tensor_path_on_a_cuda_target() -> None:
    seen: list[str] = []

    class Record(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with torch.device("meta"):
        lin = torch.nn.Linear(8, 8)
        lin(torch.empty(2, 8)).sum().backward()
    with cuda_optimizers(), Record():
        torch.optim.AdamW(lin.parameters()).step()
        torch.optim.AdamW(lin.parameters(), fused=True).step()
    assert "_foreach_sqrt" in seen or "_foreach_addcdiv_" in seen
    assert "_fused_adamw_" in seen
    seen.clear()
    with Record():  # outside a session, meta tensors take the per-parameter loop
        torch.optim.AdamW(lin.parameters()).step()
    assert not any(name.startswith("_foreach") for name in seen)


def test_emulated_autocast_follows_cudas_lists() -> None:
    with torch.device("meta"):
        lin = torch.nn.Linear(16, 16)
        x = torch.empty(4, 16)
        with EmulatedAutocast(torch.bfloat16):
            y = lin(x)
            z = torch.softmax(y, dim=-1)
            n = F.layer_norm(y, (16,))
            again = lin(x)
    assert y.dtype == torch.bfloat16 and again.dtype == torch.bfloat16
    assert z.dtype == torch.float32 and n.dtype == torch.float32

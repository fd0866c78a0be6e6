"""On a GPU: memadvise's CUDA peak against the caching allocator's own ``max_memory_allocated``.

Skipped where torch sees no CUDA device. The reference runs the same two training steps (PyTorch's
tutorial loop) with no memadvise code involved and reads ``torch.cuda.max_memory_allocated()`` after
resetting the peak. cuBLAS gives each thread that runs matmuls a handle with a workspace of its own
(32 MiB on Hopper) taken from the caching allocator once; both the main thread's and the autograd
engine's are created before the measurement, so neither counts in the reference nor in the trace.
`bench/gpu_validate.py` is the full comparison.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

import memadvise

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ROOT = Path(__file__).resolve().parents[2]
MODELS = [
    "tests/zoo/gpt2.py",
    "tests/zoo/resnet.py",
    "tests/zoo/lstm_lm.py",
    "tests/zoo/wide_mlp_optimizer_peak.py",
]


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"cuda_ref_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _to(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value


def _warm_cublas() -> None:
    a = torch.randn(64, 64, device="cuda", requires_grad=True)
    (a @ a).sum().backward()
    torch.cuda.synchronize()


def _reference_peak(path: Path, batch_size: int) -> int:
    module = _load(path)
    _warm_cublas()
    torch.manual_seed(0)
    model = module.build_model().to("cuda")
    inputs = _to(module.example_inputs(batch_size), "cuda")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    model.train()
    for _ in range(2):
        if isinstance(inputs, dict):
            out = model(**inputs)
        elif isinstance(inputs, (tuple, list)):
            out = model(*inputs)
        else:
            out = model(inputs)
        if hasattr(module, "loss_fn"):
            loss = module.loss_fn(out, inputs)
        elif getattr(out, "loss", None) is not None:
            loss = out.loss
        elif isinstance(out, (tuple, list)):
            loss = out[0].sum()
        elif getattr(out, "logits", None) is not None:
            loss = out.logits.sum()
        else:
            loss = out.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del model, inputs, opt
    torch.cuda.empty_cache()
    return int(peak)


@pytest.mark.gpu
@pytest.mark.parametrize("model_file", MODELS)
def test_cuda_peak_matches_max_memory_allocated(model_file: str) -> None:
    path = ROOT / model_file
    truth = _reference_peak(path, batch_size=4)
    prof = memadvise.profile_file(str(path), batch_size=4, device="cuda")
    error = (prof.peak_bytes - truth) / truth
    print(f"{model_file}: max_memory_allocated {truth:,} memadvise {prof.peak_bytes:,} error {error:+.3%}")
    assert abs(error) <= 0.02

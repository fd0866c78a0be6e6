"""Mixture-of-experts models trace fake: fp32 ``torch._grouped_mm`` (which its meta kernel refuses)
gets its output shape, and the fake trace on CPU kernels matches a real CPU run's allocator peak
(tests/groundtruth.py). The CUDA-target fake trace must run too (no real GPU to compare with here)."""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest
import torch

from memadvise.api import profile_file
from memadvise.capture.fake import grouped_mm_shape

MODELS = Path(__file__).parent / "models"
FILES = {"mixtral": MODELS / "moe_mixtral.py", "qwen2-moe": MODELS / "moe_qwen.py"}
MAX_FAKE_ERROR = 0.03

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    ("a", "b", "groups"),
    [((16, 8), (3, 8, 4), 3), ((3, 4, 16), (16, 8), 3), ((8, 16), (16, 4), 3), ((3, 4, 8), (3, 8, 4), None)],
)
def test_grouped_mm_shape_is_what_the_cpu_kernel_returns(
    a: tuple[int, ...], b: tuple[int, ...], groups: int | None
) -> None:
    offs = torch.tensor([4, 8, 16], dtype=torch.int32) if groups else None
    # the CPU kernel wants 16-byte aligned strides: the last dimensions are multiples of 4 floats
    out = torch._grouped_mm(torch.randn(a), torch.randn(b), offs=offs)
    assert grouped_mm_shape(a, b, groups) == tuple(out.shape)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FILES))
def test_fake_moe_trace_matches_the_real_cpu_run(name: str) -> None:
    real = groundtruth.measure_peak(FILES[name], 2, mode="inference").peak_bytes
    fake = profile_file(
        FILES[name], batch_size=2, mode="inference", device="meta", target_device="cpu", scaling=False
    )
    assert abs(fake.peak_bytes - real) / real <= MAX_FAKE_ERROR
    assert any("mixture of experts" in a for a in fake.assumptions)
    cuda = profile_file(FILES[name], batch_size=2, mode="inference", device="meta", scaling=False)
    assert cuda.peak_bytes > 0 and any("_grouped_mm" in a for a in cuda.assumptions)

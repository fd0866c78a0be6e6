"""The fake trace's rules for oneDNN's 16-bit kernels (memadvise/capture/kernel_buffers.py) against the
allocator events of the real kernels, one operator at a time, on shapes the rules were not fitted on.

The scratch-pad sizes were fitted on a CPU with AMX (bf16 tiles), one thread; elsewhere oneDNN runs other
kernels, so these checks only run there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from cpu_features import HAS_AMX
from torch.profiler import ProfilerActivity, profile

from memadvise.capture import kernel_buffers as kb

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(
        not (HAS_AMX and kb.onednn_16bit(torch.bfloat16)),
        reason="the 16-bit scratch-pad sizes were measured with oneDNN's AMX kernels",
    ),
]


def allocations(fn: Callable[[], Any]) -> list[int]:
    """Sizes of the allocator's allocations (not frees) while ``fn`` runs, in order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    assert prof.profiler is not None
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    return [int(e.nbytes()) for e in sorted(events, key=lambda e: e.start_ns()) if e.nbytes() > 0]


@pytest.mark.parametrize(("m", "k", "n"), [(4, 320, 200), (24, 96, 160), (48, 512, 64), (1, 200, 72)])
def test_linear_scratch_pad(m: int, k: int, n: int) -> None:
    """A bf16 linear layer's forward takes one scratch pad besides its output: the rule's size."""
    x, w = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(n, k, dtype=torch.bfloat16)
    with torch.no_grad():
        sizes = allocations(lambda: torch.nn.functional.linear(x, w))
    sizes.remove(m * n * 2)
    assert sizes == [kb.onednn_matmul16(x, w.t(), amx=True)]


DEPTHWISE_SHAPES = [(2, 64, 8, 7), (1, 160, 4, 5), (3, 32, 6, 7)]


@pytest.mark.parametrize(("batch", "channels", "size", "kernel"), DEPTHWISE_SHAPES)
def test_channels_last_depthwise_weight_gradient(batch: int, channels: int, size: int, kernel: int) -> None:
    """A bf16 depthwise convolution's backward on a channels-last input: the 256 weight copies and the
    scratch pad of their fp32 accumulators and rows, to the byte."""
    conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
    conv = conv.to(torch.bfloat16)
    x = torch.randn(batch, channels, size, size, dtype=torch.bfloat16)
    x = x.to(memory_format=torch.channels_last).requires_grad_(True)
    out = conv(x)
    grad = torch.randn_like(out)
    sizes = allocations(lambda: out.backward(grad))
    plan = kb.depthwise16_channels_last_backward(x, conv.weight)
    copies, scratch = plan.around_outputs[1:]
    assert copies in sizes
    assert scratch in sizes


@pytest.mark.parametrize(("channels", "out_channels", "size"), [(24, 40, 12), (80, 96, 6)])
def test_convolution_forward_copies(channels: int, out_channels: int, size: int) -> None:
    """A bf16 convolution on an NCHW input: the reordered input and (padded) weight and two output-sized
    copies besides the output, as the rule has them (the scratch pad is a fitted size, checked to 40%)."""
    conv = torch.nn.Conv2d(channels, out_channels, 3, padding=1).to(torch.bfloat16).eval()
    x = torch.randn(2, channels, size, size, dtype=torch.bfloat16)
    with torch.no_grad():
        sizes = allocations(lambda: conv(x))
    out_bytes = 2 * out_channels * size * size * 2
    plan = kb.onednn_conv16_forward(x, conv.weight, 1, out_bytes, (1, 1), (1, 1))
    scratch, *copies = plan.before_outputs
    real_scratch = sizes.pop(0)
    assert sorted(sizes) == sorted([*copies, *plan.around_outputs, *plan.after_before, out_bytes])
    assert abs(scratch - real_scratch) <= 0.4 * real_scratch

"""Memory that kernels use without passing through the dispatcher, modelled for fake runs.

A real run sees these buffers in the allocator's events; a fake (meta) run adds them by rule. Each
rule names the kernel, the target device and what it was measured on (torch 2.14, x86-64 CPU, oneDNN
convolutions), so it can be re-measured when kernels change.

A rule is a :class:`BufferPlan`: buffers freed before the operator's outputs are allocated (for
instance a reordered copy of the input), and buffers alive while the outputs are allocated (for
instance a blocked-layout output that is copied into the plain output and then freed), some of them
allocated only once the first kind are freed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

CUDA_BLOCK_ROUNDING = 512
SMALL_SPATIAL = 4
DEPTHWISE_CL_WEIGHTS = 256  # weight copies in oneDNN's channels-last depthwise weight-gradient reduction
PAGE = 4096  # input height x width at or under which oneDNN's backward changes algorithm

_aten = torch.ops.aten


@dataclass(frozen=True)
class BufferPlan:
    """Transient buffers (bytes) around one operator, and an output whose real size the fake kernel
    does not give (``(output index, bytes)``, e.g. a workspace saved for backward)."""

    before_outputs: tuple[int, ...] = ()
    around_outputs: tuple[int, ...] = ()
    sized_output: tuple[int, int] | None = None
    #: buffers allocated once ``before_outputs`` are freed, alive (as ``around_outputs``) while the
    #: outputs are allocated: e.g. a copy of a blocked result that is cloned into the output
    after_before: tuple[int, ...] = ()


NO_BUFFERS = BufferPlan()


def _channels_last(x: Any) -> bool:
    return bool(x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))


def _nbytes(t: Any) -> int:
    return int(t.numel() * t.element_size()) if isinstance(t, torch.Tensor) else 0


def _conv_output_bytes(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool = False,
    output_padding: Any = (0, 0),
    groups: int = 1,
) -> int:
    """Bytes of a convolution's output, from the standard size formulas."""
    count = int(x.shape[0]) * int(w.shape[1] * groups if transposed else w.shape[0])
    for i, size in enumerate(x.shape[2:]):
        k = int(w.shape[2 + i])
        if transposed:
            out = (size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k - 1) + output_padding[i] + 1
        else:
            out = (size + 2 * padding[i] - dilation[i] * (k - 1) - 1) // stride[i] + 1
        count *= int(out)
    return count * x.element_size()


def _good_ld(dim: int, itemsize: int = 4) -> int:
    """oneDNN's leading dimension for an RNN matrix (``rnn_utils::get_good_ld``): rounded up to 64
    bytes, plus 64 bytes more when a multiple of 256 elements (to avoid 4K aliasing)."""
    step = 64 // itemsize
    ld = -(-dim // step) * step
    return ld + step if ld % 256 == 0 else ld


def _page_pieces(pieces: list[int], start: int = 0) -> int:
    """End offset of ``pieces`` laid out one after another, each starting on a 4 KiB page
    (``rnn_utils::set_offsets``'s ``register_space``)."""
    offset = start
    for size in pieces:
        offset = -(-offset // PAGE) * PAGE + size
    return offset


# oneDNN's scratchpad registry books each piece with its alignment on top (memory_tracking.hpp): the
# RNN space (4096), three weight-pointer arrays and the bias-pointer array (8 and 32 bytes, 128 each).
ONEDNN_RNN_BOOKINGS = PAGE + 3 * (8 + 128) + (32 + 128)
BRGEMM_BATCH_ELEMENT = 40  # bytes of one x64::brgemm_batch_element_t


def _brgemm_n_block(batch: int) -> int | None:
    """Output block of oneDNN's fp32 brgemm RNN (``brgemm_calc_n_block``): two vector widths, four
    for an AVX2 LSTM on one sequence; ``None`` where the CPU lacks AVX2 (the gemm path runs)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return 32
    if capability.startswith("AVX2"):
        return 32 if batch == 1 else 16
    return None


def onednn_lstm_forward(x: torch.Tensor, w_hh: torch.Tensor, training: bool) -> BufferPlan:
    """Buffers of one fp32 ``mkldnn_rnn_layer`` (PyTorch's aten/src/ATen/native/mkldnn/RNN.cpp, ideep's
    lstm.hpp, oneDNN's src/cpu/rnn and src/cpu/x64/rnn), derived from those sources and checked to the
    byte against the allocator's events inside each call on torch 2.14 (oneDNN 3.12): hidden 48-1024,
    input 16-650, 1-100 steps, batch 1-130, 1-2 layers, both directions, 1 and 2 threads, AVX-512
    and AVX2 kernels. T steps, B batch, I input and H hidden size, ld = :func:`_good_ld`:

    * PyTorch sums the two biases: 4H floats.
    * With grad mode on, PyTorch asks for oneDNN's training primitive (the reference gemm
      implementation: the brgemm one refuses fp32 training) and returns its workspace as an output:
      gates T*B*ld(4H), hidden states T*B*ld(H), then 2(T+1)B rows of states (ld(max(I, H))),
      cell states (H), state gradients of the layer and the iteration (ld(max(I, H)) each) and cell
      gradients (H), each piece starting on a 4 KiB page. ideep reorders both weights into oneDNN's
      ``ldigo`` layout, I*ld(4H) and H*ld(4H) floats, and allocates the scratch pad: the gates of all
      T steps, T*B*ld(4H) (one step's from batch 128), a hidden row B*ld(H) and a hidden-gradient
      row B*ld(H), paged, plus the registry's alignment (:data:`ONEDNN_RNN_BOOKINGS`).
    * Without grad mode (inference) oneDNN takes its brgemm implementation where the CPU has AVX2:
      weights reordered into output blocks of :func:`_brgemm_n_block`, I*4*roundup(H, block) and
      H*4*roundup(H, block) floats, and a scratch pad holding the states (2(T+1)B rows of
      ld(max(I, H)) and of H), the gates of one step (of all T when B is 1: oneDNN then merges the
      layer gemm across steps) and a hidden row, plus brgemm's batch descriptors (2 per thread, 4
      when I = H, of 40 bytes: the reduction taken as one block, which held on every shape
      measured). Without AVX2 the gemm path runs (approximated below).
    """
    steps, batch, inputs, hidden = int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(w_hh.shape[1])
    ld_gates, ld_hidden, ld_states = _good_ld(4 * hidden), _good_ld(hidden), _good_ld(max(inputs, hidden))
    rows = 2 * (steps + 1) * batch
    bias = 4 * hidden * 4
    if training:
        workspace, scratch = _onednn_lstm_training_spaces(steps, batch, inputs, hidden, forward=True)
        ldigo = (inputs * ld_gates * 4, hidden * ld_gates * 4)
        return BufferPlan(around_outputs=(bias, *ldigo, scratch), sized_output=(3, workspace))
    block = _brgemm_n_block(batch)
    merged = batch == 1 and steps >= 2  # brgemm merges the layer gemm across steps
    gate_steps = steps if merged else 1
    pieces = [rows * ld_states * 4, rows * hidden * 4, gate_steps * batch * ld_gates * 4]
    pieces += [batch * ld_hidden * 4, 0]
    if block is None:
        # oneDNN's gemm path (a CPU without AVX2): weights in ldigo, the gates of every step (batch
        # under 128); from batch 16 the recurrent weight goes into sgemm's packed format through a
        # second buffer (taken as ldigo-sized: measured 1.8% and 0.02% larger at hidden 200)
        packed = (hidden * ld_gates * 4,) if batch >= 16 else ()
        weights = (inputs * ld_gates * 4, hidden * ld_gates * 4, *packed)
        pieces[2] = (steps if batch < 128 else 1) * batch * ld_gates * 4
        return BufferPlan(around_outputs=(bias, *weights, _page_pieces(pieces) + ONEDNN_RNN_BOOKINGS))
    padded = -(-hidden // block) * block
    weights = (inputs * 4 * padded * 4, hidden * 4 * padded * 4)
    per_thread = 2 * (2 if inputs == hidden and not merged else 1)
    descriptors = 128 + BRGEMM_BATCH_ELEMENT * per_thread * torch.get_num_threads()
    scratch = _page_pieces(pieces) + ONEDNN_RNN_BOOKINGS + descriptors
    return BufferPlan(around_outputs=(bias, *weights, scratch))


def _onednn_lstm_training_spaces(
    steps: int, batch: int, inputs: int, hidden: int, forward: bool
) -> tuple[int, int]:
    """Workspace and scratch-pad bytes of oneDNN's fp32 LSTM training primitives
    (``rnn_utils::set_workspace_sizes`` and ``set_offsets``). Both keep the gates of every step in
    the scratch pad (their gemms are merged across steps), except a forward on a batch of 128 or
    more, which keeps one step's."""
    ld_gates, ld_hidden, ld_states = _good_ld(4 * hidden), _good_ld(hidden), _good_ld(max(inputs, hidden))
    rows = 2 * (steps + 1) * batch
    workspace = _page_pieces(
        [
            steps * batch * ld_gates * 4,
            steps * batch * ld_hidden * 4,
            rows * ld_states * 4,
            rows * hidden * 4,
            rows * ld_states * 4,
            rows * ld_states * 4,
            rows * hidden * 4,
            0,
        ]
    )
    gate_steps = 1 if forward and batch >= 128 else steps
    row = batch * ld_hidden * 4
    scratch = _page_pieces([gate_steps * batch * ld_gates * 4, row, row, 0])
    return workspace, scratch + ONEDNN_RNN_BOOKINGS


def onednn_lstm_backward(
    x: torch.Tensor,
    w_hh: torch.Tensor,
    hx: Any,
    cx: Any,
    output: Any,
    grad_output: Any,
    grad_hy: Any,
    grad_cy: Any,
) -> BufferPlan:
    """Buffers of one fp32 ``mkldnn_rnn_layer_backward`` (same sources and checks as
    :func:`onednn_lstm_forward`), besides its outputs:

    * PyTorch makes the output gradient contiguous (a copy when it is not: a ``batch_first`` LSTM's
      is a transposed view), zero-fills the hidden and cell gradients nobody passed, and sums the
      biases (4H floats).
    * ideep reorders each weight into the backward's ``ldgoi`` layout when its row (I, then H) is
      not already a good leading dimension: 4H*ld(I) and 4H*ld(H) floats, a padded copy at sizes
      that are multiples of 256 (or not of 16); computes the weight gradients in ``ldigo`` buffers
      (I*ld(4H), H*ld(4H)) and the bias gradient in its own (4H) before copying them into the
      outputs; and allocates the same scratch pad as the training forward.
    """
    steps, batch, inputs, hidden = int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(w_hh.shape[1])
    buffers: list[int] = []
    if not isinstance(grad_output, torch.Tensor) or not grad_output.is_contiguous():
        buffers.append(_nbytes(output))
    if not isinstance(grad_hy, torch.Tensor):
        buffers.append(_nbytes(hx))
    if not isinstance(grad_cy, torch.Tensor):
        buffers.append(_nbytes(cx))
    buffers.append(4 * hidden * 4)
    for rows in (inputs, hidden):
        if _good_ld(rows) != rows:
            buffers.append(4 * hidden * _good_ld(rows) * 4)
    ld_gates = _good_ld(4 * hidden)
    buffers += [inputs * ld_gates * 4, hidden * ld_gates * 4, 4 * hidden * 4]
    buffers.append(_onednn_lstm_training_spaces(steps, batch, inputs, hidden, forward=False)[1])
    return BufferPlan(around_outputs=tuple(buffers))


# -- 16-bit (bf16/fp16) oneDNN kernels ---------------------------------------------------------------
# Measured on torch 2.14.1 (oneDNN 3.12) on a CPU with AVX-512, avx512_bf16, avx512_fp16 and AMX
# (bf16 tiles, no fp16 tiles), one thread. Buffer *structure* (which copies exist, when they are
# freed) comes from PyTorch's mkldnn Conv.cpp / Matmul.cpp and ideep and holds for any ISA; the
# scratch-pad sizes are oneDNN's ``init_scratchpad`` pieces (each booked with a 4 KiB page on top,
# plus 24 bytes ideep adds) whose blocking constants were fitted on that CPU.
ONEDNN_SCRATCH_EXTRA = 24
CONV16_SCRATCH_1X1 = 5 * PAGE + ONEDNN_SCRATCH_EXTRA  # brgconv_1x1 forward/backward-data scratch pad
CONV16_SCRATCH_AVX512 = 2 * PAGE + ONEDNN_SCRATCH_EXTRA  # brg_conv_fwd without AMX tiles (fp16)
DEPTHWISE16_SCRATCH = 1024  # jit depthwise kernels: a bias/row buffer
MATMUL16_A_TAIL = 1024  # brgemm matmul copies A's K tail (16 rows x 32 bf16) when K % 32 != 0
MATMUL16_FIXED = 3072  # brgemm matmul: batch descriptors, AMX tile buffer and C block (M <= 16)
MATMUL16_B_CAP = 1179648  # largest B copy brgemm takes for a plain (not transposed) B, M < 32
MATMUL16_B_CAP_WIDE_M = 598016  # the same from M = 32 (smaller K chunks)
MATMUL16_GRAD_WEIGHT_MIN = 25728  # mm(g.t(), x): brgemm's copy of B for K (the batch) <= 16


def onednn_16bit(dtype: torch.dtype) -> bool:
    """Whether PyTorch sends CPU convolutions and matrix products of this 16-bit dtype to oneDNN:
    its ``mkldnn_bf16_device_check`` / ``mkldnn_fp16_device_check`` (``ideep::has_bf16_type_support``:
    AVX-512 BW/VL/DQ or avx_ne_convert; ``has_fp16_type_support``: avx512_fp16 or avx_ne_convert),
    exposed as ``torch.ops.mkldnn._is_mkldnn_bf16_supported`` / ``_is_mkldnn_fp16_supported``, and
    ``torch.backends.mkldnn`` enabled. Elsewhere ATen's own kernels run and take no hidden buffers."""
    if dtype not in (torch.bfloat16, torch.float16):
        return False
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    check = "_is_mkldnn_bf16_supported" if dtype == torch.bfloat16 else "_is_mkldnn_fp16_supported"
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


def amx_tiles(dtype: torch.dtype) -> bool:
    """Whether oneDNN runs this 16-bit dtype on AMX tiles here (bf16: ``amx_bf16``; fp16: ``amx_fp16``),
    as ``torch.cpu`` reports and ``ONEDNN_MAX_CPU_ISA`` allows. Without them oneDNN runs AVX-512
    kernels: brgemm ones for fp16 (which convert operands to fp32 in their copies), for bf16 its jit
    kernels on ``nChw16c`` blocks, whose convolution buffers follow the fp32 rules (checked with
    ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``; the 16-bit matrix-product and LSTM scratch pads are the
    AMX-measured ones there)."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap and cap not in ("ALL", "DEFAULT") and "AMX" not in cap:
        return False  # oneDNN's own cap on the instruction sets it may use
    cpu = getattr(torch, "cpu", None)
    name = "_is_amx_tile_supported" if dtype == torch.bfloat16 else "_is_amx_fp16_supported"
    check = getattr(cpu, name, None)
    return bool(check()) if check is not None else False


def _rnd(n: int, to: int) -> int:
    return -(-n // to) * to


def _transposed(t: torch.Tensor) -> bool:
    rows, cols = (int(n) for n in t.shape) if t.dim() == 2 else (0, 0)
    return rows > 1 and cols > 1 and t.stride(0) == 1 and t.stride(1) == rows


def onednn_matmul16(a: torch.Tensor, b: torch.Tensor, amx: bool) -> int:
    """Scratch-pad bytes of oneDNN's brgemm matmul for a 16-bit ``mm``/``addmm`` of A (M x K) and
    B (K x N) on CPU (PyTorch's ``mkldnn_gemm`` in aten/src/ATen/native/mkldnn/Matmul.cpp, taken when
    M*N*K > 16^3; oneDNN's ``brgemm_matmul_utils.cpp: init_scratchpad``). Allocated after the output
    and freed before the operator returns. Three layouts, as autograd hands them over:

    * B transposed (a linear layer's forward, ``x @ W.t()``): brgemm copies B into its VNNI blocks,
      one 32-column block of all K: 64*rnd_up(K, 32) bytes (two blocks when M is 1), plus A's K tail
      (1024 when K % 32 != 0), the batch descriptors, tile buffer and C block (3072), a larger C block
      from M = 17 (2048 more) and a per-row C buffer from M = 33 (128*M + 128).
    * B plain (the input gradient, ``g @ W``): the whole B copied into VNNI blocks,
      2*rnd_up(K, 32)*rnd_up(N, 32), capped at a K chunk (1,179,648 B; 598,016 B from M = 32), + 6 KiB.
    * A transposed (the weight gradient, ``g.t() @ x``): a copy that grows with K (the batch rows):
      680*rnd_up(K, 32) bytes, at least 25,728.

    Fitted on 110 shapes per layout with AMX (M 1-512, K and N 64-3072): the median error is 0% for
    each layout, but brgemm's blocking varies with M and N in ways not modelled (it copies all of B
    when M is large against N): 10th/90th percentiles of the error -3%/+58% (B transposed),
    -19%/+87% (B plain), -39%/+70% (A transposed). fp16 without
    AMX tiles (avx512_fp16 kernels) converts its copies to fp32: a B block of 64 columns of a K chunk
    (Kc = K up to 512, 512 up to 1024, then 1024) and A rows of K + 64 for up to 256 rows,
    4*(64*Kc + min(M, 256)*(K + 64)) + 1152 bytes, whatever the layouts (fitted on the same shapes:
    median error -2% to 0%, 10th/90th percentiles within -43%/+28%); fp16 products of one row (M = 1)
    take ATen's gemv path instead, without scratch."""
    m, k, n = int(a.shape[0]), int(a.shape[1]), int(b.shape[1])
    if m * n * k <= 16 * 16 * 16:
        return 0
    if not amx:
        if a.dtype == torch.float16 and m == 1:
            return 0
        chunk = k if k <= 512 else (512 if k <= 1024 else 1024)
        return 4 * (64 * chunk + min(m, 256) * (k + 64)) + 1152
    if _transposed(a):
        return max(MATMUL16_GRAD_WEIGHT_MIN, 680 * _rnd(k, 32))
    if not _transposed(b) and b.is_contiguous():
        cap = MATMUL16_B_CAP if m < 32 else MATMUL16_B_CAP_WIDE_M
        return min(2 * _rnd(k, 32) * _rnd(n, 32), cap) + 6144
    kp = _rnd(k, 32)
    scratch = (128 if m == 1 else 64) * kp + MATMUL16_FIXED + (MATMUL16_A_TAIL if k % 32 else 0)
    if m == 1:
        scratch += 2048
    if m > 16:
        scratch += 2048
    if m > 32:
        scratch += 128 * m + 128
    return scratch


def _depthwise(x: torch.Tensor, groups: int) -> bool:
    return groups > 1 and groups == int(x.shape[1])


def _conv16_blocked_weight(w: torch.Tensor, groups: int) -> int:
    """Bytes of oneDNN's blocked copy of a 16-bit convolution weight (``AcdB16b32a2b`` and kin): output
    channels padded to 16 and, from 32 input channels on, input channels to 32 (33 of 34 shapes
    measured; one stride-2 layer of 48 output channels padded them to 64). Grouped: as given."""
    if groups > 1:
        return _nbytes(w)
    out_channels, in_channels = int(w.shape[0]), int(w.shape[1])
    padded_in = in_channels if in_channels < 32 else _rnd(in_channels, 32)
    return _rnd(out_channels, 16) * padded_in * math.prod(int(k) for k in w.shape[2:]) * w.element_size()


def conv16_forward_scratch(x: torch.Tensor, w: torch.Tensor, stride: Any, padding: Any) -> int:
    """oneDNN's scratch pad for a 16-bit brgemm convolution forward (``jit_brgemm_conv_utils.cpp:
    init_scratchpad``: batch descriptors, AMX tile buffer, fp32 accumulators and, with padding, a copy
    of the padded input in channels-last blocks, each piece booked with a 4 KiB page on top, plus 24
    bytes). 1x1 filters without padding take five pages (:data:`CONV16_SCRATCH_1X1`). Spatial filters:
    nine pages plus the padded input of the batch, N*(H+2p)*(W+2p)*max(C, 16)*2 bytes in pages, but
    at most max(C, 16)/2 pages (oneDNN then copies one block of rows at a time); fitted on 150 stride-1 3x3
    convolutions of our own (3-256 channels, 4x4-56x56 maps, batch 2: mean error 21%) and taken 1.5
    times for larger filters or strides (which copy overlapping rows: measured 0.2-4.4 times)."""
    kernel = tuple(int(k) for k in w.shape[2:])
    if all(k == 1 for k in kernel) and not any(int(p) for p in padding):
        return CONV16_SCRATCH_1X1
    channels = max(int(x.shape[1]), 16)
    padded = int(x.shape[0]) * channels * 2
    for i, size in enumerate(x.shape[2:]):
        padded *= int(size) + 2 * int(padding[i])
    pages = 9 + min(-(-padded // PAGE), channels / 2)
    if max(kernel) > 3 or any(int(v) > 1 for v in stride):
        pages *= 1.5
    return int(pages * PAGE) + ONEDNN_SCRATCH_EXTRA


def onednn_conv16_forward(
    x: torch.Tensor,
    w: torch.Tensor,
    groups: int,
    out_bytes: int,
    stride: Any = (1, 1),
    padding: Any = (0, 0),
    amx: bool = True,
) -> BufferPlan:
    """Buffers of a 16-bit CPU convolution forward (PyTorch's ``mkldnn_convolution`` in
    aten/src/ATen/native/mkldnn/Conv.cpp, which every bf16/fp16 convolution takes where
    :func:`onednn_16bit` holds; ideep's ``convolution_forward``), checked against the allocator's
    events on 45 shapes of our own (1-4 images, 3-512 channels, 1x1-7x7 filters, strides 1-2,
    depthwise included) with AMX:

    * An NCHW input: oneDNN's brgemm convolutions want channels-last (``acdb``) activations and a
      blocked weight, so ideep allocates the scratch pad, reorders the input (its bytes) and the
      weight (:func:`_conv16_blocked_weight`), computes into a channels-last output and frees the
      three; PyTorch then copies that output into its own channels-last tensor and clones it back to
      the contiguous result:
      two output-sized buffers around the output, the second one allocated after the three are
      freed.
    * Depthwise (groups == channels): the jit depthwise kernel works on ``nChw16c`` blocks: input
      and output padded to 16 channels, one blocked output around the result, as in fp32.
    * A channels-last input is used in place: PyTorch's channels-last weight copy (a spatial filter's;
      a 1x1 weight is already channels-last), the scratch pad and the reordered weight are alive
      with the output.

    The scratch pad is :func:`conv16_forward_scratch` on AMX tiles. Without them (fp16 on a CPU with
    avx512_fp16 but no AMX-FP16) oneDNN's AVX-512 brgemm kernel takes a two-page scratch pad
    (:data:`CONV16_SCRATCH_AVX512`) and an unpadded weight copy (checked on four shapes)."""
    weight = _nbytes(w)
    reordered = _conv16_blocked_weight(w, groups) if amx else weight
    scratch = conv16_forward_scratch(x, w, stride, padding) if amx else CONV16_SCRATCH_AVX512
    if _depthwise(x, groups):
        channels = int(x.shape[1])
        pad = _rnd(channels, 16) / channels
        return BufferPlan(
            before_outputs=(DEPTHWISE16_SCRATCH, int(_nbytes(x) * pad), weight),
            around_outputs=(int(out_bytes * pad),),
        )
    if _channels_last(x):
        clone = (weight,) if math.prod(int(k) for k in w.shape[2:]) > 1 else ()
        return BufferPlan(around_outputs=(*clone, scratch, reordered))
    before = (scratch, _nbytes(x), reordered)
    return BufferPlan(before_outputs=before, around_outputs=(out_bytes,), after_before=(out_bytes,))


def depthwise16_channels_last_backward(x: torch.Tensor, w: torch.Tensor) -> BufferPlan:
    """16-bit depthwise convolution backward on a channels-last input (ConvNeXt's blocks hand one on).
    With a filter over 3x3 or larger than the map (the fp32 rule's condition), oneDNN reduces the
    weight gradient over 256 weight copies (256*W bytes of the 16-bit weight) beside a scratch pad of
    their fp32 accumulators (512*W) and a row buffer of (H+1)*(W+1)*C*64 bytes + 8,584, whatever the
    batch: to the byte on 48-384 channels, 4x4-32x32 maps, 5x5 and 7x7 filters, batch 1-4, one thread
    (7x7 maps: within 10%). Otherwise a weight copy and a small scratch (2.5*W measured; 3*W taken)."""
    weight = _nbytes(w)
    kernel = tuple(int(k) for k in w.shape[2:])
    spatial = tuple(int(n) for n in x.shape[2:])
    if max(kernel) > 3 or any(k > n for k, n in zip(kernel, spatial, strict=True)):
        rows = math.prod(n + 1 for n in spatial) * int(x.shape[1]) * 64 + 8584
        copies = DEPTHWISE_CL_WEIGHTS * weight
        return BufferPlan(around_outputs=(weight, copies, 2 * copies + rows))
    return BufferPlan(around_outputs=(weight, 3 * weight))


def onednn_conv16_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    groups: int,
    input_grad: bool = True,
    amx: bool = True,
    padding: Any = (0, 0),
) -> BufferPlan:
    """Buffers of a 16-bit CPU ``convolution_backward`` through oneDNN (same sources and checks as
    :func:`onednn_conv16_forward`). On an NCHW input the real kernel runs in two stages:

    * backward data (only when the input needs a gradient): the output gradient and the weight
      reordered, the input gradient computed into a channels-last buffer beside a scratch pad, then
      copied and cloned into the result as the forward does;
    * backward weights: the output gradient and the input reordered again, the weight gradient
      computed into a blocked buffer whose input channels are padded to 32 (``W32``: the weight's
      bytes from 32 channels on) beside oneDNN's scratch pad, then copied into the result. The
      scratch pad holds fp32 weight accumulators (the weight with input channels padded to 16, or
      to 32 above 16, in fp32), a channels-last copy of the padded input batch
      (N*(H+2p)*(W+2p)*max(C, 16)*2 bytes, at most 512 KiB), one image's output gradient (at most
      256 KiB) and eight pages: fitted on 60 3x3 convolutions of our own (3-128 channels, 4x4-32x32
      maps; median +1%, 10th/90th percentiles -3%/+12%) and checked on 34 others (1x1-7x7 filters,
      strides 1-2: median 0%, percentiles -26%/+22%).

    The fake trace allocates the gradients at once: the output gradient copy, the input copy, the
    weight scratch pad and one input gradient go before them, the blocked weight gradient around
    them. Depthwise: the gradient and input in 16-channel blocks, before the results.

    Without AMX tiles (fp16 on avx512_fp16) oneDNN has no optimized fp16 weight-gradient kernel and
    runs its reference one on the plain tensors: only a weight-sized buffer besides the results; the
    backward-data stage is as above with a two-page scratch pad (checked on four shapes)."""
    weight, inp, grad = _nbytes(w), _nbytes(x), _nbytes(grad_out)
    if not amx and not _depthwise(x, groups):
        if _channels_last(x):
            clone = (weight,) if math.prod(int(k) for k in w.shape[2:]) > 1 else ()
            return BufferPlan(around_outputs=(*clone, weight, CONV16_SCRATCH_AVX512 + 128))
        if not input_grad:
            return BufferPlan(around_outputs=(weight,))
        data = (grad, weight, CONV16_SCRATCH_AVX512 + 128)
        return BufferPlan(before_outputs=data, around_outputs=(inp,), after_before=(inp,))
    if _depthwise(x, groups):
        channels = int(x.shape[1])
        pad = _rnd(channels, 16) / channels
        if _channels_last(x):
            return depthwise16_channels_last_backward(x, w)
        return BufferPlan(before_outputs=(int(grad * pad), int(inp * pad)), around_outputs=(int(inp * pad),))
    per_group = int(w.shape[1])
    padded = weight * _rnd(per_group, 32) // per_group
    accumulators = 2 * weight * _rnd(per_group, 16 if per_group <= 16 else 32) // per_group
    padded_input = int(x.shape[0]) * max(int(x.shape[1]), 16) * 2
    for i, size in enumerate(x.shape[2:]):
        padded_input *= int(size) + 2 * int(padding[i])
    one_output = math.prod(int(n) for n in grad_out.shape[1:]) * 2
    scratch = accumulators + min(padded_input, 512 * 1024) + min(one_output, 256 * 1024) + 8 * PAGE
    gradient = (inp,) if input_grad else ()
    if _channels_last(x):
        # the input gradient is written in place; PyTorch's channels-last weight copy (spatial filters)
        clone = (weight,) if math.prod(int(k) for k in w.shape[2:]) > 1 else ()
        return BufferPlan(around_outputs=(*clone, padded, scratch))
    return BufferPlan(before_outputs=(grad, inp, scratch, *gradient), around_outputs=(padded,))


LSTM16_BRGEMM = 2048  # oneDNN's 16-bit brgemm LSTM: batch descriptors and AMX buffers (measured 928-2,984)


def _lstm16_scratch(steps: int, batch: int, inputs: int, hidden: int, training: bool) -> int:
    """Scratch pad of oneDNN's 16-bit brgemm LSTM forward (``rnn_utils::set_workspace_sizes`` and
    ``set_offsets`` with bf16/fp16 states and fp32 gates): without a workspace (inference) it holds the
    states (2(T+1)B rows of ld(max(I, H)) 16-bit values) and cell states (H 16-bit values a row); then
    the fp32 gates of one step (of all T when B is 1), a 16-bit hidden row and, in training, an fp32
    hidden-gradient row, each piece on a 4 KiB page, plus the registry's alignment, ideep's 24 bytes
    and :data:`LSTM16_BRGEMM`."""
    rows = 2 * (steps + 1) * batch
    gate_steps = steps if batch == 1 and steps >= 2 else 1
    pieces = [] if training else [rows * _good_ld(max(inputs, hidden), 2) * 2, rows * hidden * 2]
    pieces += [gate_steps * batch * _good_ld(4 * hidden) * 4, batch * _good_ld(hidden, 2) * 2]
    if training:
        pieces.append(batch * _good_ld(hidden) * 4)
    return _page_pieces([*pieces, 0]) + ONEDNN_RNN_BOOKINGS + ONEDNN_SCRATCH_EXTRA + LSTM16_BRGEMM


def onednn_lstm16_forward(
    x: torch.Tensor, w_hh: torch.Tensor, training: bool, amx: bool = True
) -> BufferPlan:
    """Buffers of one 16-bit ``mkldnn_rnn_layer`` (PyTorch's RNN.cpp takes oneDNN for bf16 always and
    for fp16 without grad mode; oneDNN runs its brgemm LSTM, on AMX tiles here), derived from the
    same sources as :func:`onednn_lstm_forward` with 16-bit states and fp32 gates and checked against
    the allocator's events (4 shapes: 1-20 steps, batch 1-8, input 32-256, hidden 48-256, one thread):

    * PyTorch sums the biases (4H 16-bit values);
    * ideep reorders the weights into brgemm blocks of 32 gate columns: I*4*rnd_up(H, 32) and
      H*4*rnd_up(H, 32) 16-bit values (to the byte);
    * training returns oneDNN's workspace: the 16-bit gates (T*B*ld(4H)) and hidden states
      (T*B*ld(H)), 16-bit states and cell states, fp32 state and cell gradients, each on a 4 KiB page
      (to the byte);
    * the scratch pad :func:`_lstm16_scratch` (within 1 KiB)."""
    steps, batch, inputs, hidden = int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(w_hh.shape[1])
    if not amx:
        # oneDNN's reference LSTM over matmul primitives (fp16 without AMX-FP16 tiles): weights in
        # ``ldigo`` with a good leading dimension, states and the gates of every step; the matmul
        # primitives' own scratch (measured 100-420 KB on our shapes) is not modelled
        ld_gates = _good_ld(4 * hidden, 2)
        rows = 2 * (steps + 1) * batch
        pieces = [rows * _good_ld(max(inputs, hidden), 2) * 2, rows * hidden * 2]
        pieces += [steps * batch * _good_ld(4 * hidden) * 4, batch * _good_ld(hidden, 2) * 2, 0]
        scratch = _page_pieces(pieces) + ONEDNN_RNN_BOOKINGS + ONEDNN_SCRATCH_EXTRA
        return BufferPlan(
            around_outputs=(4 * hidden * 2, inputs * ld_gates * 2, hidden * ld_gates * 2, scratch)
        )
    padded = _rnd(hidden, 32)
    weights = (inputs * 4 * padded * 2, hidden * 4 * padded * 2)
    scratch = _lstm16_scratch(steps, batch, inputs, hidden, training)
    around = (4 * hidden * 2, *weights, scratch)
    if not training:
        return BufferPlan(around_outputs=around)
    rows = 2 * (steps + 1) * batch
    ld_state = _good_ld(max(inputs, hidden))
    workspace = _page_pieces(
        [
            steps * batch * _good_ld(4 * hidden, 2) * 2,
            steps * batch * _good_ld(hidden, 2) * 2,
            rows * _good_ld(max(inputs, hidden), 2) * 2,
            rows * hidden * 2,
            rows * ld_state * 4,
            rows * ld_state * 4,
            rows * hidden * 4,
            0,
        ]
    )
    return BufferPlan(around_outputs=around, sized_output=(3, workspace))


def onednn_lstm16_backward(x: torch.Tensor, w_hh: torch.Tensor, grad_hy: Any, grad_cy: Any) -> BufferPlan:
    """Buffers of one bf16 ``mkldnn_rnn_layer_backward`` (same sources and checks as
    :func:`onednn_lstm16_forward`). oneDNN's 16-bit backward takes and gives fp32 gradients, so PyTorch
    allocates fp32 buffers for all of them (the input gradient T*B*I, the output gradient T*B*H, two
    state gradients in and two out B*H each, the weight gradients I*4H and H*4H, the bias gradient 4H)
    and converts them to the 16-bit outputs at the end: they are alive while the outputs are
    allocated, with the summed biases and the zero-filled state gradients nobody passed. Before that,
    ideep reorders the weights into the backward's blocks (rnd_up(I, 32)*4H and rnd_up(H, 32)*4H
    16-bit values), computes the weight gradients in fp32 ``ldigo`` buffers (I*ld(4H), H*ld(4H)) and
    the bias gradient (4H fp32), beside a scratch pad (fitted as 1.5 times the training forward's:
    measured 0.95-2.4 times)."""
    steps, batch, inputs, hidden = int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(w_hh.shape[1])
    gates = 4 * hidden
    state = batch * hidden
    fp32 = [steps * batch * inputs, steps * batch * hidden, state, state, state, state]
    fp32 += [inputs * gates, hidden * gates, gates]
    pytorch = [4 * n for n in fp32] + [gates * 2]
    pytorch += [state * 2 for g in (grad_hy, grad_cy) if not isinstance(g, torch.Tensor)]
    ld_gates = _good_ld(gates)
    onednn = [_rnd(inputs, 32) * gates * 2, _rnd(hidden, 32) * gates * 2]
    onednn += [inputs * ld_gates * 4, hidden * ld_gates * 4, gates * 4]
    onednn.append(3 * _lstm16_scratch(steps, batch, inputs, hidden, training=True) // 2)
    return BufferPlan(before_outputs=tuple(onednn), around_outputs=tuple(pytorch))


class KernelBufferModel:
    """Rules for one target device: allocation rounding and kernel-internal buffers."""

    def __init__(self, target: torch.device) -> None:
        self.target = target
        # PyTorch's own checks, read once here (outside any dispatch mode): which 16-bit dtypes its
        # CPU convolutions and matrix products send to oneDNN, and which run on AMX tiles
        self._onednn16_dtypes = {d for d in (torch.bfloat16, torch.float16) if onednn_16bit(d)}
        self._amx = {d: amx_tiles(d) for d in (torch.bfloat16, torch.float16)}

    def _onednn16(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and x.dtype in self._onednn16_dtypes and x.dim() in (3, 4)

    def round(self, nbytes: int) -> int:
        """Bytes the target's allocator takes for ``nbytes`` (CUDA rounds up to 512-byte blocks)."""
        if self.target.type == "cuda" and nbytes > 0:
            return max(CUDA_BLOCK_ROUNDING, -(-nbytes // CUDA_BLOCK_ROUNDING) * CUDA_BLOCK_ROUNDING)
        return nbytes

    def plan(self, func: Any, args: Any, kwargs: Any) -> BufferPlan:
        if self.target.type == "cpu":
            if func is _aten.convolution.default:
                if self._onednn16(args[0]) and not args[6]:
                    amx = self._amx[args[0].dtype]
                    if not amx and args[0].dtype == torch.bfloat16 and not _depthwise(args[0], args[8]):
                        return self._cpu_conv_forward(*args, onednn=True)
                    out_bytes = _conv_output_bytes(args[0], args[1], args[3], args[4], args[5])
                    return onednn_conv16_forward(args[0], args[1], args[8], out_bytes, args[3], args[4], amx)
                return self._cpu_conv_forward(*args)
            if func is _aten.convolution_backward.default:
                if self._onednn16(args[1]) and not args[7]:
                    amx = self._amx[args[1].dtype]
                    if not amx and args[1].dtype == torch.bfloat16 and not _depthwise(args[1], args[9]):
                        return self._cpu_conv_backward(*args, onednn=True)
                    mask = bool(args[10][0])
                    return onednn_conv16_backward(args[0], args[1], args[2], args[9], mask, amx, args[5])
                return self._cpu_conv_backward(*args)
            if func in (_aten.mm.default, _aten.addmm.default):
                a, b = (args[0], args[1]) if func is _aten.mm.default else (args[1], args[2])
                sixteen = isinstance(a, torch.Tensor) and a.dtype in self._onednn16_dtypes
                if sixteen and a.dim() == b.dim() == 2:
                    # bf16 without AMX tiles: taken as the AMX kernel's (measured within 1.2% on the MLP)
                    scratch = onednn_matmul16(a, b, self._amx[a.dtype] or a.dtype == torch.bfloat16)
                    return BufferPlan(around_outputs=(scratch,)) if scratch else NO_BUFFERS
            if func is _aten.native_batch_norm_backward.default:
                return self._cpu_batch_norm_backward(args[1])
            if func is _aten.mkldnn_rnn_layer.default:
                return self._cpu_lstm_layer(*args)
            if func is _aten.mkldnn_rnn_layer_backward.default:
                return self._cpu_lstm_layer_backward(*args)
        return NO_BUFFERS

    def _cpu_lstm_layer(self, x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, *rest: Any) -> BufferPlan:
        """One direction of one layer of oneDNN's LSTM (``mkldnn_rnn_layer``), which PyTorch runs for
        ``nn.LSTM`` on CPU whenever its ``use_mkldnn`` allows (fp32/bf16, no projection, no packed
        sequence): the native path (GRU, packed sequences, ``proj_size``) is plain ATen operators
        and needs no rule. fp32 follows :func:`onednn_lstm_forward`, bf16 and fp16
        :func:`onednn_lstm16_forward`."""
        if x.dtype == torch.float32:
            return onednn_lstm_forward(x, w_hh, torch.is_grad_enabled())
        # bf16 LSTMs take oneDNN's brgemm LSTM with or without AMX tiles (checked with
        # ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16); fp16 without AMX-FP16 its reference one
        brgemm = self._amx.get(x.dtype, False) or x.dtype == torch.bfloat16
        return onednn_lstm16_forward(x, w_hh, torch.is_grad_enabled(), brgemm)

    @staticmethod
    def _cpu_lstm_layer_backward(x: Any, w_ih: Any, w_hh: Any, *rest: Any) -> BufferPlan:
        """Backward of one oneDNN LSTM layer direction: fp32 follows :func:`onednn_lstm_backward`,
        bf16 :func:`onednn_lstm16_backward` (fp16 LSTMs train on PyTorch's native path)."""
        hx, cx, output, grads = rest[2], rest[3], rest[4], rest[7:10]
        if x.dtype == torch.float32:
            return onednn_lstm_backward(x, w_hh, hx, cx, output, *grads)
        return onednn_lstm16_backward(x, w_hh, grads[1], grads[2])

    @staticmethod
    def _cpu_batch_norm_backward(x: Any) -> BufferPlan:
        """Batch-norm backward on CPU keeps one input-sized buffer while it writes the input gradient
        (measured on ResNet-18's BatchNorm2d layers)."""
        return BufferPlan(around_outputs=(_nbytes(x),))

    @staticmethod
    def _onednn_conv(x: torch.Tensor, w: torch.Tensor, groups: int, stride: Any, dilation: Any) -> bool:
        """Whether PyTorch runs this CPU convolution with oneDNN (its ``use_mkldnn`` choice in
        ``aten/src/ATen/native/Convolution.cpp``): 1-D and 2-D, grouped and depthwise ones included; a
        1x1 filter without stride or dilation on a batch under 16 takes the native path when only one
        thread runs, and so do small single-image convolutions of small filters."""
        if not (torch.backends.mkldnn.is_available() and x.dtype == torch.float32 and x.dim() in (3, 4)):
            return False
        kh, kw = (1 if w.dim() == 3 else int(w.shape[-2])), int(w.shape[-1])
        strided = any(int(s) != 1 for s in stride)
        dilated = any(int(d) != 1 for d in dilation)
        threads = torch.get_num_threads()
        if kh == 1 and kw == 1 and not (strided or dilated or x.shape[0] >= 16 or threads > 1):
            return False
        return groups > 1 or (kh > 3 and kw > 3) or x.shape[0] > 1 or x.numel() > 20480

    def _cpu_conv_forward(
        self,
        x: Any,
        w: Any,
        bias: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        transposed: bool,
        output_padding: Any,
        groups: int,
        *,
        onednn: bool = False,
    ) -> BufferPlan:
        """oneDNN forward convolution on CPU (measured on ResNet-18 and a small U-Net).

        The weight is reordered into a blocked copy, the input too when it has 8 channels or more,
        and the result is computed into a blocked output that is then copied into the plain output:
        input and weight copies are freed before the plain output exists, the blocked output after.
        A transposed convolution keeps two output-sized buffers instead.
        """
        if not (onednn or self._onednn_conv(x, w, groups, stride, dilation)):
            return NO_BUFFERS
        if transposed:
            out_bytes = _conv_output_bytes(x, w, stride, padding, dilation, True, output_padding, groups)
            return BufferPlan(around_outputs=(out_bytes, out_bytes))
        reorders = [_nbytes(w)]
        if x.shape[1] >= 8:
            reorders.append(_nbytes(x))
        out_bytes = _conv_output_bytes(x, w, stride, padding, dilation)
        return BufferPlan(before_outputs=tuple(reorders), around_outputs=(out_bytes,))

    def _cpu_conv_backward(
        self,
        grad_out: Any,
        x: Any,
        w: Any,
        bias_sizes: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        transposed: bool,
        output_padding: Any,
        groups: int,
        output_mask: Any,
        *,
        onednn: bool = False,
    ) -> BufferPlan:
        """oneDNN backward convolution on CPU (measured on ResNet-18 and a small U-Net).

        A blocked copy of the incoming gradient stays alive throughout; the weight gradient is first
        computed into a blocked buffer beside a reordered input, then copied into the plain weight
        gradient, so the larger of input and weight adds on top. Transposed: two gradient-sized
        buffers and an input copy.
        """
        if not (onednn or self._onednn_conv(x, w, groups, stride, dilation)):
            return NO_BUFFERS
        weight, grad, inp = _nbytes(w), _nbytes(grad_out), _nbytes(x)
        if transposed:
            return BufferPlan(around_outputs=(grad, grad, inp))
        kernel, spatial = tuple(int(k) for k in w.shape[2:]), tuple(int(n) for n in x.shape[2:])
        large = max(kernel) > 3 or any(k > n for k, n in zip(kernel, spatial, strict=True))
        if groups > 1 and groups == x.shape[1] and _channels_last(x) and large:
            # Depthwise on a channels-last input (ConvNeXt's blocks hand one on) with a filter over
            # 3x3 or larger than the map: the weight gradient is reduced in a buffer of 256 weights,
            # whatever the batch and map size (measured on 3x3-7x7 filters, 16-320 channels, 2x2-16x16
            # maps, batch 1-8, one thread; 3x3 filters on 8x8 and larger maps take none).
            return BufferPlan(around_outputs=(grad, max(inp, weight), DEPTHWISE_CL_WEIGHTS * weight))
        if math.prod(x.shape[2:]) <= SMALL_SPATIAL:
            # On tiny feature maps oneDNN picks a weight-gradient algorithm that holds four
            # weight-sized buffers (measured: 4.0x the weight on ResNet-18's 2x2 and 1x1 stages).
            return BufferPlan(around_outputs=(weight, weight, weight, weight, grad))
        return BufferPlan(around_outputs=(grad, max(inp, weight)))

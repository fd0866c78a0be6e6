"""What PyTorch does on a CUDA GPU, for fake traces made without one.

A fake trace for a CUDA target runs on meta tensors, so every choice PyTorch makes by looking at the
device would follow the meta device's path. Three of those choices change memory a lot; here they
are made as PyTorch makes them on the target GPU:

* **Attention.** ``F.scaled_dot_product_attention`` picks a kernel by architecture, dtype, head size,
  mask and grouped-query attention: cuDNN (Hopper and Blackwell, 16-bit), flash (Ampere and later,
  16-bit, no mask), memory-efficient (any dtype, masks allowed, no grouped-query heads) or the math
  path (the attention probabilities saved for backward). :func:`sdpa_backend` states the rules; the
  chosen kernel then runs on meta tensors through PyTorch's own meta implementations, so its saved
  tensors (output, log-sum-exp, RNG state) are what the GPU keeps. Measured on an H200 with torch
  2.11 (``bench/gpu_validate.py``'s kernel probe): cuDNN for bf16, memory-efficient for fp32, math for
  fp32 with grouped-query heads.
* **Optimizers.** On CUDA, ``torch.optim`` takes the multi-tensor ``foreach`` path by default, and
  accepts ``fused=True``; their temporaries (``_foreach_sqrt`` over all second moments, …) are traced.
* **Autocast.** ``torch.autocast("cuda")`` casts only CUDA tensors, so on meta tensors it is emulated
  with CUDA's operator lists: matrix products, convolutions and attention in 16 bits (floating leaf
  tensors that require grad — the weights — cast once per autocast region and cached), reductions,
  norms, losses and ``softmax`` in fp32, mixed inputs of ``cat``/``stack``-style operators promoted.
  It works at the level of Python-visible torch functions; ``nn.MultiheadAttention``'s functional
  form is cast as a whole. Forward passes that checkpointing recomputes during backward run under
  the same casts (without the cache), as PyTorch restores autocast for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_aten = torch.ops.aten
HALF = (torch.float16, torch.bfloat16)
_SDPA = F.scaled_dot_product_attention  # PyTorch's own, kept before a session replaces the name


@dataclass(frozen=True)
class CudaTarget:
    """The GPU a fake CUDA trace is made for: its name and compute capability."""

    name: str = "H100 80GB"
    compute_capability: tuple[int, int] = (9, 0)
    assumed: bool = True  # no GPU was named: the default target

    def describe(self) -> str:
        major, minor = self.compute_capability
        how = "assumed (no --gpu given)" if self.assumed else "named"
        return f"CUDA kernels chosen for {self.name} (compute capability {major}.{minor}, {how})"


# ---------------------------------------------------------------------------------------- attention


def sdpa_backend(
    target: CudaTarget,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    enable_gqa: bool,
) -> str:
    """The kernel PyTorch's ``scaled_dot_product_attention`` takes on ``target``: ``cudnn``, ``flash``,
    ``efficient`` or ``math``.

    The order and constraints follow PyTorch's selection (``sdp_utils``) as measured on Hopper with
    torch 2.11: cuDNN first on compute capability 9.0 and 10.0 for 16-bit inputs (head size up to 128,
    a multiple of 8), then flash (8.0 and later, 16-bit, head size up to 256, no explicit mask), then
    memory-efficient (5.0 and later; head size a multiple of 8 for 16-bit inputs and of 4 for fp32;
    masks allowed; not with grouped-query heads), else the math path.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "math"
    head, head_v = int(q.shape[-1]), int(v.shape[-1])
    gqa = enable_gqa and int(q.shape[1]) != int(k.shape[1])
    cc = target.compute_capability
    half = q.dtype in HALF and k.dtype == q.dtype and v.dtype == q.dtype
    if half and cc in ((9, 0), (10, 0)) and head == head_v and head <= 128 and head % 8 == 0:
        return "cudnn"
    if half and cc >= (8, 0) and attn_mask is None and head == head_v and head <= 256 and head % 8 == 0:
        return "flash"
    align = 8 if half else 4
    if (
        cc >= (5, 0)
        and not gqa
        and q.dtype in (*HALF, torch.float32)
        and head % align == 0
        and head_v % align == 0
    ):
        return "efficient"
    return "math"


KERNEL_NAMES = {
    "cudnn": "cuDNN kernel",
    "flash": "flash kernel",
    "efficient": "memory-efficient kernel",
    "math": "math path",
}


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask as the additive float bias the fused kernels take (``True`` keeps a position)."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def fused_sdpa(target: CudaTarget, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` through the kernel the target GPU would run."""
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    q, k, v = bound["query"], bound["key"], bound["value"]
    mask = bound.get("attn_mask")
    dropout = float(bound.get("dropout_p", 0.0) or 0.0)
    causal = bool(bound.get("is_causal", False))
    scale = bound.get("scale")
    gqa = bool(bound.get("enable_gqa", False))
    backend = sdpa_backend(target, q, k, v, mask, gqa)
    session = active_session()
    if session is not None:
        session.note(f"scaled_dot_product_attention: the {KERNEL_NAMES[backend]} as on {target.name}")
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if backend == "cudnn":
        return _aten._scaled_dot_product_cudnn_attention(
            q, k, v, _float_mask(mask, q.dtype), grad, dropout, causal, False, scale=scale
        )[0]
    if backend == "flash":
        return _aten._scaled_dot_product_flash_attention(q, k, v, dropout, causal, False, scale=scale)[0]
    if backend == "efficient":
        return _aten._scaled_dot_product_efficient_attention(
            q, k, v, _float_mask(mask, q.dtype), grad, dropout, causal, scale=scale
        )[0]
    return _SDPA(*args, **kwargs)


def _patched_sdpa(*args: Any, **kwargs: Any) -> torch.Tensor:
    """What ``F.scaled_dot_product_attention`` names during a session: Python callers that look the name
    up when they run (transformers, ``F.multi_head_attention_forward``) reach the target's kernel even
    where no torch-function mode sees the call; under emulated autocast its inputs are cast first."""
    session = active_session()
    if session is None:
        return _SDPA(*args, **kwargs)
    if session.autocast is not None:
        args, kwargs = session.autocast._cast_call(args, kwargs, session.autocast.dtype)
    return fused_sdpa(session.target, *args, **kwargs)


# ---------------------------------------------------------------------------------------- autocast

_LOWER = {
    F.linear,
    F.bilinear,
    F.conv1d,
    F.conv2d,
    F.conv3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
    F.prelu,
    torch.matmul,
    torch.mm,
    torch.bmm,
    torch.mv,
    torch.addmm,
    torch.addmv,
    torch.addr,
    torch.baddbmm,
    torch.addbmm,
    torch.einsum,
    torch.chain_matmul,
    torch.linalg.multi_dot,
    torch.linalg.vecdot,
    _SDPA,
    torch.conv1d,
    torch.conv2d,
    torch.conv3d,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.Tensor.__rmatmul__,
    torch.Tensor.mm,
    torch.Tensor.bmm,
    torch.Tensor.mv,
    torch.Tensor.addmm,
    torch.Tensor.baddbmm,
}
_FP32 = {
    F.layer_norm,
    F.group_norm,
    F.cross_entropy,
    F.nll_loss,
    F.mse_loss,
    F.l1_loss,
    F.smooth_l1_loss,
    F.huber_loss,
    F.kl_div,
    F.binary_cross_entropy_with_logits,
    F.softplus,
    F.cosine_similarity,
    F.poisson_nll_loss,
    F.margin_ranking_loss,
    F.soft_margin_loss,
    F.triplet_margin_loss,
    F.multi_margin_loss,
    F.cosine_embedding_loss,
    F.hinge_embedding_loss,
    F.interpolate,
    torch.layer_norm,
    torch.group_norm,
    torch.exp,
    torch.expm1,
    torch.log,
    torch.log1p,
    torch.log2,
    torch.log10,
    torch.reciprocal,
    torch.rsqrt,
    torch.pow,
    torch.acos,
    torch.asin,
    torch.cosh,
    torch.sinh,
    torch.tan,
    torch.erfinv,
    torch.logsumexp,
    torch.cdist,
    torch.dist,
    torch.renorm,
    torch.Tensor.exp,
    torch.Tensor.log,
    torch.Tensor.pow,
    torch.Tensor.rsqrt,
    torch.Tensor.reciprocal,
    torch.Tensor.logsumexp,
}
# run in fp32 when given 16-bit input and no dtype (PyTorch's "fp32_set_opt_dtype")
_FP32_OUTPUT = {
    F.softmax,
    F.log_softmax,
    torch.softmax,
    torch.log_softmax,
    torch.sum,
    torch.prod,
    torch.cumsum,
    torch.cumprod,
    torch.Tensor.softmax,
    torch.Tensor.log_softmax,
    torch.Tensor.sum,
    torch.Tensor.prod,
    torch.Tensor.cumsum,
    torch.Tensor.cumprod,
}
_PROMOTE = {
    torch.cat,
    torch.stack,
    torch.addcdiv,
    torch.addcmul,
    torch.atan2,
    torch.cross,
    torch.dot,
    torch.tensordot,
    torch.index_put,
    torch.scatter_add,
    torch.Tensor.addcdiv,
    torch.Tensor.addcmul,
    torch.Tensor.index_put,
    torch.Tensor.scatter_add,
}
# Python-level functions that hold listed operators inside (the mode does not see their insides):
# their floating tensor arguments are cast on entry as the first listed operator would cast them.
_LOWER_COMPOSITES = {F.multi_head_attention_forward}


class EmulatedAutocast(TorchFunctionMode):
    """``torch.autocast("cuda", dtype)`` for meta tensors: CUDA's operator lists and weight-cast cache."""

    def __init__(self, dtype: torch.dtype, target: CudaTarget | None = None, cache: bool = True) -> None:
        super().__init__()
        self.dtype = dtype
        self.target = target
        self.caching = cache
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __enter__(self) -> EmulatedAutocast:
        session = active_session()
        if session is not None:
            session.autocast = self
            if self.caching:
                session.last_autocast = self
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._cache.clear()  # the cache lives as long as the autocast region
        session = active_session()
        if session is not None and session.autocast is self:
            session.autocast = None
        return super().__exit__(*exc)

    def _cast(self, value: Any, dtype: torch.dtype) -> Any:
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or value.dtype in (dtype, torch.float64):
                return value
            cacheable = self.caching and value.is_leaf and value.requires_grad and dtype in HALF
            if cacheable:
                hit = self._cache.get(id(value))
                if hit is not None and hit[0] is value:
                    return hit[1]
            out = value.to(dtype)
            if cacheable:
                self._cache[id(value)] = (value, out)
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast(v, dtype) for v in value)
        return value

    def _cast_call(self, args: Any, kwargs: dict[str, Any], dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
        """The call's arguments cast; one tensor passed several times (self-attention's query, key and
        value) is cast once, as PyTorch's kernels see the same input."""
        seen: dict[int, Any] = {}
        try:
            new_args = tuple(self._cast_once(a, dtype, seen) for a in args)
            new_kwargs = {k: self._cast_once(v, dtype, seen) for k, v in kwargs.items()}
        finally:
            seen.clear()  # no reference may outlive the call: frees must happen when PyTorch's would
        return new_args, new_kwargs

    def _cast_once(self, value: Any, dtype: torch.dtype, seen: dict[int, Any]) -> Any:
        if isinstance(value, torch.Tensor):
            if id(value) not in seen:
                seen[id(value)] = self._cast(value, dtype)
            return seen[id(value)]
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast_once(v, dtype, seen) for v in value)
        return value

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _LOWER or func in _LOWER_COMPOSITES:
            args, kwargs = self._cast_call(args, kwargs, self.dtype)
            if func is _SDPA and self.target is not None:
                return fused_sdpa(self.target, *args, **kwargs)
        elif func in _FP32:
            args, kwargs = self._cast_call(args, kwargs, torch.float32)
        elif func in _FP32_OUTPUT:
            first = args[0] if args else None
            if isinstance(first, torch.Tensor) and first.dtype in HALF and kwargs.get("dtype") is None:
                kwargs = {**kwargs, "dtype": torch.float32}
        elif func in _PROMOTE:
            flat = [a for a in _tensors(args) if a.is_floating_point()]
            if flat and len({a.dtype for a in flat}) > 1:
                widest = max((a.dtype for a in flat), key=lambda d: torch.finfo(d).bits)
                args = tuple(self._cast(a, widest) for a in args)
        return func(*args, **kwargs)


def _tensors(args: Any) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(t for t in a if isinstance(t, torch.Tensor))
    return out


class _RecomputeAutocast:
    """The null contexts ``torch.utils.checkpoint`` opens around a forward pass it recomputes: entered
    during backward after an autocast forward, they enter the emulated autocast (which PyTorch would
    have restored); entered while a forward's autocast is active, they do nothing."""

    def __init__(self, enter_result: Any = None) -> None:
        self.enter_result = enter_result
        self.autocast: EmulatedAutocast | None = None

    def __enter__(self) -> Any:
        session = active_session()
        if session is not None and session.autocast is None and session.last_autocast is not None:
            last = session.last_autocast
            self.autocast = EmulatedAutocast(last.dtype, last.target, cache=False)
            self.autocast.__enter__()
        return self.enter_result

    def __exit__(self, *exc: Any) -> None:
        if self.autocast is not None:
            self.autocast.__exit__(*exc)
            self.autocast = None


class _CheckpointContextlib:
    """``contextlib`` as ``torch.utils.checkpoint`` sees it during a session (``nullcontext`` above)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(contextlib, name)

    @staticmethod
    def nullcontext(enter_result: Any = None) -> Any:
        return _RecomputeAutocast(enter_result)


class CudaKernels(TorchFunctionMode):
    """Outside autocast: attention through the target's fused kernel."""

    def __init__(self, target: CudaTarget) -> None:
        super().__init__()
        self.target = target

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is _SDPA:
            return fused_sdpa(self.target, *args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


# ---------------------------------------------------------------------------------------- optimizers


@contextmanager
def cuda_optimizers() -> Iterator[None]:
    """Let ``torch.optim`` treat meta tensors as CUDA ones: ``foreach`` by default, ``fused`` allowed."""
    import torch.optim.optimizer as opt_module

    foreach = opt_module._get_foreach_kernels_supported_devices
    fused = opt_module._get_fused_kernels_supported_devices

    def with_meta(original: Any) -> Any:
        return lambda: [*original(), "meta"]

    opt_module._get_foreach_kernels_supported_devices = with_meta(foreach)
    opt_module._get_fused_kernels_supported_devices = with_meta(fused)
    try:
        yield
    finally:
        opt_module._get_foreach_kernels_supported_devices = foreach
        opt_module._get_fused_kernels_supported_devices = fused


class Session:
    """The target of the fake CUDA trace running now, and what it decided (for the profile's notes)."""

    def __init__(self, target: CudaTarget) -> None:
        self.target = target
        self.notes: dict[str, int] = {}
        self.autocast: EmulatedAutocast | None = None
        self.last_autocast: EmulatedAutocast | None = None  # the autocast of the last forward pass

    def note(self, text: str) -> None:
        self.notes[text] = self.notes.get(text, 0) + 1


_ACTIVE: list[Session] = []


def active_session() -> Session | None:
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def cuda_session(target: CudaTarget) -> Iterator[Session]:
    """Everything a fake CUDA-target trace runs under (but autocast, entered per forward pass)."""
    import torch.utils.checkpoint as checkpoint_module

    session = Session(target)
    _ACTIVE.append(session)
    F.scaled_dot_product_attention = _patched_sdpa
    checkpoint_module.contextlib = _CheckpointContextlib()  # type: ignore[assignment]
    try:
        with cuda_optimizers(), CudaKernels(target):
            yield session
    finally:
        checkpoint_module.contextlib = contextlib
        F.scaled_dot_product_attention = _SDPA
        _ACTIVE.remove(session)

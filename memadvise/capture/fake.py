"""Recording a fake run: the model lives on the ``meta`` device, so nothing is allocated for real.

A ``TorchDispatchMode`` sees every operator below autograd. Each storage an operator returns that was
not seen before is an allocation of its ``nbytes``; a weak-reference finaliser on the storage records
its free when the last tensor using it goes away. Storages get synthetic identities (meta storages
have no data pointer), so the same bookkeeping as a real run — blocks, categories, the peak — applies.

What a fake run cannot see, and how memadvise handles it:

* Data-dependent operators (``.item()``, ``torch._assert`` on a tensor, ``if tensor:``, ``nonzero``)
  need values meta tensors do not have. Small integer and boolean tensors (and a few-element float
  draw) carry real CPU twins, computed alongside the fake ones, so labels, lengths, masks and the
  checks on them are known. Other values are answered with a stated assumption — ``True`` for
  booleans, ``1`` for numbers, every element for a selection — listed in the profile.
* Operators without a meta implementation run for real on CPU copies (their twins where known,
  zeros otherwise) when their inputs are small (under 64 MiB), and their outputs are turned back into
  meta tensors; each is listed.
* Buffers that kernels allocate internally, outside the dispatcher, are modelled per target device
  (see :mod:`memadvise.capture.kernel_buffers`).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
)
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from memadvise.capture.allocations import Events
from memadvise.capture.kernel_buffers import KernelBufferModel

REAL_FALLBACK_LIMIT = 64 * 2**20
_LOCAL_SCALAR = torch.ops.aten._local_scalar_dense.default
_GROUPED_MM = getattr(torch.ops.aten, "_grouped_mm", None)
_GROUPED_MM_META_DTYPES = (torch.bfloat16, torch.float16)
META = torch.device("meta")


ACTIVE: list[FakeRecorder] = []  # recorders in a session (innermost last), for storage resizes

_MACHINERY = (
    "/torch/_",
    "/torch/utils/",
    "/torch/overrides",
    "memadvise/capture/fake.py",
    "memadvise/capture/cuda_target.py",
)
_LOOP_LIMIT = 3


def _reading_site() -> tuple[str, int]:
    """File and line of the code that read a tensor's value (outside PyTorch's dispatch machinery)."""
    frame = sys._getframe(2)
    while frame is not None and any(part in frame.f_code.co_filename for part in _MACHINERY):
        frame = frame.f_back  # type: ignore[assignment]
    return (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("", 0)


class Assumptions:
    """The values fake tensors are assumed to hold when code reads them, and how often each was made."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._repeats: dict[tuple[str, int], int] = {}

    def note(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def scalar(self, value: torch.Tensor) -> bool | int | float:
        """The assumed value of a read (``.item()``, ``if t:``).

        Checks are assumed True — unless the same line asks again and again, as a rejection-sampling
        loop does (``while True: ... if not mask.any(): break``): after a few rounds it gets False.
        """
        if value.dtype == torch.bool:
            site = _reading_site()
            self._repeats[site] = self._repeats.get(site, 0) + 1
            if self._repeats[site] > _LOOP_LIMIT:
                self._repeats[site] = 0
                self.note("a data-dependent check repeated in a loop was assumed False to end the loop")
                return False
            self.note("a data-dependent check on a tensor was assumed to be True")
            return True
        if "/torch/optim/" not in _reading_site()[0]:  # optimizers' step counters: no memory depends on them
            self.note("a tensor value read with .item() was assumed to be 1")
        return 1.0 if value.dtype.is_floating_point else 1


# Real values of small fake tensors: a fake integer or boolean tensor made by a factory (``randint``,
# ``arange``, ``torch.tensor``) gets a real CPU twin, and so does every small output of an operator whose
# tensor inputs all have twins (or are real). Labels, lengths, masks and the checks computed from them
# are then known, not assumed. Keyed weakly by the fake tensor, so a twin dies with its tensor.
_TWINS: WeakIdKeyDictionary = WeakIdKeyDictionary()
TWIN_LIMIT = 1 << 16  # elements: the values that decide control flow are small
FLOAT_TWIN_LIMIT = 16  # elements of a floating-point factory's output (a random draw, not a weight)
# Operators whose output shape depends on their input values: without twins, all elements are assumed
# selected (the largest output), and that is stated.
_SELECTING = {"nonzero", "argwhere", "masked_select"}
_PLAIN = (int, float, bool, type(None), str)
_SHAPE_ONLY = {"ones_like", "zeros_like", "full_like", "new_ones", "new_zeros", "new_full", "new_empty"}


def _real(a: torch.Tensor) -> torch.Tensor | None:
    """The real values of ``a``: its twin, or ``a`` itself when it is a real CPU tensor."""
    if isinstance(a, FakeTensor) or a.device.type == "meta":
        return _TWINS.get(a)
    if type(a) not in (torch.Tensor, torch.nn.Parameter):
        return _TWINS.get(a)  # a tensor subclass (FSDP2's DTensor) wraps tensors of its own: not real values
    return a if a.device.type == "cpu" else None


def _exact(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and not (t.is_floating_point() or t.is_complex())


def _small(t: Any) -> bool:
    return not isinstance(t, torch.Tensor) or t.numel() <= TWIN_LIMIT


def _run_real(func: Any, args: Any, kwargs: Any, zeros: bool = False) -> Any:
    """``func`` on the real twins of its tensor arguments, or ``None`` where one has none (with
    ``zeros``, such an argument is zero-filled instead)."""
    from torch.utils._python_dispatch import _disable_current_modes
    from torch.utils._pytree import tree_unflatten

    flat, spec = tree_flatten((args, kwargs))
    reals = []
    with _disable_current_modes():
        for a in flat:
            if isinstance(a, torch.Tensor):
                r = _real(a)
                if r is None and zeros:
                    r = torch.zeros(a.shape, dtype=a.dtype)
                if r is None:
                    return None
                reals.append(r)
            else:
                reals.append(a)
        real_args, real_kwargs = tree_unflatten(reals, spec)
        if isinstance(real_kwargs.get("device"), torch.device):
            real_kwargs["device"] = torch.device("cpu")
        try:
            return func(*real_args, **real_kwargs)
        except Exception:  # noqa: BLE001 - no twin then: the fake run decides
            return None


def _twin_outputs(out: Any, real_out: Any) -> None:
    outs, reals = tree_flatten(out)[0], tree_flatten(real_out)[0]
    if len(outs) != len(reals):
        return
    for o, r in zip(outs, reals, strict=True):
        if isinstance(o, torch.Tensor) and isinstance(r, torch.Tensor) and o.shape == r.shape:
            _TWINS[o] = r


def _track_values(
    func: Any, args: Any, kwargs: Any, run: Any, assumed: Assumptions, select: Any = None
) -> Any:
    """Run ``func`` fake (``run``) and, where its inputs' values are known and its outputs small, for
    real on the twins; an operator whose output shape depends on values takes the real output's shape.
    A selection with unknown values is sized by ``select(func, args, kwargs)`` where that gives an
    output (a router's mask in an expert block), else every element is assumed selected."""
    if not kwargs and all(isinstance(a, torch.Tensor) or type(a) in _PLAIN for a in args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
    else:
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    shape_only = _name(func) in _SHAPE_ONLY  # ones_like(x) does not depend on x's values
    known = (shape_only or all(_real(a) is not None for a in tensors)) and all(_small(a) for a in tensors)
    try:
        out = run(*args, **kwargs)
    except (DynamicOutputShapeException, DataDependentOutputException):
        real_out = _run_real(func, args, kwargs) if known and tensors else None
        if real_out is None and all(_real(a) is not None or not _exact(a) for a in tensors):
            # Only floating-point values are unknown (a CTC loss's log-probabilities beside its known
            # lengths): they do not decide the shape; run on zeros for them.
            if sum(a.numel() * a.element_size() for a in tensors) <= REAL_FALLBACK_LIMIT:
                real_out = _run_real(func, args, kwargs, zeros=True)
                if real_out is not None:
                    return tree_map(_like, real_out)
        if real_out is None:
            if _name(func) not in _SELECTING:
                raise
            routed = select(func, args, kwargs) if select is not None else None
            return routed if routed is not None else _all_selected(func, args, kwargs, assumed)
        out = tree_map(_like, real_out)
        _twin_outputs(out, real_out)
        return out
    outs = _tensors_of(out)
    made = not tensors or shape_only  # a factory: exact values, or a few floats (not weights)
    if (
        known
        and outs
        and all(_small(o) for o in outs)
        and (not made or all(_exact(o) or o.numel() <= FLOAT_TWIN_LIMIT for o in outs))
    ):
        real_out = _run_real(func, args, kwargs, zeros=shape_only)
        if real_out is not None:
            _twin_outputs(out, real_out)
            return out
    for o in outs:  # changed in place by values that are not known
        if o in _TWINS and any(o is a for a in tensors):
            del _TWINS[o]
    return out


def _tensors_of(out: Any) -> list[torch.Tensor]:
    """The tensors an operator returned (most return one tensor or a flat tuple of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)) and all(o is None or isinstance(o, torch.Tensor) for o in out):
        return [o for o in out if o is not None]
    return [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]


def _name(func: Any) -> str:
    return func.__name__.split(".")[0] if hasattr(func, "__name__") else str(func)


def _like(real: Any) -> Any:
    """A fake tensor shaped like the real output ``real`` (of the current fake mode)."""
    if not isinstance(real, torch.Tensor):
        return real
    from torch._guards import detect_fake_mode

    mode = detect_fake_mode()
    return mode.from_tensor(real) if mode is not None else real.to("meta")


def _all_selected(func: Any, args: Any, kwargs: Any, assumed: Assumptions) -> Any:
    """A value-dependent output with unknown values: every element assumed selected, and stated."""
    name = _name(func)
    assumed.note(f"{name}: the number of selected elements was unknown; all were assumed selected")

    def ones(a: Any) -> Any:
        return torch.ones(a.shape, dtype=a.dtype) if isinstance(a, torch.Tensor) else a

    from torch.utils._python_dispatch import _disable_current_modes

    with _disable_current_modes():
        real_out = func(*tree_map(ones, args), **tree_map(ones, kwargs))
    return tree_map(_like, real_out)


def read_value(value: torch.Tensor, assumed: Assumptions) -> bool | int | float:
    """A tensor's value read by code (``.item()``, ``if t:``): the real one where it is known."""
    real = _real(value)
    if real is not None:
        from torch.utils._python_dispatch import _disable_current_modes

        with _disable_current_modes():
            return real.item()
    return assumed.scalar(value)


class AssumeScalars(TorchDispatchMode):
    """While a fake model and its batch are built: keep small exact values, answer other reads by
    assumption."""

    def __init__(self) -> None:
        super().__init__()
        self.assumed = Assumptions()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is _LOCAL_SCALAR:
            return read_value(args[0], self.assumed)
        return _track_values(func, args, kwargs or {}, func, self.assumed)


def fake_mode_of(model: torch.nn.Module) -> Any:
    """The FakeTensorMode that made ``model``'s tensors, or ``None`` for a real (or meta) model.

    ``copy.deepcopy`` of a fake tensor copies its ``__dict__``, and with it its mode: a module cloned
    while the model was built (``nn.TransformerEncoder`` clones its layer) holds tensors of a mode of
    its own, which the model's mode treats as foreign — every view of them (each ``weight.t()``) got a
    new storage and counted as a new allocation. Such tensors are given the first tensor's mode here.
    """

    mode = None
    for t in list(model.parameters()) + list(model.buffers()):
        t = getattr(t, "_local_tensor", t)  # a DTensor (FSDP2) holds its shard
        if not isinstance(t, FakeTensor):
            return mode
        if mode is None:
            mode = t.fake_mode
        elif t.fake_mode is not mode:
            t.fake_mode = mode
    return mode


def new_fake_mode() -> Any:
    """A FakeTensorMode for building a model whose tensors report a real device but hold no data."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


@contextmanager
def swappable_parameters(mode: Any) -> Iterator[None]:
    """Let ``module.to(...)`` run on a model being built in ``mode``.

    ``Module._apply`` swaps fake parameters for their converted copies with ``torch.utils.swap_tensors``,
    which refuses tensors that something holds a weak reference to — and the fake mode's converter memo
    holds one to every fake tensor it made. PEFT's ``get_peft_model`` moves each adapter to its base
    layer's device this way. While the model is built, a swap first drops the two tensors from the memo
    (a cache: nothing is lost but a later lookup).
    """
    original = torch.utils.swap_tensors
    memo = mode.fake_tensor_converter.meta_converter.tensor_memo

    def swap(t1: torch.Tensor, t2: torch.Tensor) -> None:
        for key, value in list(memo.items()):
            if value is t1 or value is t2:
                del memo[key]
        original(t1, t2)

    torch.utils.swap_tensors = swap
    try:
        yield
    finally:
        torch.utils.swap_tensors = original


_NATIVE_RNN = {"lstm", "gru", "rnn_tanh", "rnn_relu"}
_IN_NATIVE_RNN = [0]  # depth of torch._VF recurrent calls running (their C++ code calls at::linear)


class _CompositeLikeReal(TorchFunctionMode):
    """Keep composite operators on the path a real tensor takes.

    ``F.linear`` with a bias on a non-contiguous batch of inputs ends in ``output.add_(bias)`` for
    real tensors, but in an out-of-place ``add`` (one more output-sized buffer) for tensor
    subclasses such as fake tensors; here it is computed the real tensors' way. PyTorch's native
    recurrent layers (GRU, RNN, and LSTM off oneDNN) call the same ``at::linear`` from C++ on their
    whole (for ``batch_first``, transposed) input; while one runs, :class:`FakeRecorder` turns that
    bias ``add`` into the in-place one a real tensor gets.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if bias is not None and x.dim() > 2 and not x.is_contiguous():
                return torch.matmul(x, weight.t()).add_(bias)
        if _native_rnn(func):
            _IN_NATIVE_RNN[0] += 1
            try:
                return func(*args, **kwargs)
            finally:
                _IN_NATIVE_RNN[0] -= 1
        return func(*args, **kwargs)


_EVENT_FIELDS = ("time", "ptr", "size", "module", "seq", "op", "group")
def _native_rnn(func: Any) -> bool:
    """Is ``func`` one of ``torch._VF``'s recurrent layers (``_VF.lstm``, ``_VF.gru``, ...)?"""
    name = getattr(func, "__name__", None)
    return name in _NATIVE_RNN and func is getattr(torch._VF, str(name), None)


def _linear_bias_add(func: Any, args: Any, kwargs: Any) -> bool:
    """Is this the out-of-place bias ``add`` that ``at::linear`` makes for tensor subclasses (a
    matrix product's output plus a 1-D bias of its last dimension, inside a native recurrent layer)?"""
    if not _IN_NATIVE_RNN[0] or func is not torch.ops.aten.add.Tensor or kwargs or len(args) != 2:
        return False
    out, bias = args
    return (
        isinstance(out, torch.Tensor)
        and isinstance(bias, torch.Tensor)
        and out.dim() >= 2
        and bias.dim() == 1
        and bias.shape[0] == out.shape[-1]
        and bias.dtype == out.dtype
        and out.is_contiguous()
    )


class FakeRecorder(TorchDispatchMode):
    """Records allocation events of operators running on meta tensors."""

    fake = True

    def __init__(
        self, target: torch.device, module_stack: list[str], fake_mode: Any = None, cuda_target: Any = None
    ) -> None:
        super().__init__()
        self.cuda_target = cuda_target
        # With a FakeTensorMode, tensors carry the target's device (so device-dependent code paths
        # follow the target's, e.g. CPU RNN kernels); without one, they live on the meta device.
        self.fake_mode = fake_mode
        self.device = target if fake_mode is not None else META
        self.target = target
        self.kernels = KernelBufferModel(target)
        self._module_stack = module_stack
        self._ids: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._next_id = 1
        self._clock = 0
        self._group = 0
        self._ev = Events()
        self._node_span: dict[int, list[int]] = {}
        self._op = "<release>"
        self.assumed = Assumptions()
        self.recording = False
        self._resized_away: set[int] = set()
        self.routing: Any = None  # an ExpertRouting (memadvise.capture.moe) for a mixture-of-experts model
        # The last event (an add's output) and the add's operands, while autograd may be accumulating
        # two gradients (see _event).
        self._accumulating: tuple[int, tuple[int, ...]] | None = None

    # -- identities and events -------------------------------------------------------------------
    def now(self) -> int:
        self._clock += 1
        return self._clock

    @staticmethod
    def watch(t: torch.Tensor) -> int | None:
        """Nothing to do: a fake trace's events already hold every storage it sees released."""
        return None

    def key(self, t: torch.Tensor) -> tuple[int, int] | None:
        """A stable synthetic identity for the storage behind ``t`` (assigned on first sight); a
        ``DTensor`` stands for its local shard."""
        t = getattr(t, "_local_tensor", t)
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError, AttributeError):
            return None
        known = self._ids.get(st)
        if known is None:
            known = (self._next_id, self.kernels.round(st.nbytes()))
            self._next_id += 1
            self._ids[st] = known
            if self.recording and known[1]:
                self._event(known[0], known[1])
                weakref.finalize(st, self._freed, known[0], known[1])
        return known

    def _freed(self, ident: int, nbytes: int) -> None:
        if self.recording and ident not in self._resized_away:
            self._event(ident, -nbytes)

    def storage_resized(self, t: torch.Tensor, nbytes: int) -> None:
        """A storage freed in place (``resize_(0)``) or given memory again, as FSDP2 does with its
        unsharded parameters; the tensor object lives on, so no finaliser would see it."""
        key = self.key(t)
        if key is None or not self.recording:
            return
        ident, size = key
        if nbytes == 0 and ident not in self._resized_away:
            self._resized_away.add(ident)
            self._event(ident, -size)
        elif nbytes > 0 and ident in self._resized_away:
            self._resized_away.discard(ident)
            self._event(ident, self.kernels.round(nbytes))

    def _event(self, ident: int, size: int, op: str | None = None) -> None:
        ev = self._ev
        accumulating, self._accumulating = self._accumulating, None
        if (
            accumulating is not None
            and size < 0
            and ident in accumulating[1]
            and len(ev.time) == accumulating[0] + 1
        ):
            self._in_place(ident, size)
            return
        node = torch._C._current_autograd_node()
        seq = node._sequence_nr() if node is not None else -1
        t = self.now()
        if seq >= 0:
            span = self._node_span.setdefault(seq, [t, t])
            span[1] = t
        ev.time.append(t)
        ev.ptr.append(ident)
        ev.size.append(size)
        ev.module.append(self._module_stack[-1] if self._module_stack else None)
        ev.seq.append(seq)
        ev.op.append(op or self._op)
        ev.group.append(self._group)

    def _in_place(self, ident: int, size: int) -> None:
        """Autograd sums two gradients of one tensor in place (``old.add_(new)``) when it holds the only
        reference to one of them, but for tensor subclasses such as fake tensors it computes
        ``old + new``: an operand freed right after that ``add`` is freed before its output is made, as
        the in-place sum needs no new buffer."""
        ev = self._ev
        made = [getattr(ev, name).pop() for name in _EVENT_FIELDS]
        self._event(ident, size, made[_EVENT_FIELDS.index("op")])
        replay = dict(zip(_EVENT_FIELDS, made, strict=True))
        replay["time"] = self.now()
        for name in _EVENT_FIELDS:
            getattr(ev, name).append(replay[name])

    @contextmanager
    def transient(self, nbytes: int, op: str) -> Iterator[None]:
        """A kernel-internal buffer alive around the operator's real work."""
        ident = self._next_id
        self._next_id += 1
        nbytes = self.kernels.round(nbytes)
        self._event(ident, nbytes, op)
        try:
            yield
        finally:
            self._event(ident, -nbytes, op)

    def own_nodes(self, module: str, output: Any) -> None:
        """Give ``module`` the autograd nodes of its outputs that no operator has claimed: a custom
        ``autograd.Function`` runs its forward with grad mode off, so only its output's node tells
        which module its backward belongs to."""
        if not self.recording:
            return
        for t in tree_flatten(output)[0]:
            node = getattr(t, "grad_fn", None) if isinstance(t, torch.Tensor) else None
            if node is not None:
                self._ev.seq_module.setdefault(node._sequence_nr(), module)

    # -- ranges ----------------------------------------------------------------------------------
    def open_module(self, name: str) -> Any:
        return ("module", name, self.now())

    def open_phase(self, phase: str, step: int) -> Any:
        return ("phase", (phase, step), self.now())

    def close(self, handle: Any) -> None:
        kind, what, start = handle
        end = self.now()
        if kind == "module":
            self._ev.module_ranges.append((what, start, end))
        else:
            self._ev.phase_ranges.append((what[0], what[1], start, end))

    # -- running ---------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[None]:
        self.recording = True
        ACTIVE.append(self)
        try:
            if self.fake_mode is not None:
                with self.fake_mode, self, _CompositeLikeReal():
                    yield
            elif self.target.type == "cuda":
                from memadvise.capture.cuda_target import CudaTarget, cuda_session

                target = self.cuda_target or CudaTarget()
                self.assumed.note(target.describe())
                with torch.device("meta"), cuda_session(target) as cuda, self:
                    try:
                        yield
                    finally:
                        for text, n in cuda.notes.items():
                            self.assumed.counts[text] = self.assumed.counts.get(text, 0) + n
            else:
                with torch.device("meta"), self:
                    yield
        finally:
            self.recording = False
            ACTIVE.remove(self)

    def events(self) -> Events:
        ev = self._ev
        ev.node_ranges = [(seq, span[0], span[1]) for seq, span in self._node_span.items()]
        ev.phase_ranges.sort(key=lambda r: r[2])
        return ev

    @property
    def assumptions(self) -> dict[str, int]:
        return self.assumed.counts

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = f"aten::{func.__name__.split('.')[0]}" if hasattr(func, "__name__") else str(func)
        if func is _LOCAL_SCALAR:
            return read_value(args[0], self.assumed)
        self._group += 1
        self._op = name
        if self._module_stack and torch.is_grad_enabled():
            self._ev.seq_module.setdefault(torch._C._autograd._get_sequence_nr() - 1, self._module_stack[-1])
        if _linear_bias_add(func, args, kwargs):
            # a real tensor gets ``output.add_(bias)``: the result is the product's own buffer
            alias = torch.ops.aten.alias.default(args[0])
            self._op = "<release>"
            return alias
        plan = self.kernels.plan(func, args, kwargs)
        with ExitStack() as around_outputs:
            with ExitStack() as before_outputs:
                for nbytes in plan.before_outputs:
                    before_outputs.enter_context(self.transient(nbytes, name))
                for nbytes in plan.around_outputs:
                    around_outputs.enter_context(self.transient(nbytes, name))
                try:
                    if (
                        _GROUPED_MM is not None
                        and func in (_GROUPED_MM.default,)
                        and _grouped_mm_other_dtype(args)
                    ):
                        out: Any = self._grouped_mm(args, kwargs)
                    else:
                        out = _track_values(func, args, kwargs, func, self.assumed, self._routed)
                except NotImplementedError:  # on meta tensors (no fake mode): nonzero too
                    out = self._routed(func, args, kwargs)
                    if out is None:
                        out = self._run_for_real(func, name, args, kwargs)
                if plan.sized_output is not None:
                    index, nbytes = plan.sized_output
                    out = (*out[:index], torch.empty(nbytes, dtype=torch.uint8), *out[index + 1 :])
            for nbytes in plan.after_before:
                around_outputs.enter_context(self.transient(nbytes, name))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.key(t)
        self._accumulating = self._gradient_sum(func, args, kwargs, out)
        self._op = "<release>"
        return out

    def _gradient_sum(
        self, func: Any, args: Any, kwargs: Any, out: Any
    ) -> tuple[int, tuple[int, ...]] | None:
        """For ``a + b`` of equal shapes in the autograd engine, over fake tensors (see :meth:`_in_place`):
        the index of its output's allocation event and the operands' identities."""
        if (
            self.fake_mode is None
            or func is not torch.ops.aten.add.Tensor
            or kwargs
            or len(args) != 2
            or torch._C._current_autograd_node() is None
            or not all(isinstance(a, torch.Tensor) and a.shape == out.shape for a in args)
        ):
            return None
        made = self.key(out)
        operands = [self.key(a) for a in args]
        ev = self._ev
        if made is None or not ev.ptr or ev.ptr[-1] != made[0] or ev.size[-1] <= 0:
            return None
        return len(ev.time) - 1, tuple(k[0] for k in operands if k is not None and k[1] == made[1])

    def _routed(self, func: Any, args: Any, kwargs: Any) -> Any:
        """A selection by a router's mask of unknown values inside an expert block, sized by the
        expert-load assumption (``self.routing``); ``None`` for any other operator."""
        name = _name(func)
        if self.routing is None or name not in _SELECTING:
            return None
        mask = args[1] if name == "masked_select" else args[0]
        if not isinstance(mask, torch.Tensor) or _real(mask) is not None:
            return None
        picked = self.routing.selected(self._module_stack, tuple(mask.shape))
        if picked is None:
            return None
        rows, values, what = picked
        self.assumed.note(f"{name} in an expert block: {what}")
        from torch.utils._python_dispatch import _disable_current_modes

        with _disable_current_modes():
            if name == "masked_select":
                full = torch.broadcast_shapes(args[0].shape, mask.shape)
                real = torch.zeros(rows * (full.numel() // max(1, mask.numel())), dtype=args[0].dtype)
            else:
                real = torch.zeros((rows, mask.dim()), dtype=torch.long)
                if values is not None and mask.dim() == 1:
                    real[:, 0] = torch.tensor(values, dtype=torch.long)
        out = _like(real)
        if values is not None and mask.dim() == 1:
            _TWINS[out] = real  # the expert numbers decide the loop's control flow
        return out

    def _grouped_mm(self, args: Any, kwargs: Any) -> torch.Tensor:
        """``torch._grouped_mm`` in a dtype its meta kernel refuses (fp32, which the CPU kernel takes, as
        mixture-of-experts layers in fp32 use it): the output of the shape its documentation gives."""
        mat_a, mat_b = args[0], args[1]
        offs = args[2] if len(args) > 2 else kwargs.get("offs")
        out_dtype = kwargs.get("out_dtype") or (args[4] if len(args) > 4 else None) or mat_a.dtype
        shape = grouped_mm_shape(
            tuple(mat_a.shape), tuple(mat_b.shape), None if offs is None else offs.shape[0]
        )
        where = "CPU" if self.target.type == "cpu" else "CUDA (whose kernel takes bf16/fp16 only)"
        self.assumed.note(
            f"aten::_grouped_mm in {str(mat_a.dtype).removeprefix('torch.')}: no meta kernel, "
            f"output shaped by its semantics as on {where}"
        )
        return torch.empty(shape, dtype=out_dtype, device=mat_a.device)

    def _run_for_real(self, func: Any, name: str, args: Any, kwargs: Any) -> Any:
        """Run an operator with no meta kernel on small zero-filled CPU inputs; outputs back to meta."""
        flat = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        if sum(a.numel() * a.element_size() for a in flat) > REAL_FALLBACK_LIMIT:
            raise NotImplementedError(f"{name} has no meta implementation and its inputs are too big to run")
        self.assumed.note(f"{name} has no meta implementation: ran on zero-filled CPU inputs")

        def real(a: Any) -> Any:
            if isinstance(a, torch.Tensor):
                known = _real(a)
                return known if known is not None else torch.zeros(a.shape, dtype=a.dtype, device="cpu")
            return a

        with torch.device("cpu"):
            out = func(*tree_map(real, args), **tree_map(real, kwargs))
        if self.fake_mode is not None:
            return tree_map(
                lambda o: self.fake_mode.from_tensor(o) if isinstance(o, torch.Tensor) else o, out
            )
        return tree_map(lambda o: o.to("meta") if isinstance(o, torch.Tensor) else o, out)


def _grouped_mm_other_dtype(args: Any) -> bool:
    """Is this a ``_grouped_mm`` whose meta kernel would refuse the dtype (anything but bf16/fp16)?"""
    return bool(args) and isinstance(args[0], torch.Tensor) and args[0].dtype not in _GROUPED_MM_META_DTYPES


def grouped_mm_shape(a: tuple[int, ...], b: tuple[int, ...], groups: int | None) -> tuple[int, ...]:
    """The output shape of ``torch._grouped_mm(a, b, offs)``: 2D x 3D (tokens sorted by group, one
    matrix per group) gives ``(a0, b2)``; 3D x 2D ``(a1, b1)``; 2D x 2D (groups along the shared
    dimension) ``(groups, a0, b1)``; 3D x 3D a batched matmul ``(a0, a1, b2)``."""
    if len(a) == 2 and len(b) == 3:
        return (a[0], b[2])
    if len(a) == 3 and len(b) == 2:
        return (a[1], b[1])
    if len(a) == 2 and len(b) == 2:
        return (groups or 1, a[0], b[1])
    return (a[0], a[1], b[2])

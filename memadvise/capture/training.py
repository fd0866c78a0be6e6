"""What memadvise runs: the training (or inference) step whose memory it measures.

A training step is PyTorch's tutorial loop as Python runs it: ``out = model(x); loss = loss_fn(out);
loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)``. The output and the loss
stay alive through ``step()`` and ``zero_grad()``, and until the next step's forward pass returns and
its assignment replaces them — so the previous step's output is alive during the next forward pass.
The *lean* loop (``loop="lean"``) releases them right after ``backward()`` instead (``del out, loss``),
as memory-careful training code does. Inference is
``model.eval()`` and a forward under ``torch.no_grad()``. The same code serves the tracer and the
benchmarks, so "one plain step" means exactly what the tracer measures.

A model file may replace the training step with ``train_step(model, inputs, optimizer)`` (GANs, RL,
several losses, gradient clipping, Hugging Face-style loops); it returns the loss or ``None``. Its phases
are found as it runs: every ``backward()`` (through ``torch.autograd.backward``) is a backward phase,
every ``Optimizer.step()`` of any optimizer an optimizer phase, and the rest of the step is forward.
Inference ignores ``train_step``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

import torch

from memadvise.capture.usercode import describe, passes_through
from memadvise.errors import MemadviseError, UsageError
from memadvise.model.profile import Mode, OptimizerName, Phase

TRAIN_LOOPS = ("tutorial", "lean")


def check_train_loop(loop: str) -> str:
    """``loop`` if it names a training loop, else a usage error."""
    if loop not in TRAIN_LOOPS:
        raise UsageError(f"unknown training loop {loop!r}; use tutorial or lean")
    return loop

PhaseContext = Callable[[Phase, int], AbstractContextManager[Any]]
TrainStep = Callable[[torch.nn.Module, Any, "torch.optim.Optimizer | None"], Any]
AfterOptimizer = Callable[[int, "torch.optim.Optimizer"], None]


class StepFailed(MemadviseError):
    """The model's forward, loss or backward raised; ``__cause__`` holds the original exception."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} raised {describe(exc)}")
        self.what = what


class BadStepResult(MemadviseError):
    """``train_step()`` returned something other than the loss (a scalar) or ``None``."""


def check_step_result(result: Any) -> None:
    """A custom step returns the loss (a one-element tensor or a number) or ``None``."""
    if result is None or isinstance(result, (int, float)) and not isinstance(result, bool):
        return
    if isinstance(result, torch.Tensor):
        if result.numel() == 1:
            return
        raise BadStepResult(
            f"train_step() returned a tensor of shape {tuple(result.shape)}; "
            "it must return the loss (a scalar) or None"
        )
    raise BadStepResult(
        f"train_step() returned {type(result).__name__}; it must return the loss (a scalar) or None"
    )


def model_arguments(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How ``example_inputs()``'s value is passed to ``model(...)``: a dict as keyword arguments; a tuple of
    exactly two elements whose first is a tuple or list and whose second is a dict as ``(args, kwargs)``;
    any other tuple or list positionally; anything else as the one argument."""
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if (
        isinstance(inputs, tuple)
        and len(inputs) == 2
        and isinstance(inputs[0], (tuple, list))
        and isinstance(inputs[1], dict)
    ):
        return tuple(inputs[0]), dict(inputs[1])
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """``model(*args, **kwargs)`` with the arguments :func:`model_arguments` finds in ``inputs``."""
    args, kwargs = model_arguments(inputs)
    return model(*args, **kwargs)


def default_loss(output: Any) -> torch.Tensor:
    """``output.loss`` if set; else the first element of a tuple/list, or ``.logits``; then ``.sum()``."""
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    if isinstance(loss, torch.Tensor):
        return loss if loss.dim() == 0 else loss.sum()
    value = output
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    elif getattr(value, "logits", None) is not None:
        value = value.logits
    elif isinstance(value, dict) and "logits" in value:
        value = value["logits"]
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"cannot derive a loss from a model output of type {type(output).__name__}; "
            "define loss_fn(output, inputs)"
        )
    return value.sum()


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    """The optimizers a step can use; only parameters that require grad are optimised."""
    trainable = [p for p in params if p.requires_grad]
    choice = OptimizerName(name)
    if choice is OptimizerName.NONE or not trainable:
        return None
    if choice in (OptimizerName.ADAMW_8BIT, OptimizerName.PAGED_ADAMW_8BIT):
        raise UsageError(
            f"{choice.value} (bitsandbytes) is not traced; profile with adamw and ask "
            f"'memadvise estimate --optimizer {choice.value}' for its memory"
        )
    builders: dict[OptimizerName, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
        OptimizerName.ADAMW: lambda ps: torch.optim.AdamW(ps, lr=1e-3),
        OptimizerName.ADAM: lambda ps: torch.optim.Adam(ps, lr=1e-3),
        OptimizerName.SGD: lambda ps: torch.optim.SGD(ps, lr=1e-2),
        OptimizerName.SGD_MOMENTUM: lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
        OptimizerName.ADAGRAD: lambda ps: torch.optim.Adagrad(ps, lr=1e-2),
        OptimizerName.RMSPROP: lambda ps: torch.optim.RMSprop(ps, lr=1e-2),
        OptimizerName.ADAFACTOR: lambda ps: torch.optim.Adafactor(ps, lr=1e-2),
    }
    return builders[choice](trainable)


def move_to(value: Any, device: torch.device) -> Any:
    """Move every tensor inside nested tuples, lists and dicts to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(move_to(v, device) for v in value)
    return value


def iter_tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested tuples, lists, dicts and dataclass-like outputs."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_tensors(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from iter_tensors(v)


def resolve_device(device: str | None) -> torch.device:
    """``None`` means CUDA when available, else CPU; an unusable choice is a UsageError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use cpu, cuda or meta") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda was asked for, but this machine has no CUDA device available to torch")
    if dev.type not in ("cpu", "cuda", "meta"):
        raise UsageError(f"device {device!r} is not supported; use cpu, cuda or meta (fake tracing)")
    return dev


def _autocast(model: torch.nn.Module, dtype: torch.dtype | None) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of autocast contexts for the model's device (of null contexts without ``dtype``); on
    meta tensors, CUDA's autocast emulated (see :mod:`memadvise.cuda_target`)."""
    if dtype is None:
        return nullcontext
    device = next((p.device.type for p in model.parameters()), "cpu")
    if device == "meta":
        from memadvise.capture.cuda_target import EmulatedAutocast, active_session

        session = active_session()
        if session is None:
            raise UsageError("mixed precision on meta tensors is traced for a CUDA target only")
        target = session.target
        return lambda: EmulatedAutocast(dtype, target)
    if device not in ("cpu", "cuda"):
        raise UsageError(f"mixed precision is traced on cpu or cuda tensors, not {device}")
    return lambda: torch.autocast(device_type=device, dtype=dtype)


PURE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MIXED_DTYPES = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}
TRACED_PRECISIONS = ("fp32", *PURE_DTYPES, *MIXED_DTYPES)


def apply_precision(model: torch.nn.Module, inputs: Any, precision: str) -> tuple[Any, torch.dtype | None]:
    """Put ``model`` (in place) and ``inputs`` in a traced precision; returns the inputs and the
    autocast dtype. ``bf16``/``fp16``: every floating parameter, buffer and input is cast; mixed:
    nothing is cast, the forward pass runs under autocast."""
    if precision not in TRACED_PRECISIONS:
        choices = ", ".join(TRACED_PRECISIONS)
        raise UsageError(f"precision {precision!r} cannot be traced; use one of {choices}")
    if precision in PURE_DTYPES:
        dtype = PURE_DTYPES[precision]
        try:
            model.to(dtype)
        except RuntimeError as exc:
            if "swap" not in str(exc):
                raise
            _cast_in_place(model, dtype)  # fake parameters: torch.utils.swap_tensors refuses them
        return _cast_floats(inputs, dtype), None
    return inputs, MIXED_DTYPES.get(precision)


def _cast_in_place(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """``model.to(dtype)`` by replacing each floating parameter and buffer (tied ones stay tied).

    ``Module.to`` swaps tensor subclasses such as fake tensors with ``torch.utils.swap_tensors``, which
    refuses a tensor that a weak reference points at (fake tensor mode keeps weak references to the
    tensors it has seen)."""
    params: dict[int, torch.nn.Parameter] = {}
    buffers: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and param.is_floating_point() and param.dtype != dtype:
                if id(param) not in params:
                    params[id(param)] = torch.nn.Parameter(param.detach().to(dtype), param.requires_grad)
                module._parameters[name] = params[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                if id(buffer) not in buffers:
                    buffers[id(buffer)] = buffer.to(dtype)
                module._buffers[name] = buffers[id(buffer)]
        if isinstance(module, torch.nn.RNNBase):
            # recurrent layers run on their list of flat weights, which ``Module.to`` refreshes too;
            # left alone it would keep (and run on) the uncast weights
            module._init_flat_weights()


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _cast_floats(v, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_floats(v, dtype) for v in value)
    return value


def _no_phase(phase: Phase, step: int) -> AbstractContextManager[Any]:
    return nullcontext()


def run_steps(
    model: torch.nn.Module,
    inputs: Any,
    *,
    mode: str = Mode.TRAIN.value,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    steps: int = 2,
    phase: PhaseContext = _no_phase,
    after_backward: Callable[[int], None] | None = None,
    after_optimizer: AfterOptimizer | None = None,
    train_step: TrainStep | None = None,
    autocast: torch.dtype | None = None,
    loop: str = "tutorial",
) -> None:
    """Run ``steps`` training or inference steps; ``phase(p, step)`` wraps each part of a step.

    ``train_step`` replaces the default training step (see the module docstring); ``autocast`` runs
    the forward pass and the loss under ``torch.autocast`` with that dtype (mixed precision); ``loop``
    is ``tutorial`` (output and loss alive until the next forward returns) or ``lean`` (released after
    ``backward()``).
    """
    check_train_loop(loop)
    mixed = _autocast(model, autocast)
    if Mode(mode) is Mode.INFERENCE:
        model.eval()
        with torch.no_grad():
            for step in range(steps):
                with phase(Phase.FORWARD, step), mixed():
                    out = _guarded("the forward pass", call_model, model, inputs)
                    del out
        return
    model.train()
    if train_step is not None and autocast is not None:
        raise UsageError(
            "mixed precision with a custom train_step(): put torch.autocast inside train_step() "
            "and profile without --precision"
        )
    if train_step is not None:
        for step in range(steps):
            with _custom_step_phases(step, phase, after_backward, after_optimizer):
                result = _guarded("train_step()", train_step, model, inputs, optimizer)
            check_step_result(result)
            del result
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for step in range(steps):
        with phase(Phase.FORWARD, step), mixed():
            out = _guarded("the forward pass", call_model, model, inputs)
            if loss_fn is not None:
                loss = _guarded("loss_fn()", loss_fn, out, inputs)
            else:
                loss = _guarded("computing the default loss", default_loss, out)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                problem = TypeError("the loss must be a scalar tensor")
                raise StepFailed("the loss", problem) from problem
        with phase(Phase.BACKWARD, step):
            _guarded("the backward pass", loss.backward)
            if loop == "lean":
                del out, loss
        if after_backward is not None:
            after_backward(step)
        with phase(Phase.OPTIMIZER, step):
            if optimizer is not None:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            else:
                for p in params:
                    p.grad = None
        if after_optimizer is not None and optimizer is not None:
            after_optimizer(step, optimizer)


@contextmanager
def _custom_step_phases(
    step: int,
    phase: PhaseContext,
    after_backward: Callable[[int], None] | None,
    after_optimizer: AfterOptimizer | None,
) -> Iterator[None]:
    """Phases of a custom step: forward by default, backward inside ``torch.autograd.backward``,
    optimizer inside any ``Optimizer.step()``; the callbacks run after each backward and optimizer step."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    stack = ExitStack()
    current: list[AbstractContextManager[Any]] = []

    def switch(to: Phase) -> None:
        if current:
            current.pop().__exit__(None, None, None)
        ctx = phase(to, step)
        ctx.__enter__()
        current.append(ctx)

    original_backward = torch.autograd.backward

    def backward(*args: Any, **kwargs: Any) -> Any:
        switch(Phase.BACKWARD)
        try:
            return original_backward(*args, **kwargs)
        finally:
            if after_backward is not None:
                after_backward(step)
            switch(Phase.FORWARD)

    def pre_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        switch(Phase.OPTIMIZER)

    def post_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if after_optimizer is not None:
            after_optimizer(step, opt)
        switch(Phase.FORWARD)

    stack.callback(lambda: current and current.pop().__exit__(None, None, None))
    stack.enter_context(register_optimizer_step_pre_hook(pre_hook))
    stack.enter_context(register_optimizer_step_post_hook(post_hook))
    torch.autograd.backward = backward
    stack.callback(setattr, torch.autograd, "backward", original_backward)
    with stack:
        switch(Phase.FORWARD)
        yield


def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except MemadviseError:
        raise
    except BaseException as exc:  # sys.exit() in forward or the loss too: never an early, silent exit
        if passes_through(exc):
            raise
        raise StepFailed(what, exc) from exc

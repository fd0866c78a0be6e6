"""Profile the steps of the user's own training loop: ``with memadvise.track(model, optimizer) as t:``.

The tracer's hooks and recorder (:class:`memadvise.capture.tracer.Tracer`) watch the steps the user runs
inside the block; nothing else of the loop changes, and nothing of the model is restored afterwards (the
steps are the user's own training). Steps and phases are found as the loop runs, as for a model file's
``train_step()``: every ``backward()`` is the backward phase, every ``optimizer.step()`` the optimizer
phase (``optimizer.step(closure)``, as PyTorch Lightning calls it: the closure's forward and backward
passes first, the update after them), and a step ends where ``optimizer.step()`` returns (without an
optimizer: where a forward pass follows a backward pass). The peak is the largest over the first two
steps (step 1 already holds the optimizer state); with three or more steps, memory that grows from step
to step is reported as a leak.

>>> with memadvise.track(model, optimizer) as t:          # doctest: +SKIP
...     for x, y in batches:
...         loss = loss_fn(model(x), y); loss.backward(); optimizer.step(); optimizer.zero_grad()
>>> t.profile.peak_bytes                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import torch

from memadvise.capture.allocations import BaselineBlock, made_before
from memadvise.capture.training import iter_tensors
from memadvise.errors import UsageError
from memadvise.model.profile import Category, OptimizerName, Phase, Profile

_OPTIMIZER_NAMES: dict[type, str] = {
    torch.optim.AdamW: OptimizerName.ADAMW.value,
    torch.optim.Adam: OptimizerName.ADAM.value,
    torch.optim.Adagrad: OptimizerName.ADAGRAD.value,
    torch.optim.RMSprop: OptimizerName.RMSPROP.value,
    torch.optim.Adafactor: OptimizerName.ADAFACTOR.value,
}


def optimizer_name(opt: torch.optim.Optimizer | None) -> str:
    """The profile's name of ``opt``'s kind (its class name, lower case, when memadvise has none)."""
    if opt is None:
        return OptimizerName.NONE.value
    if isinstance(opt, torch.optim.SGD):
        momentum = any(group.get("momentum", 0) for group in opt.param_groups)
        return (OptimizerName.SGD_MOMENTUM if momentum else OptimizerName.SGD).value
    for cls, name in _OPTIMIZER_NAMES.items():
        if type(opt) is cls:
            return name
    return type(opt).__name__.lower()


def batch_size_of(args: Any, kwargs: Any) -> int:
    """The first dimension of the first tensor of a forward call's arguments (0 when there is none)."""
    for t in iter_tensors((list(args), dict(kwargs or {}))):
        if t.dim() > 0:
            return int(t.shape[0])
    return 0


class LiveSession:
    """Phases and steps of code memadvise does not run itself, over a started :class:`Tracer`.

    ``begin()`` patches ``torch.autograd.backward`` and hooks optimizer steps (of ``optimizer``, or of
    every optimizer when it is ``None``); ``end()`` undoes both. ``root_forward()`` is called as the
    model's forward pass starts. ``on_step(n)`` is called after the ``n``-th optimizer step returns.
    """

    def __init__(
        self,
        tracer: Any,
        optimizer: torch.optim.Optimizer | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.tracer = tracer
        self.optimizer = optimizer
        self.on_step = on_step
        self.step = 0
        self.optimizer_steps = 0
        self.batch_size = 0
        self._current: list[AbstractContextManager[Any]] = []
        self._phase: Phase | None = None
        self._boundary = False
        self._backward_seen = False
        self.in_step = 0  # optimizer.step() calls begun and not yet returned
        self._stack = ExitStack()
        self.original_backward: Callable[..., Any] = torch.autograd.backward
        self.inputs_seen: dict[int, tuple[int, str, int | None]] = {}  # ptr → (bytes, dtype, watch token)

    # -- phases ------------------------------------------------------------------------------------------
    def switch(self, to: Phase) -> None:
        if self._phase is to:
            return
        self.close_phase()
        ctx = self.tracer._phase(to, self.step)
        ctx.__enter__()
        self._current.append(ctx)
        self._phase = to

    def close_phase(self) -> None:
        if self._current:
            self._current.pop().__exit__(None, None, None)
        self._phase = None

    def root_forward(self, args: Any = (), kwargs: Any = None) -> None:
        """The model's forward pass starts: a new step when an optimizer step ended the last one."""
        if not self.batch_size:
            self.batch_size = batch_size_of(args, kwargs)
        recorder = self.tracer.recorder
        for t in iter_tensors((list(args), dict(kwargs or {}))):
            key = recorder.key(t)
            if key is not None and key[1] and t.device.type == recorder.device.type:
                if key[0] not in self.inputs_seen:  # watched: if made before, its end is seen too
                    nbytes = self.tracer.sizes.round(key[1])
                    self.inputs_seen[key[0]] = (nbytes, str(t.dtype), recorder.watch(t))
        if self._boundary or (self.optimizer_steps == 0 and self._no_optimizer() and self._backward_seen):
            self.step += 1
            self._boundary = self._backward_seen = False
        self.switch(Phase.FORWARD)

    def _no_optimizer(self) -> bool:
        return self.optimizer is None

    # -- hooks ---------------------------------------------------------------------------------------------
    def begin(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        original_backward = self.original_backward = torch.autograd.backward

        def backward(*args: Any, **kwargs: Any) -> Any:
            self.switch(Phase.BACKWARD)
            try:
                return original_backward(*args, **kwargs)
            finally:
                self.tracer.after_backward(self.step)
                self._backward_seen = True
                # Inside optimizer.step(closure) the update follows the closure's backward pass.
                self.switch(Phase.OPTIMIZER if self.in_step else Phase.FORWARD)

        def pre_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> Any:
            self.in_step += 1
            closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
            if closure is None:
                self.switch(Phase.OPTIMIZER)
                return None
            # The closure runs first (PyTorch Lightning, LBFGS): its forward pass switches the phase and
            # begins the step, and the update follows once it returns.

            def closure_then_update(*c_args: Any, **c_kwargs: Any) -> Any:
                try:
                    return closure(*c_args, **c_kwargs)
                finally:
                    self.switch(Phase.OPTIMIZER)

            if "closure" in kwargs:
                return args, {**kwargs, "closure": closure_then_update}
            return (args[0], closure_then_update, *args[2:]), kwargs

        def post_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.in_step = max(self.in_step - 1, 0)
            if self.tracer.optimizer_name == OptimizerName.NONE.value:
                self.tracer.optimizer_name = optimizer_name(opt)
            self.tracer.after_optimizer(self.step, opt)
            self.optimizer_steps += 1
            self._boundary = True
            if self.on_step is not None:
                self.on_step(self.optimizer_steps)

        if self.optimizer is not None:
            self._stack.enter_context(self.optimizer.register_step_pre_hook(pre_hook))
            self._stack.enter_context(self.optimizer.register_step_post_hook(post_hook))
        else:
            self._stack.enter_context(register_optimizer_step_pre_hook(pre_hook))
            self._stack.enter_context(register_optimizer_step_post_hook(post_hook))
        torch.autograd.backward = backward
        self._stack.callback(setattr, torch.autograd, "backward", original_backward)
        self.switch(Phase.FORWARD)

    def end(self) -> None:
        try:
            self.close_phase()
        finally:
            self._stack.close()

    def inputs_made_before(self, events: Any) -> list[BaselineBlock]:
        """The model's inputs whose memory no recorded event allocated: made before the recording
        (see :func:`~memadvise.capture.allocations.made_before`)."""
        made = made_before(events, {ptr: seen[2] for ptr, seen in self.inputs_seen.items()})
        return [
            BaselineBlock(
                ptr=ptr,
                nbytes=nbytes,
                category=Category.INPUTS.value,
                module="<inputs>",
                dtype=dtype.removeprefix("torch."),
            )
            for ptr, (nbytes, dtype, _) in self.inputs_seen.items()
            if ptr in made
        ]

    @property
    def steps_seen(self) -> int:
        """Steps begun (a step whose optimizer step has not run yet counts)."""
        return self.step + 1


def existing_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, recorder: Any
) -> list[BaselineBlock]:
    """Gradients and optimizer state already alive when tracking starts (a loop resumed midway), each
    watched by the recorder (which then sees it destroyed during the steps)."""
    owners: dict[int, str] = {}
    for mod_name, module in model.named_modules():
        for _, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), mod_name)
    blocks: dict[int, BaselineBlock] = {}

    def add(t: torch.Tensor, category: Category, module: str) -> None:
        key = recorder.key(t)
        if key is not None and key[1] and t.device.type == recorder.device.type and key[0] not in blocks:
            recorder.watch(t)
            blocks.setdefault(
                key[0],
                BaselineBlock(
                    ptr=key[0],
                    nbytes=key[1],
                    category=category.value,
                    module=module,
                    dtype=str(t.dtype).removeprefix("torch."),
                ),
            )

    for p in model.parameters():
        if p.grad is not None:
            add(p.grad, Category.GRADIENTS, owners.get(id(p), ""))
    if optimizer is not None:
        for p, state in optimizer.state.items():
            for t in iter_tensors(dict(state)):
                add(t, Category.OPTIMIZER_STATE, owners.get(id(p), ""))
    return list(blocks.values())


class Track:
    """``with track(model, optimizer) as t: …`` — ``t.profile`` after the block (see the module doc)."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        name: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"track() takes a torch.nn.Module, not {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise UsageError(
                f"track()'s optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}"
            )
        self.model = model
        self.optimizer = optimizer
        self.name = name or type(model).__name__
        self.batch_size = batch_size
        self._profile: Profile | None = None
        self._tracer: Any = None
        self._session: LiveSession | None = None
        self._root_hook: Any = None

    def __enter__(self) -> Track:
        from memadvise.capture.tracer import Tracer

        if any(p.device.type == "meta" for p in self.model.parameters()):
            raise UsageError(
                "track() watches real steps; a model on the meta device has no memory to measure"
            )
        tracer = Tracer(
            self.model,
            mode="train",
            optimizer=OptimizerName.NONE.value,
            name=self.name,
            preserve_state=False,
        )
        tracer.optimizer_name = optimizer_name(self.optimizer)
        session = LiveSession(tracer, self.optimizer)

        def root_pre_hook(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
            session.root_forward(args, kwargs)

        tracer.install_hooks()
        self._root_hook = self.model.register_forward_pre_hook(root_pre_hook, prepend=True, with_kwargs=True)
        tracer.start(None, existing_state(self.model, self.optimizer, tracer.recorder))
        self._tracer, self._session = tracer, session
        try:
            session.begin()
        except BaseException:
            self._teardown()
            raise
        return self

    def _teardown(self) -> None:
        tracer, session = self._tracer, self._session
        self._session = None  # the block has ended: batch_starts() is refused from here on
        try:
            if session is not None:
                session.end()
        finally:
            if self._root_hook is not None:
                self._root_hook.remove()
                self._root_hook = None
            tracer.stop()
            for handle in tracer._handles:
                handle.remove()
            tracer._handles.clear()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        tracer, session = self._tracer, self._session
        self._teardown()
        if exc_type is not None:
            return  # the loop's own error propagates; there is no profile
        assert session is not None
        tracer.steps = max(session.steps_seen, 1)
        tracer.batch_size = self.batch_size if self.batch_size is not None else session.batch_size
        tracer.train_loop = "train_step"
        self._profile = tracer.finish(None, train_step=True, more_baseline=session.inputs_made_before)

    def batch_starts(self, batch: Any) -> None:
        """Mark the start of a training batch, for loops that call a part of the watched model rather
        than the model itself (a ``LightningModule`` whose ``training_step`` calls ``self.net``): a new
        step begins here when an optimizer step ended the last one, and ``batch`` counts as the model's
        input (its first tensor's first dimension is the batch size) as at the model's own forward pass."""
        if self._session is None:
            raise UsageError("track().batch_starts() is called inside its with block, while the steps run")
        self._session.root_forward((batch,), None)

    @property
    def profile(self) -> Profile:
        """The profile of the steps run inside the block (available after it ends)."""
        if self._profile is None:
            raise UsageError("track()'s profile is ready when the with block has ended without an error")
        return self._profile


def track(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    name: str | None = None,
    batch_size: int | None = None,
) -> Track:
    """Profile the training steps the caller runs inside ``with track(model, optimizer) as t:``.

    ``t.profile`` (after the block) is the same :class:`~memadvise.model.profile.Profile` as
    ``memadvise profile`` writes. ``optimizer`` limits the optimizer phase to that optimizer's
    ``step()`` (default: any optimizer); ``batch_size`` defaults to the first dimension of the first
    tensor passed to the model.
    """
    return Track(model, optimizer, name=name, batch_size=batch_size)

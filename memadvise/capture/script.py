"""Profile an unmodified training script: ``memadvise run train.py ARGS…``.

The script runs as ``python train.py ARGS…`` would run it (``runpy``, ``sys.argv`` set, its folder first
on ``sys.path``), with hooks that every module and optimizer calls:

* global module forward hooks (``register_module_forward_pre_hook``): the first module whose forward
  pass starts outside any other, in training mode with trainable parameters, is the model; the trace
  starts there (its parameters, buffers and that first batch are what is alive at the start), and its
  submodules' calls are attributed as a model file's are;
* optimizer step hooks (``register_optimizer_step_pre_hook``/``post_hook``) and ``torch.autograd.backward``
  give the phases and the steps, as in :mod:`memadvise.capture.track` (PyTorch Lightning's
  ``optimizer.step(closure)`` included: its model is found inside the closure, in the first step);
* the tracer's saved-tensor hooks see what is saved for backward.

After the ``steps``-th optimizer step the profile is built and the script is stopped (an exception
that ``except Exception`` does not catch), or, with ``keep_going``, left to finish untraced.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from memadvise.capture.loader import user_code_error
from memadvise.capture.track import LiveSession, existing_state
from memadvise.errors import ModelFileError, UsageError
from memadvise.model.profile import OptimizerName, Profile


class _StopScript(BaseException):
    """Raised inside the script once its steps are traced (a BaseException: ``except Exception`` lets
    it through)."""


@contextmanager
def _as_main(script: Path, args: list[str]) -> Iterator[None]:
    """``sys.argv`` and ``sys.path[0]`` as ``python script args…`` sets them; restored afterwards."""
    argv, path, before = sys.argv[:], sys.path[:], set(sys.modules)
    folder = script.parent.resolve()
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.argv[:] = argv
        sys.path[:] = path
        for name in set(sys.modules) - before:  # the script's own modules: a later run imports them afresh
            source = getattr(sys.modules[name], "__file__", None)
            if source and Path(source).resolve().is_relative_to(folder):
                del sys.modules[name]


def _call_kwargs(module: torch.nn.Module) -> dict[str, Any]:
    """The keyword arguments of ``module``'s call now starting (global forward hooks are given only the
    positional ones): read from the frame of ``Module._call_impl`` that runs the hooks."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            break
        if frame.f_locals.get("self") is module and isinstance(frame.f_locals.get("kwargs"), dict):
            return dict(frame.f_locals["kwargs"])
        frame = frame.f_back
    return {}


def _optimizer_steps_running() -> int:
    """How many ``optimizer.step()`` calls are running on the stack now (a model whose first forward pass
    runs in the closure of ``optimizer.step(closure)``, as PyTorch Lightning calls it, is found there)."""
    import torch.optim.optimizer as optim_module

    running = 0
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if (
            code.co_name == "wrapper"
            and code.co_filename == optim_module.__file__
            and isinstance(frame.f_locals.get("self"), torch.optim.Optimizer)
        ):
            running += 1  # the wrapper that runs an optimizer's step hooks around its step()
        frame = frame.f_back
    return running


class ScriptRun:
    """One run of ``script``, tracing its first ``steps`` optimizer steps."""

    def __init__(self, script: Path, args: list[str], *, steps: int = 2, keep_going: bool = False) -> None:
        self.script = script
        self.args = args
        self.steps = steps
        self.keep_going = keep_going
        self.tracer: Any = None
        self.session: LiveSession | None = None
        self.names: dict[int, str] = {}
        self.profile: Profile | None = None
        self.active = True
        self._depth = 0
        self._hooks = ExitStack()

    # -- global module hooks -------------------------------------------------------------------------------
    def _forward_pre(self, module: torch.nn.Module, args: Any) -> None:
        if not self.active:
            return
        if self.tracer is None and self._depth == 0 and self._is_model(module):
            self._start(module, args)
        name = self.names.get(id(module))
        if name is None:
            return
        if name == "" and self.session is not None:
            self.session.root_forward(args, _call_kwargs(module))
        self.tracer._pre_hook(name)(module, args)

    def _forward_post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not self.active:
            return
        name = self.names.get(id(module))
        if name is not None:
            self.tracer._post_hook(name)(module, args, output)

    def _depth_pre(self, module: torch.nn.Module, args: Any) -> None:
        self._depth += 1

    def _depth_post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self._depth = max(self._depth - 1, 0)

    @staticmethod
    def _is_model(module: torch.nn.Module) -> bool:
        return (
            module.training
            and torch.is_grad_enabled()
            and any(p.requires_grad and p.device.type != "meta" for p in module.parameters())
        )

    # -- the trace -----------------------------------------------------------------------------------------
    def _start(self, model: torch.nn.Module, args: Any) -> None:
        from memadvise.capture.tracer import Tracer

        tracer = Tracer(
            model,
            mode="train",
            optimizer=OptimizerName.NONE.value,
            name=self.script.stem,
            preserve_state=False,
        )
        self.names = {id(m): name for name, m in model.named_modules()}
        tracer.start((args, _call_kwargs(model)), existing_state(model, None, tracer.recorder))
        session = LiveSession(tracer, None, on_step=self._on_step)
        session.in_step = _optimizer_steps_running()  # found inside optimizer.step(closure): Lightning
        self.tracer, self.session = tracer, session
        session.begin()

    def _on_step(self, n: int) -> None:
        if n < self.steps or not self.active:
            return
        self._finish()
        if not self.keep_going:
            raise _StopScript

    def _finish(self) -> None:
        """Stop tracing and build the profile of the steps seen (hooks go inert; removed at the end)."""
        self.active = False
        tracer, session = self.tracer, self.session
        if tracer is None or session is None:
            return
        try:
            session.close_phase()
            # Only torch.autograd.backward is put back here: the optimizer hooks may be running now.
            torch.autograd.backward = session.original_backward
        finally:
            tracer.stop()
        tracer.steps = max(min(session.steps_seen, session.optimizer_steps or 1), 1)
        tracer.batch_size = session.batch_size
        self.profile = tracer.finish(None, train_step=True, more_baseline=session.inputs_made_before)

    # -- running -------------------------------------------------------------------------------------------
    def run(self) -> Profile:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        if not self.script.is_file():
            kind = "a directory" if self.script.is_dir() else "not found"
            raise UsageError(f"script '{self.script}' is {kind}; give the Python training script to run")
        hooks = self._hooks
        hooks.enter_context(register_module_forward_pre_hook(self._forward_pre))
        hooks.enter_context(register_module_forward_pre_hook(self._depth_pre))
        hooks.enter_context(register_module_forward_hook(self._forward_post))
        hooks.enter_context(register_module_forward_hook(self._depth_post))
        error: BaseException | None = None
        try:
            with _as_main(self.script, self.args):
                runpy.run_path(str(self.script), run_name="__main__")
        except _StopScript:
            pass
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = exc
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - the script's own error, told in one line
            error = exc
        finally:
            if self.active:
                self._finish()
            if self.session is not None:
                self.session.end()
            hooks.close()
        if self.profile is not None and (error is None or self.profile.steps >= self.steps):
            return self.profile
        if isinstance(error, SystemExit):
            raise ModelFileError(f"{self.script}: the script exited with status {error.code} {self._when()}")
        if error is not None:
            raise user_code_error(self.script, f"{self._when()}, the script raised", error) from error
        if self.tracer is None:
            raise ModelFileError(
                f"{self.script}: the script ended without calling a model in training mode "
                "(a module with trainable parameters, outside torch.no_grad()); nothing to profile"
            )
        raise ModelFileError(f"{self.script}: the script ended before any traced step completed")

    def _when(self) -> str:
        if self.session is None:
            return "before its model's first forward pass"
        return f"after {self.session.optimizer_steps} of {self.steps} optimizer steps"


def run_script(
    script: str | os.PathLike[str], args: list[str] | None = None, *, steps: int = 2, keep_going: bool = False
) -> Profile:
    """Run ``script`` with ``args`` and profile its first ``steps`` optimizer steps (see the module doc)."""
    if steps < 1:
        raise UsageError(f"steps must be at least 1, not {steps}")
    return ScriptRun(Path(script), list(args or []), steps=steps, keep_going=keep_going).run()

"""Load a user's model file: ``build_model()``, ``example_inputs(batch_size)`` and optional extras.

The optional functions are ``loss_fn(output, inputs)``, ``train_step(model, inputs, optimizer)`` (which
replaces the whole default training step and returns the loss or ``None``) and ``make_dataloader()``
(whose ``num_workers``, ``prefetch_factor`` and ``pin_memory`` give the host-memory estimate).

``path/to/model.py:make_big`` picks another factory than ``build_model``. Every failure inside the
user's file becomes a :class:`ModelFileError` naming the file, the line and the problem.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from memadvise.capture.usercode import describe, passes_through, user_argv
from memadvise.errors import ModelFileError

DEFAULT_FACTORY = "build_model"
USER_MODULE_PREFIX = "memadvise_user_model_"
#: Where every "not a model file" error points: the template, and the targets that need no model file.
TARGET_HINT = (
    "write one with `memadvise init model.py`, or give a Hugging Face config folder or Hub name, "
    "timm:NAME or torchvision:NAME"
)


@dataclass(frozen=True)
class ModelSpec:
    """What a model file provides; ``name`` is how reports refer to the model."""

    path: Path
    name: str
    factory_name: str
    build_model: Callable[[], Any]
    example_inputs: Callable[..., Any]
    loss_fn: Callable[[Any, Any], Any] | None
    module: ModuleType
    train_step: Callable[[Any, Any, Any], Any] | None = None
    make_dataloader: Callable[[], Any] | None = None
    seq_len: int | None = None

    @property
    def takes_seq_len(self) -> bool:
        """Does ``example_inputs`` accept a ``seq_len`` argument (``example_inputs(batch_size, seq_len)``)?"""
        import inspect

        try:
            return "seq_len" in inspect.signature(self.example_inputs).parameters
        except (TypeError, ValueError):
            return False

    def with_seq_len(self, seq_len: int | None) -> ModelSpec:
        """This spec, making its batches ``seq_len`` long (checked against ``example_inputs``)."""
        if seq_len is None:
            return self
        if seq_len < 1:
            raise ModelFileError(f"sequence length must be at least 1, not {seq_len}")
        if not self.takes_seq_len:
            raise ModelFileError(
                f"{self.path}: example_inputs(batch_size) takes no seq_len; define "
                "example_inputs(batch_size, seq_len=...) to profile other sequence lengths"
            )
        return replace(self, seq_len=seq_len)

    def build(self) -> Any:
        """Call the factory and check that it returns an ``nn.Module``."""
        import torch

        model = self.call(self.factory_name, self.build_model)
        if not isinstance(model, torch.nn.Module):
            raise ModelFileError(
                f"{self.path}: {self.factory_name}() returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model

    def inputs(self, batch_size: int) -> Any:
        if self.seq_len is not None:
            return self.call(
                "example_inputs", lambda b: self.example_inputs(b, seq_len=self.seq_len), batch_size
            )
        return self.call("example_inputs", self.example_inputs, batch_size)

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a function of the user's file, turning its exceptions into one clear error."""
        try:
            return fn(*args)
        except ModelFileError:
            raise
        except BaseException as exc:  # sys.exit() and the like too: never an early, silent exit
            if passes_through(exc):
                raise
            raise user_code_error(self.path, f"{what}() raised", exc) from exc


def split_target(target: str) -> tuple[Path, str]:
    """``model.py:factory`` → (path, factory); a bare path uses ``build_model``."""
    path_text, sep, factory = str(target).rpartition(":")
    if sep and factory.isidentifier() and path_text:
        return Path(path_text), factory
    return Path(target), DEFAULT_FACTORY


def user_frame(path: Path, exc: BaseException) -> str:
    """``:LINE`` of the innermost traceback frame inside ``path``, or ``""``."""
    resolved = str(path.resolve())
    line = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename).resolve().as_posix() == Path(resolved).as_posix():
            line = f":{frame.lineno}"
    return line


def user_code_error(path: Path, what: str, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"{path}{user_frame(path, exc)}: {what} {describe(exc)}")


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Let the model file import modules that sit beside it."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def _import_file(path: Path) -> ModuleType:
    name = f"{USER_MODULE_PREFIX}{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _on_sys_path(path.parent.resolve()), user_argv(path):
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ModelFileError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except BaseException as exc:  # sys.exit() at import too: never an early, silent exit
        sys.modules.pop(name, None)
        if passes_through(exc):
            raise
        raise user_code_error(path, "importing the file raised", exc) from exc
    return module


def check_model_path(target: str | Path) -> tuple[Path, str]:
    """The model file's path and factory name, checked without importing anything (so that the command
    line can refuse a wrong path before torch is imported, which takes seconds)."""
    path, factory_name = split_target(str(target))
    if not path.exists():
        raise ModelFileError(f"model file '{path}' not found; {TARGET_HINT}")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory without a config.json; {TARGET_HINT}")
    return path, factory_name


def load_model_file(target: str | Path) -> ModelSpec:
    """Import a model file (``file.py`` or ``file.py:factory``) and check what it defines."""
    path, factory_name = check_model_path(target)
    module = _import_file(path)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        hint = "" if factory_name != DEFAULT_FACTORY else " returning a torch.nn.Module"
        raise ModelFileError(f"{path}: defines no function {factory_name}(){hint}; {TARGET_HINT}")
    example_inputs = getattr(module, "example_inputs", None)
    if not callable(example_inputs):
        raise ModelFileError(f"{path}: defines no function example_inputs(batch_size); {TARGET_HINT}")
    loss_fn = getattr(module, "loss_fn", None)
    if loss_fn is not None and not callable(loss_fn):
        raise ModelFileError(f"{path}: loss_fn is defined but is not a function")
    extras: dict[str, Callable[..., Any] | None] = {}
    for extra in ("train_step", "make_dataloader"):
        fn = getattr(module, extra, None)
        if fn is not None and not callable(fn):
            raise ModelFileError(f"{path}: {extra} is defined but is not a function")
        extras[extra] = fn
    name = path.stem if factory_name == DEFAULT_FACTORY else f"{path.stem}:{factory_name}"
    return ModelSpec(
        path=path,
        name=name,
        factory_name=factory_name,
        build_model=factory,
        example_inputs=example_inputs,
        loss_fn=loss_fn,
        module=module,
        train_step=extras["train_step"],
        make_dataloader=extras["make_dataloader"],
    )

"""Loading model files: ``file.py`` / ``file.py:factory``, and one-line errors naming file and line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import memadvise
from memadvise import ModelFileError
from memadvise.api import profile_file
from memadvise.capture.loader import DEFAULT_FACTORY, load_model_file, split_target

MODELS = Path(__file__).resolve().parents[1] / "models"
FAIL_MARK = "# <- fails"


def marked_line(path: Path) -> int:
    """Line number (1-based) of the one line the file marks as failing."""
    lines = [
        i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if FAIL_MARK in text
    ]
    assert len(lines) == 1, f"{path.name} should mark exactly one line"
    return lines[0]


def syntax_error_line(path: Path) -> int:
    try:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except SyntaxError as exc:
        assert exc.lineno is not None
        return exc.lineno
    raise AssertionError(f"{path.name} compiles")


def load_error(target: str | Path, batch_size: int = 2) -> str:
    with pytest.raises(ModelFileError) as info:
        profile_file(target, batch_size=batch_size, device="cpu")
    message = str(info.value)
    assert message.strip() == message and message
    assert "\n" not in message, f"error spans lines: {message!r}"
    assert "Traceback" not in message
    return message


# -- split_target ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "factory"),
    [
        ("model.py", "model.py", DEFAULT_FACTORY),
        ("dir/model.py:build_small", "dir/model.py", "build_small"),
        ("model.py:_private2", "model.py", "_private2"),
        ("model.py:not-a-name", "model.py:not-a-name", DEFAULT_FACTORY),
        ("model.py:", "model.py:", DEFAULT_FACTORY),
        (r"C:\models\net.py", r"C:\models\net.py", DEFAULT_FACTORY),
        (r"C:\models\net.py:make", r"C:\models\net.py", "make"),
    ],
)
def test_split_target(target: str, path: str, factory: str) -> None:
    assert split_target(target) == (Path(path), factory)


# -- good files -----------------------------------------------------------------------------------


def test_default_factory_and_inputs() -> None:
    spec = load_model_file(MODELS / "tiny_mlp.py")
    assert spec.name == "tiny_mlp"
    assert spec.factory_name == "build_model"
    assert spec.loss_fn is None
    model = spec.build()
    assert isinstance(model, nn.Module)
    batch = spec.inputs(5)
    assert isinstance(batch, torch.Tensor) and batch.shape[0] == 5


def test_named_factory_picks_that_function() -> None:
    small = load_model_file(f"{MODELS / 'factories.py'}:build_small")
    wide = load_model_file(f"{MODELS / 'factories.py'}:build_wide")
    assert small.name == "factories:build_small" and wide.name == "factories:build_wide"
    n_small = sum(p.numel() for p in small.build().parameters())
    n_wide = sum(p.numel() for p in wide.build().parameters())
    assert n_small == 6 * 5 + 5 * 3
    assert n_wide == 6 * 64 + 64 * 3


def test_profile_file_with_a_named_factory() -> None:
    prof = profile_file(f"{MODELS / 'factories.py'}:build_small", batch_size=3, device="cpu")
    assert prof.model == "factories:build_small"
    assert prof.param_bytes == 4 * (6 * 5 + 5 * 3)
    assert prof.batch_size == 3
    assert prof.input_bytes == 3 * 6 * 4


def test_dict_inputs_and_custom_loss() -> None:
    spec = load_model_file(MODELS / "dict_inputs_with_loss.py")
    assert callable(spec.loss_fn)
    prof = profile_file(MODELS / "dict_inputs_with_loss.py", batch_size=4, device="cpu")
    assert prof.input_bytes == 4 * (4 * 5 + 4)
    assert prof.grad_bytes == prof.param_bytes == 4 * (5 * 7 + 7 + 7 + 1)


def test_sibling_modules_can_be_imported_and_sys_path_is_restored(tmp_path: Path) -> None:
    (tmp_path / "blocks_beside_model.py").write_text(
        "from __future__ import annotations\nimport torch\n\n"
        "def block() -> torch.nn.Module:\n    return torch.nn.Linear(3, 3)\n",
        encoding="utf-8",
    )
    model_file = tmp_path / "uses_sibling.py"
    model_file.write_text(
        "from __future__ import annotations\nimport torch\nfrom blocks_beside_model import block\n\n"
        "def build_model() -> torch.nn.Module:\n    return block()\n\n"
        "def example_inputs(batch_size: int) -> torch.Tensor:\n    return torch.randn(batch_size, 3)\n",
        encoding="utf-8",
    )
    path_before = list(sys.path)
    spec = load_model_file(model_file)
    assert sys.path == path_before
    assert isinstance(spec.build(), nn.Linear)


def test_loading_twice_gives_independent_modules() -> None:
    a = load_model_file(MODELS / "tiny_mlp.py")
    b = load_model_file(MODELS / "tiny_mlp.py")
    assert a.module is not b.module
    assert a.module.__name__ != b.module.__name__


# -- bad files ------------------------------------------------------------------------------------


def test_missing_file() -> None:
    message = load_error(MODELS / "does_not_exist.py")
    assert "does_not_exist.py" in message and "not found" in message


def test_directory() -> None:
    message = load_error(MODELS)
    assert str(MODELS) in message and "directory" in message


def test_syntax_error_names_file_and_line() -> None:
    path = MODELS / "syntax_error.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{syntax_error_line(path)}:")
    assert "syntax error" in message


def test_import_failure_names_file_line_and_exception() -> None:
    path = MODELS / "import_raises.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{marked_line(path)}:")
    assert "ModuleNotFoundError" in message and "memadvise_absent_dependency" in message


def test_missing_build_model() -> None:
    path = MODELS / "no_build_model.py"
    message = load_error(path)
    assert str(path) in message and "build_model()" in message


def test_missing_named_factory() -> None:
    message = load_error(f"{MODELS / 'factories.py'}:build_huge")
    assert "factories.py" in message and "build_huge()" in message


def test_factory_name_is_not_a_default_when_file_lacks_build_model() -> None:
    message = load_error(MODELS / "factories.py")
    assert "factories.py" in message and "build_model()" in message


def test_missing_example_inputs() -> None:
    path = MODELS / "no_example_inputs.py"
    message = load_error(path)
    assert str(path) in message and "example_inputs(batch_size)" in message


def test_loss_fn_that_is_not_a_function() -> None:
    path = MODELS / "loss_not_callable.py"
    message = load_error(path)
    assert str(path) in message and "loss_fn" in message


def test_build_model_that_raises_names_the_innermost_line_of_the_file() -> None:
    path = MODELS / "build_raises.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{marked_line(path)}:"), message
    assert "build_model() raised RuntimeError" in message


def test_build_model_returning_a_non_module() -> None:
    path = MODELS / "returns_not_module.py"
    message = load_error(path)
    assert str(path) in message
    assert "build_model()" in message and "OrderedDict" in message and "torch.nn.Module" in message


def test_example_inputs_that_raises() -> None:
    path = MODELS / "example_inputs_raises.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{marked_line(path)}:"), message
    assert "example_inputs() raised FileNotFoundError" in message


def test_forward_that_raises_gives_the_line_and_only_the_first_message_line() -> None:
    path = MODELS / "forward_raises.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{marked_line(path)}:"), message
    assert "forward" in message and "ValueError: expected 3 features, got 4" in message
    assert "model card" not in message  # second line of the exception message is dropped


def test_loss_fn_that_raises() -> None:
    path = MODELS / "loss_raises.py"
    message = load_error(path)
    assert message.startswith(f"{path}:{marked_line(path)}:"), message
    assert "loss_fn() raised AttributeError" in message


def test_non_scalar_loss_is_a_one_line_model_file_error() -> None:
    path = MODELS / "nonscalar_loss.py"
    message = load_error(path)
    assert str(path) in message and "scalar" in message


def test_non_scalar_loss_message_reads_once() -> None:
    message = load_error(MODELS / "nonscalar_loss.py")
    assert "StepFailed" not in message
    assert message.count(" raised ") == 1


def test_batch_size_and_device_are_checked_before_the_file_is_run() -> None:
    with pytest.raises(memadvise.UsageError, match="batch size"):
        profile_file(MODELS / "tiny_mlp.py", batch_size=0)
    with pytest.raises(memadvise.UsageError, match="device"):
        profile_file(MODELS / "tiny_mlp.py", device="tpu")


def test_positional_and_keyword_inputs_together() -> None:
    """``((x,), {"bias": b})``: x positionally, bias (keyword-only in forward) by name; both are inputs."""
    prof = profile_file(MODELS / "args_and_kwargs.py", batch_size=3, device="cpu")
    assert prof.input_bytes == 2 * 3 * 6 * 4
    assert prof.param_bytes == 4 * (6 * 6 + 6)


@pytest.mark.parametrize(
    ("inputs", "args", "kwargs"),
    [
        (((1, 2), {"k": 3}), (1, 2), {"k": 3}),
        (([1], {}), (1,), {}),
        (((1, 2), {"k": 3}, 4), ((1, 2), {"k": 3}, 4), {}),  # three elements: all positional
        ([(1,), {"k": 3}], ((1,), {"k": 3}), {}),  # a list is always positional
        ((1, {"k": 3}), (1, {"k": 3}), {}),  # the first is not a tuple/list: positional
        ({"k": 3}, (), {"k": 3}),
        (5, (5,), {}),
    ],
)
def test_how_inputs_become_arguments(inputs: object, args: tuple, kwargs: dict) -> None:
    from memadvise.capture.training import model_arguments

    assert model_arguments(inputs) == (args, kwargs)

"""The pytest plugin, run on small test suites with pytest's own ``pytester``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from groundtruth import measure_peak

import memadvise
from memadvise.model.units import format_bytes

pytest_plugins = ["pytester"]

CHECK_MODELS = Path(__file__).resolve().parent / "models"
TINY_PEAK_BATCH_4 = 142_376  # bytes (tutorial loop); the limits below sit well on either side


@pytest.fixture(scope="module", autouse=True)
def torch_warmed_up() -> None:
    """Profile once before any in-process run: pytester drops the modules a run imported, and torch
    (which imports parts of itself lazily on the first profile) cannot be imported twice in a process."""
    memadvise.profile_model(torch.nn.Linear(2, 2), torch.randn(1, 2))


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A suite loading the plugin itself (entry points off, so an installed copy is not loaded twice)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("MEMADVISE_TINY_WIDTH", raising=False)
    pytester.makeconftest("pytest_plugins = ['memadvise.pytest_plugin']")
    (pytester.path / "models").mkdir()
    shutil.copy(CHECK_MODELS / "tiny_mlp.py", pytester.path / "models" / "tiny_mlp.py")
    return pytester


def test_marker_fails_a_model_over_its_limit_and_passes_one_within(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_memory="""
        import pytest

        @pytest.mark.memadvise(max_peak="1MiB", batch_size=4)
        def test_within():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="64KiB", batch_size=4, mode="train", optimizer="adamw")
        def test_over():
            return "models/tiny_mlp.py"
        """
    )
    result = suite.runpytest("-W", "error::pytest.PytestReturnNotNoneWarning")
    result.assert_outcomes(passed=1, failed=1)
    # the figure the failure reports is the independent ground truth's, not a copy of memadvise's output
    truth = measure_peak(CHECK_MODELS / "tiny_mlp.py", 4).peak_bytes
    over = truth - 65_536
    result.stdout.fnmatch_lines(
        [
            f"*memadvise: peak {format_bytes(truth)} ({truth:,} bytes) exceeds max_peak=64.0 KiB"
            f" (65,536 bytes) by {format_bytes(over)} (+{100 * over / 65_536:.1f}%) — tiny_mlp · train"
            " · batch 4 · adamw · cpu; held at the peak by: *body*",
            "FAILED test_memory.py::test_over*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_model_and_inputs_returned_or_yielded(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_models="""
        import pytest
        import torch

        CLEANED = []

        def mlp(width):
            return torch.nn.Sequential(torch.nn.Linear(32, width), torch.nn.ReLU(), torch.nn.Linear(width, 4))

        @pytest.mark.memadvise(max_peak=10_000_000)
        def test_tuple():
            return mlp(64), torch.randn(4, 32)

        @pytest.mark.memadvise(max_params="8KiB", mode="inference")
        def test_tuple_over_param_limit():
            return mlp(256), torch.randn(4, 32)

        @pytest.mark.memadvise(max_peak="10MiB")
        @pytest.mark.parametrize("width", [16, 32])
        def test_yield_then_clean_up(width):
            yield mlp(width), torch.randn(4, 32), lambda out, inp: out.pow(2).mean()
            CLEANED.append(width)

        def test_cleanups_ran():
            assert CLEANED == [16, 32]
        """
    )
    result = suite.runpytest("-W", "error::pytest.PytestReturnNotNoneWarning")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*memadvise: parameters * exceeds max_params=8.0 KiB (8,192 bytes) * Sequential · inference *"
            "largest layers: 0 *",
        ]
    )


def test_fixture_returns_a_profile_and_the_marker_gates_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_fixture="""
        import pytest
        import torch

        def test_profile(memadvise_profile):
            model = torch.nn.Linear(32, 64)
            prof = memadvise_profile(model, torch.randn(4, 32), optimizer="sgd")
            assert prof.param_bytes == (32 * 64 + 64) * 4
            assert prof.optimizer_state_bytes == 0 and prof.peak_bytes > prof.param_bytes
            assert memadvise_profile("models/tiny_mlp.py", batch_size=4).peak_bytes == PEAK

        @pytest.mark.memadvise(max_peak="16KiB")
        def test_marker_on_fixture_profiles(memadvise_profile):
            memadvise_profile(torch.nn.Linear(32, 64), torch.randn(4, 32))
        """.replace("PEAK", str(TINY_PEAK_BATCH_4))
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*memadvise: peak * exceeds max_peak=16.0 KiB*"])


def test_marker_mistakes_are_readable_failures(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_mistakes="""
        import pytest

        @pytest.mark.memadvise(max_peek="1GiB")
        def test_typo():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="1 gigabyte")
        def test_bad_size():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="1GiB")
        def test_returns_nothing():
            pass

        @pytest.mark.memadvise(max_peak="1GiB")
        def test_returns_a_number():
            return 42

        @pytest.mark.memadvise(max_peak="1GiB")
        def test_missing_file():
            return "models/nope.py"
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines_random(
        [
            "*unknown memadvise marker argument 'max_peek'; use max_peak*",
            "*memadvise marker: unknown size unit 'gigabyte'*",
            "*must return or yield a model file path or (model, inputs[[], loss_fn[]]), or call the*",
            "*returned int; return a model file path*",
            "*memadvise: model file 'models/nope.py' not found*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_marker_is_registered(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.memadvise(max_peak=None, batch_size=1, *"])


def test_plugin_does_not_import_torch() -> None:
    code = "import sys, memadvise.pytest_plugin; print([m for m in ('torch', 'typer') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_marker_values_and_returns_of_the_wrong_kind_are_failures_naming_them(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_kinds="""
        import pytest
        import torch

        @pytest.mark.memadvise(max_peak="1GiB", batch_size="x")
        def test_batch_text():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="1GiB", batch_size="x")
        def test_batch_text_tuple():
            return torch.nn.Linear(2, 2), torch.randn(1, 2)

        @pytest.mark.memadvise(max_peak=-1)
        def test_negative_limit():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="1GiB", mode="training")
        def test_bad_mode():
            return "models/tiny_mlp.py"

        @pytest.mark.memadvise(max_peak="1GiB")
        def test_number_and_tensor():
            return 42, torch.randn(2)

        @pytest.mark.memadvise(max_peak="1GiB")
        def test_exit_in_model_file():
            return "models/exits.py"
        """
    )
    (suite.path / "models" / "exits.py").write_text("import sys\nsys.exit(0)\n")
    result = suite.runpytest()
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines_random(
        [
            "*memadvise marker: batch_size must be a whole number of at least 1, not 'x'*",
            "*memadvise marker: a limit must not be negative, not -1 (max_peak=-1)*",
            "*memadvise marker: mode must be one of train, inference, not 'training'*",
            "*returned (int, …); the first item must be the torch.nn.Module to profile*",
            "*exits.py:2: importing the file raised SystemExit(0): a model file must not exit*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "TypeError" not in result.stdout.str() and "AttributeError" not in result.stdout.str()

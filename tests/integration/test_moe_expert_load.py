"""``--expert-load``: a fake trace of a mixture of experts that loops over its experts sizes each expert's
rows by the routing assumption, and matches a real CPU run (tests/groundtruth.py) whose router is forced
to route that way: evenly (``uniform``), all tokens to the same top-k experts (``worst``), or with one
busy expert (``skewed:F``). The models' routers add a fixed score table to zero logits (see the model
files); the fake trace has no values, so only the assumption tells it the routing.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import groundtruth
import pytest
import torch

from memadvise.api import profile_file
from memadvise.capture.tracer import Tracer

MODELS = Path(__file__).parent / "models"
MIXTRAL = MODELS / "moe_loop.py"  # transformers' eager experts: 4 experts, top-2
SWITCH = MODELS / "moe_switch.py"  # hand-written top-1 loop: 4 experts
MAX_ERROR = 0.02
BATCH = 4  # x 32 tokens (Mixtral), x 64 tokens (Switch)

pytestmark = pytest.mark.usefixtures("single_thread")


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"expert_load_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _real(path: Path, factory: str, mode: str) -> int:
    """The ground-truth peak of the model that ``factory`` builds (its router forced to one routing)."""
    module = _module(path)
    return groundtruth.measure_peak(
        path, BATCH, mode=mode, transform=lambda _model: getattr(module, factory)()
    ).peak_bytes


@cache
def _fake(path: Path, factory: str, mode: str, load: str | None) -> tuple[int, tuple[str, ...]]:
    fake = profile_file(
        f"{path}:{factory}",
        batch_size=BATCH,
        mode=mode,
        device="meta",
        target_device="cpu",
        scaling=False,
        expert_load=load,
    )
    return fake.peak_bytes, fake.assumptions


# (model file, factory whose router routes that way, --expert-load, mode)
CASES = [
    pytest.param(MIXTRAL, "build_model", "uniform", "inference", id="mixtral-balanced-uniform"),
    pytest.param(MIXTRAL, "build_worst", "worst", "inference", id="mixtral-all-to-two-worst"),
    pytest.param(MIXTRAL, "build_skewed", "skewed:0.4375", "inference", id="mixtral-skewed"),
    pytest.param(MIXTRAL, "build_skewed", "skewed:0.4375", "train", id="mixtral-skewed-train"),
    pytest.param(MIXTRAL, "build_model", "uniform", "train", id="mixtral-balanced-uniform-train"),
    pytest.param(SWITCH, "build_model", None, "inference", id="switch-balanced-default"),
    pytest.param(SWITCH, "build_worst", "worst", "inference", id="switch-all-to-one-worst"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "factory", "load", "mode"), CASES)
def test_fake_trace_with_the_routing_assumption_matches_a_run_routed_that_way(
    path: Path, factory: str, load: str | None, mode: str
) -> None:
    real = _real(path, factory, mode)
    fake, assumptions = _fake(path, factory, mode, load)
    error = (fake - real) / real
    assert abs(error) <= MAX_ERROR, f"fake {fake:,} vs real {real:,}: {error:+.2%}"
    expected = load or "uniform"
    assert any(f"--expert-load {expected}" in a for a in assumptions), assumptions
    assert any(a.startswith("mixture of experts") and f"--expert-load {expected}" in a for a in assumptions)


def test_worst_is_an_upper_bound_and_uniform_is_not() -> None:
    """The worst case is at least every routing's real peak; uniform is well below the worst routing's
    real peak (the assumption, which the user chooses, sets the fake figure). Measurements are shared
    with the cases above."""
    reals = [_real(MIXTRAL, f, "inference") for f in ("build_model", "build_skewed", "build_worst")]
    worst, _ = _fake(MIXTRAL, "build_worst", "inference", "worst")
    uniform, _ = _fake(MIXTRAL, "build_model", "inference", "uniform")
    assert worst >= max(reals) * (1 - MAX_ERROR)
    assert uniform < reals[-1] * (1 - MAX_ERROR)


def test_non_routing_selections_keep_the_all_selected_assumption() -> None:
    """The Switch model's token filter (outside the expert block) still assumes every element selected
    (which is what it really does), whatever --expert-load says."""
    _, assumptions = _fake(SWITCH, "build_worst", "inference", "worst")
    assert any("all were assumed selected" in a for a in assumptions)
    assert any("nonzero in an expert block" in a for a in assumptions)


def test_grouped_experts_say_the_assumption_has_no_effect() -> None:
    peaks = {}
    for load in ("uniform", "worst"):
        fake = profile_file(
            MODELS / "moe_mixtral.py",
            batch_size=1,
            mode="inference",
            device="meta",
            target_device="cpu",
            scaling=False,
            expert_load=load,
        )
        peaks[load] = fake.peak_bytes
        assert any(f"--expert-load {load} has no effect" in a for a in fake.assumptions)
    assert peaks["uniform"] == peaks["worst"]



class TinyMoE(torch.nn.Module):
    """Top-1 over 4 experts, one ``nonzero`` per expert; ``rows x 256`` floats out of each expert."""

    num_experts, top_k = 4, 1

    def __init__(self) -> None:
        super().__init__()
        self.router = torch.nn.Linear(16, 4)
        self.experts = torch.nn.ModuleList(torch.nn.Linear(16, 256) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        choice = self.router(x).argmax(-1)
        out = x.new_zeros(x.shape[0], 256)
        for e, expert in enumerate(self.experts):
            rows = torch.nonzero(choice == e).squeeze(-1)
            out = out.index_copy(0, rows, expert(x.index_select(0, rows)))
        return out


def test_cuda_target_fake_trace_routes_by_the_assumption() -> None:
    """On meta tensors (a fake CUDA-target trace) ``nonzero`` has no kernel: inside an expert block it is
    sized by --expert-load as on CPU kernels. With 256 tokens, worst gives one expert all of them where
    uniform gives each of the four 64, one expert at a time, so the peaks differ by the busiest expert's
    extra rows (a closed form)."""
    with torch.device("meta"):
        model = TinyMoE()
        x = torch.empty(256, 16)
    peaks = {}
    for load in ("uniform", "worst"):
        with Tracer(model, mode="inference", target_device="cuda", expert_load=load) as tracer:
            profile = tracer.run(x)
        assert any(f"--expert-load {load} (4 experts, top-1)" in a for a in profile.assumptions)
        assert not any("nonzero has no meta implementation" in a for a in profile.assumptions)
        peaks[load] = profile.peak_bytes
    # the busiest expert's rows: 256 (worst) against 64 (uniform), each an fp32 output row of 256 and an
    # int64 index from nonzero
    assert peaks["worst"] - peaks["uniform"] == (256 - 64) * (256 * 4 + 8)

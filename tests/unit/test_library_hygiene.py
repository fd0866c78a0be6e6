"""profile_model / profile_file leave the caller's process as they found it."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

import memadvise
from memadvise.errors import MemadviseError

TINY = Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py"


def test_inside_an_active_torch_profiler_profile_model_refuses_and_leaves_it_on() -> None:
    model, x = torch.nn.Linear(4, 2), torch.randn(3, 4)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with pytest.raises(MemadviseError, match="active torch.profiler.profile"):
            memadvise.profile_model(model, x)
        assert torch.autograd.profiler._is_profiler_enabled
        with torch.profiler.record_function("after_memadvise"):
            torch.mm(x, x.T)
    assert any(e.name == "after_memadvise" for e in prof.events())


def test_input_gradients_are_given_back() -> None:
    model = torch.nn.Linear(4, 2)
    x = torch.randn(3, 4, requires_grad=True)
    memadvise.profile_model(model, x)
    assert x.grad is None
    mine = torch.ones(3, 4)
    x.grad = mine
    memadvise.profile_model(model, x)
    assert x.grad is mine and torch.equal(mine, torch.ones(3, 4))


def test_training_profile_under_no_grad_names_it() -> None:
    with torch.no_grad(), pytest.raises(MemadviseError, match=r"inside torch\.no_grad\(\)"):
        memadvise.profile_model(torch.nn.Linear(4, 2), torch.randn(3, 4))


def test_profile_file_keeps_rng_state_leaves_no_module_and_repeats_itself() -> None:
    torch.manual_seed(1234)
    random.seed(99)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    modules = set(sys.modules)
    first = memadvise.profile_file(TINY, device="cpu", scaling=False)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
    assert not [m for m in set(sys.modules) - modules if m.startswith("memadvise_user_model_")]
    second = memadvise.profile_file(TINY, device="cpu", scaling=False)
    assert first.program is not None and second.program is not None
    assert first.program.n_events == second.program.n_events
    assert first.peak_bytes == second.peak_bytes


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"steps": 10**20}, "at most"), ({"batch_size": "x"}, "whole")]
)
def test_library_counts_are_checked(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(MemadviseError, match=fragment):
        memadvise.profile_file(TINY, device="cpu", **kwargs)  # type: ignore[arg-type]


class Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        self.calls = 0
        self.last_mode = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.last_mode = "train" if self.training else "eval"
        return self.linear(x)


def test_plain_attributes_forward_changes_are_restored() -> None:
    model = Counting().eval()
    memadvise.profile_model(model, torch.randn(3, 4))
    assert (model.calls, model.last_mode, model.training) == (0, "none", False)


def test_two_profiles_of_one_model_with_a_grad_requiring_input_are_the_same_program() -> None:
    """The first call's input gradient used to survive, so the second backward accumulated into it
    (no new allocation) and traced another program with another peak."""
    model = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8, requires_grad=True)
    first, second = (memadvise.profile_model(model, x) for _ in range(2))
    assert first.program is not None and second.program is not None
    assert first.program.n_events == second.program.n_events
    assert first.peak_bytes == second.peak_bytes

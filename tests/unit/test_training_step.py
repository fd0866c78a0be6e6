"""The measured step's building blocks: calling the model, the default loss, optimizers, devices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from memadvise import UsageError
from memadvise.capture.training import (
    StepFailed,
    call_model,
    default_loss,
    iter_tensors,
    make_optimizer,
    move_to,
    resolve_device,
    run_steps,
)
from memadvise.model.profile import Phase


class Recorder(nn.Module):
    def forward(self, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs


def test_call_model_spreads_tuples_lists_and_dicts() -> None:
    a, b = torch.zeros(1), torch.ones(1)
    assert call_model(Recorder(), a) == ((a,), {})
    assert call_model(Recorder(), (a, b)) == ((a, b), {})
    assert call_model(Recorder(), [a, b]) == ((a, b), {})
    assert call_model(Recorder(), {"x": a, "y": b}) == ((), {"x": a, "y": b})


@dataclass
class Output:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


def test_default_loss_prefers_an_explicit_loss() -> None:
    logits = torch.full((2, 3), 2.0)
    assert default_loss(Output(logits, torch.tensor(5.0))).item() == 5.0
    assert default_loss({"loss": torch.tensor([1.0, 2.0]), "logits": logits}).item() == 3.0


def test_default_loss_falls_back_to_logits_or_first_element() -> None:
    logits = torch.full((2, 3), 2.0)
    assert default_loss(Output(logits)).item() == 12.0
    assert default_loss({"logits": logits}).item() == 12.0
    assert default_loss((logits, torch.zeros(7))).item() == 12.0
    assert default_loss(logits).item() == 12.0
    assert default_loss(logits).dim() == 0


def test_default_loss_rejects_outputs_without_a_tensor() -> None:
    with pytest.raises(TypeError, match="loss_fn"):
        default_loss("text")


@pytest.mark.parametrize(
    ("name", "kind", "momentum"),
    [
        ("adamw", torch.optim.AdamW, None),
        ("adam", torch.optim.Adam, None),
        ("sgd", torch.optim.SGD, 0),
        ("sgd-momentum", torch.optim.SGD, 0.9),
    ],
)
def test_make_optimizer_only_optimises_trainable_parameters(
    name: str, kind: type, momentum: float | None
) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    opt = make_optimizer(name, model.parameters())
    assert type(opt) is kind
    assert opt is not None
    params = [p for group in opt.param_groups for p in group["params"]]
    assert {id(p) for p in params} == {id(p) for p in model[1].parameters()}
    if momentum is not None:
        assert opt.param_groups[0]["momentum"] == momentum


def test_make_optimizer_none_and_nothing_to_train() -> None:
    assert make_optimizer("none", nn.Linear(2, 2).parameters()) is None
    assert make_optimizer("adamw", nn.Linear(2, 2).requires_grad_(False).parameters()) is None


def test_move_to_and_iter_tensors_walk_nested_containers() -> None:
    batch = {"a": torch.zeros(1, dtype=torch.float64), "b": [torch.ones(2), (torch.zeros(3), "keep")], "n": 3}
    moved = move_to(batch, torch.device("cpu"))
    assert moved["n"] == 3 and moved["b"][1][1] == "keep"
    assert isinstance(moved["b"], list) and isinstance(moved["b"][1], tuple)
    assert [t.numel() for t in iter_tensors(moved)] == [1, 2, 3]


def test_resolve_device_choices() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("meta") == torch.device("meta")  # fake tracing
    for bad in ("tpu", "mps", "not a device"):
        with pytest.raises(UsageError) as info:
            resolve_device(bad)
        assert "cpu, cuda or meta" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_resolve_device_cuda_without_cuda() -> None:
    with pytest.raises(UsageError, match="no CUDA device"):
        resolve_device("cuda")


@contextmanager
def _record(phases: list[tuple[str, int]], phase: Phase, step: int) -> Iterator[None]:
    phases.append((phase.value, step))
    yield


def test_run_steps_train_runs_phases_in_order_and_clears_gradients() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    phases: list[tuple[str, int]] = []
    grads_seen: list[bool] = []
    run_steps(
        model,
        torch.randn(4, 3),
        optimizer=opt,
        steps=2,
        phase=lambda p, s: _record(phases, p, s),
        after_backward=lambda s: grads_seen.append(model.weight.grad is not None),
    )
    assert phases == [(p, s) for s in range(2) for p in ("forward", "backward", "optimizer")]
    assert grads_seen == [True, True]
    assert model.weight.grad is None
    assert not torch.equal(model.weight, before)
    assert model.training


def test_run_steps_inference_only_runs_forwards_without_grad() -> None:
    model = nn.Linear(3, 2)
    model.train()
    phases: list[tuple[str, int]] = []
    grad_modes: list[bool] = []
    model.register_forward_hook(lambda m, i, o: grad_modes.append(torch.is_grad_enabled()))
    run_steps(model, torch.randn(4, 3), mode="inference", steps=3, phase=lambda p, s: _record(phases, p, s))
    assert phases == [("forward", s) for s in range(3)]
    assert grad_modes == [False, False, False]
    assert not model.training


def test_run_steps_wraps_user_failures() -> None:
    with pytest.raises(StepFailed) as info:
        run_steps(nn.Linear(3, 2), torch.randn(4, 5))
    assert info.value.what == "the forward pass"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "\n" not in str(info.value)

"""``memadvise.track(model, optimizer)``: the steps of the user's own loop, against the ground truth."""

from __future__ import annotations

from pathlib import Path

import groundtruth
import pytest
import torch

import memadvise

MODEL_FILE = """\
import torch
from torch import nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10))

def example_inputs(batch_size):
    return torch.randn(batch_size, 64)

def loss_fn(output, inputs):
    return nn.functional.cross_entropy(output, torch.zeros(output.shape[0], dtype=torch.long))
"""
BATCH = 16


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlp_for_track.py"
    path.write_text(MODEL_FILE)
    return path


def plain_loop(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    module: object,
    steps: int,
    x: torch.Tensor | None = None,
) -> None:
    """PyTorch's tutorial loop, as a user writes it (the batch ``x``, else one made here)."""
    if x is None:
        x = module.example_inputs(BATCH)  # type: ignore[attr-defined]
    for _ in range(steps):
        out = model(x)
        loss = module.loss_fn(out, x)  # type: ignore[attr-defined]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("batch_made", ["inside", "before"])
@pytest.mark.usefixtures("one_thread")
def test_track_peak_matches_the_ground_truth(model_file: Path, batch_made: str) -> None:
    """The batch made inside the block, or before it (then found alive as the model's input)."""
    truth = groundtruth.measure_peak(model_file, BATCH)  # two steps of the same loop, adamw
    module = groundtruth.load_model_file(model_file)
    model = module.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = module.example_inputs(BATCH) if batch_made == "before" else None
    with memadvise.track(model, opt) as t:
        plain_loop(model, opt, module, steps=2, x=x)
    prof = t.profile
    error = abs(prof.peak_bytes - truth.peak_bytes) / truth.peak_bytes
    assert error <= 0.02, (prof.peak_bytes, truth.peak_bytes)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert prof.param_bytes == params and prof.grad_bytes == params
    assert prof.steps == 2 and prof.batch_size == BATCH and prof.optimizer == "adamw"
    assert prof.peak_phase == truth.peak_phase
    assert prof.input_bytes == (4 * BATCH * 64 if batch_made == "before" else 0)  # inside: a new tensor


def test_track_leaves_the_users_training_alone(model_file: Path) -> None:
    module = groundtruth.load_model_file(model_file)
    model = module.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    backward = torch.autograd.backward
    with memadvise.track(model) as t:
        plain_loop(model, opt, module, steps=3)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))  # trained
    assert opt.state and all("momentum_buffer" in s for s in opt.state.values())
    assert torch.autograd.backward is backward
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert t.profile.steps == 3 and t.profile.optimizer == "sgd-momentum"
    assert t.profile.leaks == ()  # a plain loop holds nothing from step to step


def test_an_error_in_the_loop_propagates(model_file: Path) -> None:
    module = groundtruth.load_model_file(model_file)
    model = module.build_model()
    with pytest.raises(ZeroDivisionError), memadvise.track(model) as t:
        model(module.example_inputs(2))
        _ = 1 / 0
    assert all(not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(memadvise.UsageError, match="ended without an error"):
        _ = t.profile


@pytest.mark.usefixtures("one_thread")
def test_a_closure_step_has_its_phases_in_order(model_file: Path) -> None:
    """``optimizer.step(closure)`` (PyTorch Lightning, LBFGS) runs the forward and backward passes inside
    the step: the update after the closure is the optimizer phase, and each closure begins a step."""
    module = groundtruth.load_model_file(model_file)
    model = module.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = module.example_inputs(BATCH)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = module.loss_fn(model(x), x)
        loss.backward()
        return loss

    with memadvise.track(model, opt) as t:
        for _ in range(2):
            opt.step(closure)
    prof = t.profile
    order = list(dict.fromkeys(zip(prof.timeline.step, prof.timeline.phase, strict=True)))
    assert order == [(s, p) for s in (0, 1) for p in ("forward", "backward", "optimizer")], order
    assert prof.peak_phase == "optimizer" and prof.steps == 2 and prof.batch_size == BATCH
    state = sum(t.nbytes for s in opt.state.values() for t in s.values())
    assert prof.optimizer_state_bytes == state
    with pytest.raises(memadvise.UsageError, match="inside its with block"):
        t.batch_starts(x)  # the block has ended


FIRST_BATCH_BYTES = 4 * 16 * 1000  # the first batch: a 16x64 view of a 16x1000 fp32 storage


def _planted_model() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt, [torch.randn(16, 1000)[:, :64]]


def _planted_loop(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor]) -> None:
    """Two steps; the first batch (made before) is dropped after step 1's backward pass, and the
    second batch is larger, so that step 2 holds the peak."""
    for step in range(2):
        x = batches.pop()
        loss = model(x).square().mean()
        loss.backward()
        del x
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step == 0:
            batches.append(torch.randn(64, 64))


@pytest.mark.usefixtures("one_thread")
def test_a_batch_made_before_the_block_is_freed_where_the_loop_drops_it() -> None:
    """The CPU allocator reports no free of memory made before the recording: memadvise sees the
    storage destroyed, and the profile frees it there, not at the end."""
    import gc

    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:  # the same loop, all seen
        model, opt, batches = _planted_model()
        with torch.autograd.profiler.record_function(groundtruth._WINDOW):
            _planted_loop(model, opt, batches)
        del model, opt
    assert p.profiler is not None
    truth = groundtruth.analyse(list(p.profiler.kineto_results.events()))

    gc.collect()
    model, opt, batches = _planted_model()
    with memadvise.track(model, opt) as t:
        _planted_loop(model, opt, batches)
    prof = t.profile
    assert prof.input_bytes == FIRST_BATCH_BYTES  # the whole storage behind the view, alive at the start
    assert prof.peak_bytes == truth.peak_bytes, (prof.peak_bytes, truth.peak_bytes)
    assert prof.peak_step == 1 and prof.peak_breakdown["inputs"] == 0
    inputs = prof.timeline.bytes["inputs"]
    dropped = inputs.index(0)
    assert set(inputs[:dropped]) == {FIRST_BATCH_BYTES} and set(inputs[dropped:]) == {0}
    # dropped in step 1, after its backward pass and before its optimizer step
    assert prof.timeline.step[dropped] == 0 and "backward" in prof.timeline.phase[:dropped]
    assert "optimizer" not in prof.timeline.phase[:dropped]


def _resumed_model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A loop resumed midway: one step ran before the block, whose gradients are still alive."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(16, 64)).square().mean().backward()
    opt.step()
    return model, opt


def _resumed_loop(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad(set_to_none=True)  # frees the gradients made before the block
    for _ in range(2):
        loss = model(torch.randn(8, 64)).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.usefixtures("one_thread")
def test_gradients_made_before_the_block_are_freed_by_zero_grad() -> None:
    import gc

    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        model, opt = _resumed_model()
        with torch.autograd.profiler.record_function(groundtruth._WINDOW):
            _resumed_loop(model, opt)
        del model, opt
    assert p.profiler is not None
    truth = groundtruth.analyse(list(p.profiler.kineto_results.events()))

    gc.collect()
    model, opt = _resumed_model()
    with memadvise.track(model, opt) as t:
        _resumed_loop(model, opt)
    prof = t.profile
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert prof.timeline.bytes["gradients"][0] == 0  # freed by the first zero_grad(), before step 1
    assert prof.peak_breakdown["gradients"] == params  # this step's, not the old ones too
    assert prof.peak_bytes == truth.peak_bytes, (prof.peak_bytes, truth.peak_bytes)

"""``profile_model`` leaves the model as it found it: hooks, flags, values, gradients and the RNG."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from memadvise import MemadviseError
from memadvise.api import profile_model


def bn_dropout_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Sequential(nn.Linear(12, 8), nn.Dropout(0.2)),
        nn.Linear(8, 2),
    )


HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def hook_snapshot(model: nn.Module) -> dict[tuple[str, str], list[object]]:
    return {
        (name, attr): list(getattr(module, attr, {}).values())
        for name, module in model.named_modules()
        for attr in HOOK_DICTS
    }


def value_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


@pytest.mark.parametrize(
    ("mode", "optimizer"), [("train", "adamw"), ("train", "sgd-momentum"), ("inference", "adamw")]
)
def test_no_hooks_remain(mode: str, optimizer: str) -> None:
    model = bn_dropout_model()
    assert all(not hooks for hooks in hook_snapshot(model).values())
    profile_model(model, torch.randn(5, 6), mode=mode, optimizer=optimizer)
    for (name, attr), hooks in hook_snapshot(model).items():
        assert hooks == [], f"{attr} left on module {name!r}"


def test_the_users_own_hooks_are_kept() -> None:
    model = bn_dropout_model()
    seen: list[str] = []
    model[0].register_forward_hook(lambda m, i, o: seen.append("fwd"))
    model.register_forward_pre_hook(lambda m, i: seen.append("pre"))
    model[5].register_full_backward_hook(lambda m, gi, go: seen.append("bwd"))
    before = hook_snapshot(model)
    profile_model(model, torch.randn(5, 6))
    assert hook_snapshot(model) == before
    assert {"fwd", "pre", "bwd"} <= set(seen)  # they also ran during the traced steps


def test_train_and_eval_flags_are_restored() -> None:
    model = bn_dropout_model()
    model.eval()
    model[3].train()  # one Dropout left in train mode on purpose
    model.get_submodule("4.1").train()
    flags = {name: module.training for name, module in model.named_modules()}
    assert set(flags.values()) == {True, False}
    for mode in ("train", "inference"):
        profile_model(model, torch.randn(5, 6), mode=mode)
        assert {name: module.training for name, module in model.named_modules()} == flags


def test_parameters_and_buffers_are_bit_identical() -> None:
    model = bn_dropout_model()
    with torch.no_grad():  # make the BatchNorm statistics non-trivial first
        model.train()
        model(torch.randn(16, 6) * 3 + 1)
    model.eval()
    before = value_snapshot(model)
    tensors_before = dict(model.state_dict(keep_vars=True))
    pointers = {k: v.data_ptr() for k, v in tensors_before.items()}
    assert int(before["1.num_batches_tracked"]) == 1

    prof = profile_model(model, torch.randn(5, 6), optimizer="adamw")
    assert prof.buffer_bytes == sum(b.numel() * b.element_size() for b in model.buffers())

    after = dict(model.state_dict(keep_vars=True))
    assert after.keys() == before.keys()
    for key, value in after.items():
        assert value is tensors_before[key], f"{key} was replaced by another tensor"
        assert value.data_ptr() == pointers[key], f"{key} moved to other memory"
        assert value.dtype == before[key].dtype
        assert torch.equal(value.detach(), before[key]), key
        if value.dtype.is_floating_point:
            bits = torch.int32 if value.element_size() == 4 else torch.int64
            assert torch.equal(value.detach().view(bits), before[key].view(bits)), key


def test_training_really_changed_values_inside_the_trace() -> None:
    """Without restoring, the optimizer step and BatchNorm would have changed these values."""
    model = bn_dropout_model()
    copy_model = copy.deepcopy(model)
    opt = torch.optim.AdamW(copy_model.parameters(), lr=1e-3)
    copy_model.train()
    copy_model(torch.randn(5, 6)).sum().backward()
    opt.step()
    changed = [k for k, v in copy_model.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    assert "0.weight" in changed and "1.running_mean" in changed and "1.num_batches_tracked" in changed


def test_requires_grad_flags_are_kept() -> None:
    model = bn_dropout_model()
    model[0].weight.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    profile_model(model, torch.randn(5, 6))
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags


def test_existing_gradients_are_kept() -> None:
    model = bn_dropout_model()
    names = [name for name, _ in model.named_parameters()]
    grads: dict[str, torch.Tensor] = {}
    for i, (name, p) in enumerate(model.named_parameters()):
        if i % 2 == 0:  # every other parameter keeps grad=None
            p.grad = torch.full_like(p, float(i + 1))
            grads[name] = p.grad
    values = {name: g.clone() for name, g in grads.items()}

    profile_model(model, torch.randn(5, 6), optimizer="adamw")

    for name, p in model.named_parameters():
        if name in grads:
            assert p.grad is grads[name], f"{name}.grad was replaced"
            assert torch.equal(p.grad, values[name]), f"{name}.grad changed"
        else:
            assert p.grad is None, f"{name}.grad was left behind"
    assert len(grads) < len(names)


def test_rng_state_is_restored() -> None:
    model = bn_dropout_model()
    model.train()
    torch.manual_seed(1234)
    saved = torch.get_rng_state()
    profile_model(model, torch.randn(5, 6))  # the Dropouts draw random numbers in the trace
    after = torch.rand(8)
    torch.set_rng_state(saved)
    torch.randn(5, 6)  # the same draw the test made for the inputs above
    expected = torch.rand(8)
    assert torch.equal(after, expected)


def test_dropout_model_output_after_profiling_is_what_the_rng_predicts() -> None:
    model = bn_dropout_model()
    model.train()
    x = torch.randn(5, 6)
    reference = copy.deepcopy(model)
    saved = torch.get_rng_state()
    profile_model(model, x)
    with torch.no_grad():
        out = model(x)
    torch.set_rng_state(saved)
    with torch.no_grad():
        expected = reference(x)
    assert torch.equal(out, expected)


def test_outputs_are_identical_before_and_after() -> None:
    model = bn_dropout_model()
    model.eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        before = model(x)
    for mode, optimizer in (("train", "adamw"), ("train", "sgd-momentum"), ("inference", "none")):
        profile_model(model, x, mode=mode, optimizer=optimizer)
        with torch.no_grad():
            after = model(x)
        assert torch.equal(before, after), (mode, optimizer)


class FailingForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.inner(x)
        if self.calls >= 2:  # the first step runs, the second fails mid-forward
            raise RuntimeError("failure inside forward")
        return y


def test_a_failing_step_still_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    model = FailingForward()
    model.eval()
    before = value_snapshot(model)
    x = torch.randn(3, 4)
    rng = torch.get_rng_state()
    with pytest.raises(MemadviseError, match="failure inside forward"):
        profile_model(model, x)
    assert all(not hooks for hooks in hook_snapshot(model).values())
    assert not model.training and not model.inner.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    with torch.no_grad():  # and the model still runs without memadvise in the way
        model.calls = 0
        model(torch.randn(3, 4))

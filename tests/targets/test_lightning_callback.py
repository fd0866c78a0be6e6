"""``memadvise.integrations.lightning.MemadviseCallback`` inside a real ``Trainer.fit()`` (tiny MLP, CPU)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from memadvise.errors import UsageError
from memadvise.model.profile import load_profile

pytest.importorskip("lightning")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import groundtruth
import lightning_model as lm  # noqa: E402

integration = pytest.importorskip("memadvise.integrations.lightning")


@pytest.mark.usefixtures("one_thread")
def test_the_callback_against_the_ground_truth(tmp_path: Path) -> None:
    module = lm.Classifier()
    callback = integration.MemadviseCallback(steps=2, output=tmp_path / "p.json")
    trainer = lm.trainer([callback])
    trainer.fit(module, lm.loader())
    assert trainer.global_step == 4  # training went on after the watched steps
    prof = callback.profile
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    assert prof.param_bytes == params and prof.grad_bytes == params and prof.optimizer == "adamw"
    state = trainer.optimizers[0].state.values()
    held = sum(t.nbytes for s in state for t in s.values() if isinstance(t, torch.Tensor))
    assert prof.optimizer_state_bytes == held  # two fp32 moments and a step count per parameter
    assert prof.steps == 2 and prof.batch_size == lm.BATCH
    assert prof.peak_bytes > prof.param_bytes + prof.grad_bytes + prof.optimizer_state_bytes
    assert prof.peak_phase == "optimizer"  # the update runs after the closure, inside optimizer.step()
    assert load_profile(tmp_path / "p.json") == prof

    # The same fit() under the profiler, measured by groundtruth.analyse: the same allocations, so the
    # same peak.
    fit = lm.measure_fit_peak(steps=2)
    assert prof.peak_bytes == fit.peak_bytes, (prof.peak_bytes, fit.peak_bytes)

    # The module's forward, loss, backward and AdamW step as PyTorch's tutorial loop. Measured: the loop's
    # peak is 636 bytes (0.03 %) higher: it keeps the 16x10 fp32 output (640 bytes) alive through
    # step(), where Lightning's training_step has dropped it, and Lightning keeps one 4-byte loss copy.
    # (Lightning also keeps the gradients through the next forward pass, zeroing them just before the
    # backward pass; here the peak is in optimizer.step(), where both hold them.)
    truth = groundtruth.measure_peak(Path(lm.__file__), lm.BATCH)
    output_bytes = 4 * lm.BATCH * 10
    assert abs(truth.peak_bytes - prof.peak_bytes) <= output_bytes, (prof.peak_bytes, truth.peak_bytes)
    assert truth.peak_phase == prof.peak_phase


@pytest.mark.usefixtures("one_thread")
def test_stop_accumulation_and_a_training_step_that_calls_a_submodule() -> None:
    """``stop=True`` ends fit() after the watched optimizer steps, counted in optimizer steps under
    gradient accumulation, also when ``training_step`` never calls the module's own forward()."""
    module = lm.Classifier(call_self=False)
    callback = integration.MemadviseCallback(steps=1, stop=True)
    trainer = lm.trainer([callback], accumulate_grad_batches=2)
    trainer.fit(module, lm.loader())
    assert trainer.global_step == 1  # stopped after the first optimizer step (two batches)
    prof = callback.profile
    assert prof.steps == 1 and prof.batch_size == lm.BATCH
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    assert prof.param_bytes == params and prof.grad_bytes == params
    assert torch.autograd.backward.__module__ == "torch.autograd"  # memadvise's hooks are gone
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in module.modules())


def test_an_error_in_training_step_leaves_no_hooks_behind() -> None:
    class Broken(lm.Classifier):
        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            if batch_idx == 1:
                raise ZeroDivisionError("bad batch")
            return super().training_step(batch, batch_idx)

    module = Broken()
    callback = integration.MemadviseCallback(steps=2)
    with pytest.raises(ZeroDivisionError):
        lm.trainer([callback]).fit(module, lm.loader())
    assert torch.autograd.backward.__module__ == "torch.autograd"
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in module.modules())
    with pytest.raises(UsageError, match="ready once"):
        _ = callback.profile


def test_bad_settings_are_usage_errors() -> None:
    for steps in (0, -1, "2", True, 10**6):
        with pytest.raises(UsageError):
            integration.MemadviseCallback(steps=steps)
    with pytest.raises(UsageError, match="ready once"):
        _ = integration.MemadviseCallback().profile


def test_without_lightning_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "memadvise.integrations.lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "memadvise.integrations.lightning")
    with pytest.raises(UsageError, match=r"memadvise\[lightning\]") as caught:
        importlib.import_module("memadvise.integrations.lightning")
    assert "\n" not in str(caught.value)


class ManualSteps(lm.Classifier):
    """Manual optimization: Lightning passes a closure that does nothing to the optimizer's step()."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()
        out = self(batch)
        loss = torch.nn.functional.cross_entropy(out, lm.targets(out))
        self.manual_backward(loss)
        opt.step()  # type: ignore[union-attr]
        opt.zero_grad()  # type: ignore[union-attr]
        return loss


@pytest.mark.parametrize("make", [lm.Classifier, ManualSteps], ids=["automatic", "manual"])
def test_phases_in_order_in_automatic_and_manual_optimization(make: type[torch.nn.Module]) -> None:
    callback = integration.MemadviseCallback(steps=2, stop=True)
    trainer = lm.trainer([callback])
    trainer.fit(make(), lm.loader())
    assert trainer.global_step == 2
    timeline = callback.profile.timeline
    order = list(dict.fromkeys(zip(timeline.step, timeline.phase, strict=True)))
    assert order == [(s, p) for s in (0, 1) for p in ("forward", "backward", "optimizer")], order

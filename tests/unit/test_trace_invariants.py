"""Properties every traced profile must have, checked on tiny models built here.

Byte counts of parameters, gradients and optimizer state are checked against arithmetic done
independently of memadvise (shapes times element sizes, and what ``torch.optim`` itself stores).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from functools import cache
from itertools import pairwise

import pytest
import torch
from torch import nn

import memadvise
from memadvise import Profile, UsageError
from memadvise.api import profile_model
from memadvise.model.profile import CATEGORIES, Category, Phase

# -- tiny models ---------------------------------------------------------------------------------

STACK_WIDTHS = (12, 24, 24, 5)


def linear_stack(widths: tuple[int, ...] = STACK_WIDTHS, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Bias-free Linear layers with Tanh between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(a, b, bias=False, dtype=dtype))
    return nn.Sequential(*layers)


class TiedLM(nn.Module):
    """Embedding and output projection share one weight."""

    def __init__(self, vocab: int = 40, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.hidden = nn.Linear(dim, dim)
        self.decoder = nn.Linear(dim, vocab, bias=False)
        self.decoder.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.relu(self.hidden(self.embedding(ids))))


def frozen_encoder() -> nn.Sequential:
    model = nn.Sequential(
        nn.Sequential(nn.Linear(10, 20), nn.ReLU()),  # "0": frozen
        nn.Linear(20, 6),  # "1": trained
    )
    for p in model[0].parameters():
        p.requires_grad_(False)
    return model


def conv_bn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "linear_stack": (linear_stack, lambda: torch.randn(7, STACK_WIDTHS[0])),
    "tied": (TiedLM, lambda: torch.randint(0, 40, (3, 5))),
    "frozen": (frozen_encoder, lambda: torch.randn(4, 10)),
    "conv_bn": (conv_bn, lambda: torch.randn(2, 3, 6, 6)),
}

RUNS = (
    ("train", "adamw"),
    ("train", "adam"),
    ("train", "sgd"),
    ("train", "sgd-momentum"),
    ("train", "none"),
    ("inference", "adamw"),
)

CASES = [(m, mode, opt) for m in MODELS for mode, opt in RUNS]


def build(model_name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    make_model, make_input = MODELS[model_name]
    return make_model(), make_input()


@cache
def traced(model_name: str, mode: str, optimizer: str) -> tuple[Profile, nn.Module, torch.Tensor]:
    model, x = build(model_name)
    prof = profile_model(model, x, mode=mode, optimizer=optimizer, batch_size=x.shape[0])
    return prof, model, x


def unique_storage_bytes(tensors: list[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def torch_optimizer_state(
    model: nn.Module, x: torch.Tensor, make: Callable[..., torch.optim.Optimizer]
) -> Counter[str]:
    """Bytes per state key that ``torch.optim`` keeps after one step on a copy of ``model``."""
    clone = copy.deepcopy(model)
    opt = make([p for p in clone.parameters() if p.requires_grad], lr=1e-3)
    clone(x).sum().backward()
    opt.step()
    per_key: Counter[str] = Counter()
    for state in opt.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                per_key[key] += value.untyped_storage().nbytes()
    return per_key


case_ids = [f"{m}-{mode}-{opt}" for m, mode, opt in CASES]


# -- invariants on every trace -------------------------------------------------------------------


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_peak_breakdown_and_holders_add_up_to_the_peak(model_name: str, mode: str, optimizer: str) -> None:
    prof, _, _ = traced(model_name, mode, optimizer)
    assert set(prof.peak_breakdown) == set(CATEGORIES)
    assert all(v >= 0 for v in prof.peak_breakdown.values())
    assert sum(prof.peak_breakdown.values()) == prof.peak_bytes
    assert sum(h.bytes for h in prof.peak_holders) == prof.peak_bytes
    for category in CATEGORIES:
        held = sum(h.bytes for h in prof.peak_holders if h.category == category)
        assert held == prof.peak_breakdown[category], category
    assert all(h.bytes > 0 and h.category in CATEGORIES for h in prof.peak_holders)
    sizes = [h.bytes for h in prof.peak_holders]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_layer_figures_add_up_to_the_totals(model_name: str, mode: str, optimizer: str) -> None:
    prof, _, _ = traced(model_name, mode, optimizer)
    assert sum(layer.param_bytes for layer in prof.layers) == prof.param_bytes
    assert sum(layer.buffer_bytes for layer in prof.layers) == prof.buffer_bytes
    assert sum(layer.grad_bytes for layer in prof.layers) == prof.grad_bytes
    assert sum(layer.optimizer_state_bytes for layer in prof.layers) == prof.optimizer_state_bytes
    assert sum(layer.activation_bytes for layer in prof.layers) == prof.activation_bytes


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_model_figures_match_the_tensors(model_name: str, mode: str, optimizer: str) -> None:
    prof, model, x = traced(model_name, mode, optimizer)
    assert prof.param_bytes == unique_storage_bytes(list(model.parameters()))
    assert prof.buffer_bytes == unique_storage_bytes(list(model.buffers()))
    assert prof.input_bytes == x.numel() * x.element_size()
    # each module owns exactly its own (first-registered) parameters
    owners: dict[str, int] = Counter()
    seen: set[int] = set()
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                owners[name] += p.numel() * p.element_size()
    assert {layer.name: layer.param_bytes for layer in prof.layers if layer.param_bytes} == dict(owners)


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_layers_follow_named_modules(model_name: str, mode: str, optimizer: str) -> None:
    prof, model, _ = traced(model_name, mode, optimizer)
    assert [(layer.name, layer.type) for layer in prof.layers] == [
        (name, type(module).__name__) for name, module in model.named_modules()
    ]
    root = prof.layers[0]
    assert root.name == "" and root.calls == 1
    assert all(layer.output_bytes >= 0 and layer.forward_temp_bytes >= 0 for layer in prof.layers)


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_timeline_is_consistent_with_the_peak(model_name: str, mode: str, optimizer: str) -> None:
    prof, _, _ = traced(model_name, mode, optimizer)
    tl = prof.timeline
    n = len(tl)
    assert n > 0
    assert len(tl.index) == len(tl.step) == len(tl.phase) == len(tl.op) == len(tl.module) == n
    assert set(tl.bytes) == set(CATEGORIES)
    assert all(len(col) == n for col in tl.bytes.values())
    assert list(tl.index) == sorted(tl.index)
    totals = tl.totals()
    assert max(totals) == prof.peak_bytes
    at_peak = totals.index(prof.peak_bytes)
    assert tl.phase[at_peak] == prof.peak_phase
    assert tl.step[at_peak] == prof.peak_step
    assert tl.op[at_peak] == prof.peak_op
    assert tl.module[at_peak] == prof.peak_module
    assert {c: tl.bytes[c][at_peak] for c in CATEGORIES} == prof.peak_breakdown
    assert set(tl.step) <= set(range(prof.steps))


@pytest.mark.parametrize(("model_name", "mode", "optimizer"), CASES, ids=case_ids)
def test_metadata(model_name: str, mode: str, optimizer: str) -> None:
    prof, model, x = traced(model_name, mode, optimizer)
    assert prof.mode == mode
    assert prof.optimizer == (optimizer if mode == "train" else "none")
    assert prof.device == "cpu"
    assert prof.batch_size == x.shape[0]
    assert prof.model == type(model).__name__
    assert prof.steps == 2
    assert prof.torch_version == torch.__version__
    assert prof.peak_phase in {p.value for p in Phase}


@pytest.mark.parametrize(("model_name", "optimizer"), [(m, o) for m in MODELS for _, o in RUNS[:5]])
def test_training_peak_holds_params_grads_and_state(model_name: str, optimizer: str) -> None:
    prof, _, x = traced(model_name, "train", optimizer)
    persistent = prof.param_bytes + prof.buffer_bytes + prof.grad_bytes + prof.optimizer_state_bytes
    assert prof.peak_bytes >= persistent + prof.input_bytes
    assert prof.grad_bytes > 0
    assert prof.peak_phase in {Phase.FORWARD.value, Phase.BACKWARD.value, Phase.OPTIMIZER.value}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_inference_has_no_gradients_state_or_activations(model_name: str) -> None:
    prof, _, _ = traced(model_name, "inference", "adamw")
    assert prof.grad_bytes == 0
    assert prof.optimizer_state_bytes == 0
    assert prof.activation_bytes == 0
    assert prof.peak_breakdown[Category.GRADIENTS.value] == 0
    assert prof.peak_breakdown[Category.OPTIMIZER_STATE.value] == 0
    assert prof.peak_breakdown[Category.ACTIVATIONS.value] == 0
    assert all(h.category != Category.GRADIENTS.value for h in prof.peak_holders)
    assert set(prof.timeline.phase) <= {Phase.SETUP.value, Phase.FORWARD.value}
    assert prof.peak_bytes >= prof.param_bytes + prof.buffer_bytes + prof.input_bytes
    assert all(layer.grad_bytes == 0 and layer.activation_bytes == 0 for layer in prof.layers)


# -- independent arithmetic on a bias-free Linear stack ------------------------------------------


def stack_param_bytes(widths: tuple[int, ...], element_size: int) -> int:
    return element_size * sum(a * b for a, b in pairwise(widths))


@pytest.mark.parametrize(("dtype", "element_size"), [(torch.float32, 4), (torch.float64, 8)])
def test_linear_stack_parameter_bytes_by_hand(dtype: torch.dtype, element_size: int) -> None:
    widths = (9, 17, 4)
    torch.manual_seed(0)
    model = linear_stack(widths, dtype=dtype)
    prof = profile_model(model, torch.randn(3, widths[0], dtype=dtype), optimizer="sgd")
    assert prof.param_bytes == stack_param_bytes(widths, element_size)
    assert prof.grad_bytes == prof.param_bytes
    linear_rows = [layer for layer in prof.layers if layer.type == "Linear"]
    assert [layer.param_bytes for layer in linear_rows] == [element_size * a * b for a, b in pairwise(widths)]
    assert [layer.grad_bytes for layer in linear_rows] == [layer.param_bytes for layer in linear_rows]


def test_adamw_state_is_two_moments_plus_what_torch_keeps_for_step() -> None:
    prof, model, x = traced("linear_stack", "train", "adamw")
    expected_params = stack_param_bytes(STACK_WIDTHS, 4)
    assert prof.param_bytes == expected_params
    assert prof.grad_bytes == expected_params

    per_key = torch_optimizer_state(model, x, torch.optim.AdamW)
    assert set(per_key) == {"step", "exp_avg", "exp_avg_sq"}, "torch's AdamW state changed shape"
    assert per_key["exp_avg"] == per_key["exp_avg_sq"] == expected_params
    n_tensors = len(list(model.parameters()))
    assert per_key["step"] % n_tensors == 0
    step_bytes_each = per_key["step"] // n_tensors  # 4 on torch 2.x CPU: a float32 scalar tensor
    assert prof.optimizer_state_bytes == 2 * expected_params + n_tensors * step_bytes_each

    linear_rows = [layer for layer in prof.layers if layer.type == "Linear"]
    for layer in linear_rows:
        assert layer.optimizer_state_bytes == 2 * layer.param_bytes + step_bytes_each


def test_adam_state_matches_torch() -> None:
    prof, model, x = traced("linear_stack", "train", "adam")
    assert prof.optimizer_state_bytes == sum(torch_optimizer_state(model, x, torch.optim.Adam).values())


def test_sgd_without_momentum_keeps_no_state() -> None:
    prof, model, x = traced("linear_stack", "train", "sgd")
    assert sum(torch_optimizer_state(model, x, torch.optim.SGD).values()) == 0
    assert prof.optimizer_state_bytes == 0
    assert prof.grad_bytes == prof.param_bytes == stack_param_bytes(STACK_WIDTHS, 4)
    assert prof.peak_breakdown[Category.OPTIMIZER_STATE.value] == 0


def test_sgd_momentum_keeps_one_buffer_per_parameter() -> None:
    prof, model, x = traced("linear_stack", "train", "sgd-momentum")

    def sgd_momentum(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    assert dict(torch_optimizer_state(model, x, sgd_momentum)) == {"momentum_buffer": prof.param_bytes}
    assert prof.optimizer_state_bytes == prof.param_bytes == stack_param_bytes(STACK_WIDTHS, 4)


def test_no_optimizer_still_computes_gradients() -> None:
    prof, _, _ = traced("linear_stack", "train", "none")
    assert prof.optimizer_state_bytes == 0
    assert prof.grad_bytes == prof.param_bytes


# -- sharing and freezing ------------------------------------------------------------------------


def test_tied_weights_are_counted_once() -> None:
    prof, model, _ = traced("tied", "train", "adamw")
    assert isinstance(model, TiedLM)
    assert model.decoder.weight is model.embedding.weight
    vocab, dim = model.embedding.weight.shape
    shared = vocab * dim * 4
    hidden = (dim * dim + dim) * 4
    assert prof.param_bytes == shared + hidden
    every_name = sum(p.numel() * 4 for _, p in model.named_parameters(remove_duplicate=False))
    assert every_name == 2 * shared + hidden  # the naive count would see the shared weight twice
    assert prof.grad_bytes == prof.param_bytes
    per_key = torch_optimizer_state(model, x=torch.randint(0, vocab, (3, 5)), make=torch.optim.AdamW)
    assert prof.optimizer_state_bytes == sum(per_key.values())
    rows = {layer.name: layer for layer in prof.layers}
    assert rows["embedding"].param_bytes == shared
    assert rows["decoder"].param_bytes == 0
    assert rows["embedding"].grad_bytes == shared


def test_frozen_submodule_has_no_gradients_or_state() -> None:
    prof, model, _ = traced("frozen", "train", "adamw")
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() * 4 for p in model.parameters() if not p.requires_grad)
    assert trainable and frozen
    assert prof.param_bytes == trainable + frozen
    assert prof.grad_bytes == trainable
    rows = {layer.name: layer for layer in prof.layers}
    for name in ("0", "0.0", "0.1"):
        assert rows[name].grad_bytes == 0
        assert rows[name].optimizer_state_bytes == 0
    assert rows["0.0"].param_bytes > 0
    assert rows["1"].grad_bytes == rows["1"].param_bytes
    n_trainable_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    per_key = torch_optimizer_state(model, torch.randn(4, 10), torch.optim.AdamW)
    assert prof.optimizer_state_bytes == sum(per_key.values())
    assert per_key["exp_avg"] == trainable and per_key["step"] % n_trainable_tensors == 0


def test_fully_frozen_model_is_an_error_in_training() -> None:
    model = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(memadvise.MemadviseError, match="backward"):
        profile_model(model, torch.randn(2, 4))


# -- activations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [4, 8])
def test_relu_output_is_saved_for_backward(batch: int) -> None:
    d = 32
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
    prof = profile_model(model, torch.randn(batch, d), optimizer="sgd")
    relu_out = batch * d * 4
    assert prof.activation_bytes >= relu_out
    assert any(layer.activation_bytes >= relu_out for layer in prof.layers)
    assert prof.layers[2].output_bytes == relu_out  # named_modules order: "", "0", "1" (ReLU), "2"
    assert prof.layers[2].type == "ReLU"


def test_activations_grow_with_the_batch() -> None:
    d = 16

    def activations(batch: int) -> int:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        return profile_model(model, torch.randn(batch, d), optimizer="sgd").activation_bytes

    small, large = activations(4), activations(12)
    assert small > 0
    assert large == 3 * small


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "eval"}, "unknown mode 'eval'"),
        ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
        ({"steps": 0}, "steps must be at least 1"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        profile_model(nn.Linear(2, 2), torch.randn(1, 2), **kwargs)  # type: ignore[arg-type]


def test_one_step_and_a_name() -> None:
    prof = profile_model(nn.Linear(3, 3), torch.randn(2, 3), steps=1, name="probe")
    assert prof.steps == 1 and prof.model == "probe"
    assert set(prof.timeline.step) == {0}

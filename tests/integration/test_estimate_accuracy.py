"""What-if estimates against real runs of the changed configuration.

Each estimate comes from one profile at batch 2 (fp32, AdamW) and is compared with the independent
ground truth (tests/groundtruth.py) of a real run with the change applied by PyTorch itself: a larger
batch, ``model.to(bfloat16)``, ``torch.autocast``, ``torch.utils.checkpoint``, another optimizer,
frozen parameters, gradient accumulation, a really pruned model. Every comparison is printed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import groundtruth as gt  # tests/ is on sys.path (tests/conftest.py)
import pytest
import torch
from cpu_features import HAS_AMX, HAS_AVX512

from memadvise.analyzer import Estimate, Precision, PruneKind, Pruning, Scenario, estimate
from memadvise.api import profile_file
from memadvise.model.profile import OptimizerName, Profile

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "tests" / "zoo"
BATCH = 2

BLOCKS = {
    "gpt2": ("transformer.h.0", "transformer.h.1"),
    "bert": ("bert.encoder.layer.0", "bert.encoder.layer.1"),
    "llama_gqa": ("model.layers.0", "model.layers.1"),
    "resnet": ("layer1", "layer2", "layer3", "layer4"),
}


pytestmark = pytest.mark.usefixtures("single_thread")


@functools.cache
def _profile(path: str, mode: str = "train") -> Profile:
    return profile_file(path, batch_size=BATCH, mode=mode, device="cpu")


def _check(label: str, predicted: int, truth: int, tolerance: float) -> None:
    error = predicted / truth - 1
    print(f"{label:45s} estimate {predicted:>13,}  real {truth:>13,}  {error:+.2%}")
    assert abs(error) <= tolerance, f"{label}: {error:+.2%} off (tolerance {tolerance:.0%})"


def _file(name: str) -> str:
    return (
        str(ZOO / f"{name}.py")
        if (ZOO / f"{name}.py").exists()
        else str(ROOT / "sample_models" / f"{name}.py")
    )


@pytest.mark.parametrize(
    "name", ["mlp", "gpt2", "bert", "llama_gqa", "resnet", "lstm_lm", "vit", "unet_skip"]
)
@pytest.mark.parametrize("factor", [4, 8])
def test_batch_size(name: str, factor: int) -> None:
    path = _file(name)
    target = BATCH * factor
    predicted = estimate(_profile(path), Scenario(batch_size=target)).peak_bytes
    _check(f"{name} batch {BATCH} -> {target}", predicted, gt.measure_peak(path, target).peak_bytes, 0.03)


# Known misses of the 16-bit estimates (from an fp32 profile), with the errors measured on a CPU with
# AMX (torch 2.14.1, one thread); the CPU-dependent ones are strict only where the CPU has the feature.
VIT_BF16_CONV = (
    "oneDNN's 16-bit convolution kernels take scratch buffers that the fp32 profile cannot show: the ViT's "
    "patch-embedding convolution backward takes 564,120 B with AMX (60,036 B with AVX-512 alone, none "
    "with AVX2)"
)
UNET_BF16_CONV = (
    "16-bit convolutions take other buffers than the fp32 profile shows, and the estimate halves the fp32 "
    "ones: oneDNN's bf16 kernels (AVX-512, AMX) take up to 213,720 B of scratch in convolution backward; "
    "without AVX-512, PyTorch falls back to an im2col convolution with a 1,179,648 B column buffer"
)
LSTM_BF16 = (
    "oneDNN's bf16 LSTM kernels take other workspaces and scratch pads than the fp32 ones the estimate halves"
)
PURE_BF16_MISSES = {
    "vit": pytest.mark.xfail(
        condition=HAS_AVX512,
        strict=True,
        reason=f"-52.2% on CPUs with AMX, -3.2% to -4.4% with AVX-512 alone: {VIT_BF16_CONV}",
    ),
    "unet_skip": pytest.mark.xfail(
        strict=True, reason=f"-14.7% with AMX, -9.5% with AVX-512, -44.3% with AVX2: {UNET_BF16_CONV}"
    ),
    "lstm_lm": pytest.mark.xfail(
        strict=True, reason=f"-10.2% with AMX, -6.0% with AVX-512, +15.7% with AVX2: {LSTM_BF16}"
    ),
}
BF16_MIXED_MISSES = {
    "vit": pytest.mark.xfail(
        condition=HAS_AMX, strict=True, reason=f"-34.2% on CPUs with AMX: {VIT_BF16_CONV}"
    ),
    "unet_skip": pytest.mark.xfail(
        strict=True, reason=f"-11.1% with AMX, -7.0% with AVX-512, -36.4% with AVX2: {UNET_BF16_CONV}"
    ),
    # Within 5% (-3.6%) where oneDNN has AVX-512 without AMX.
    "lstm_lm": pytest.mark.xfail(
        condition=HAS_AMX or not HAS_AVX512,
        strict=True,
        reason=(
            f"-6.2% on CPUs with AMX: {LSTM_BF16}; without AVX-512 the real run cannot be made at all "
            "(oneDNN has no bf16 LSTM primitive there: RuntimeError, could not create a primitive descriptor)"
        ),
    ),
}


def _names(names: list[str], misses: dict[str, pytest.MarkDecorator]) -> list[object]:
    return [pytest.param(n, marks=misses[n]) if n in misses else n for n in names]


@pytest.mark.parametrize(
    "name",
    _names(["mlp", "gpt2", "bert", "llama_gqa", "vit", "resnet", "unet_skip", "lstm_lm"], PURE_BF16_MISSES),
)
def test_pure_bf16(name: str) -> None:
    path = _file(name)
    predicted = estimate(_profile(path), Scenario(precision=Precision.BF16)).peak_bytes
    truth = gt.measure_peak(path, BATCH, precision="bf16").peak_bytes
    _check(f"{name} bf16", predicted, truth, 0.03)


@pytest.mark.parametrize(
    "name",
    _names(["mlp", "gpt2", "bert", "llama_gqa", "vit", "resnet", "unet_skip", "lstm_lm"], BF16_MIXED_MISSES),
)
def test_bf16_mixed(name: str) -> None:
    path = _file(name)
    predicted = estimate(_profile(path), Scenario(precision=Precision.BF16_MIXED)).peak_bytes
    truth = gt.measure_peak(path, BATCH, precision="bf16-mixed").peak_bytes
    _check(f"{name} bf16-mixed", predicted, truth, 0.05)


@pytest.mark.parametrize("name", ["gpt2", "bert", "llama_gqa", "resnet"])
def test_checkpoint_blocks(name: str) -> None:
    path = _file(name)
    modules = BLOCKS[name]
    predicted = estimate(_profile(path), Scenario(checkpoint=modules)).peak_bytes
    truth = gt.measure_peak(path, BATCH, checkpoint=modules).peak_bytes
    _check(f"{name} checkpoint {len(modules)} blocks", predicted, truth, 0.05)


def _sgd_checkpoint_estimates(name: str) -> dict[str, Estimate]:
    """SGD (no optimizer state, so the peak is in backward, where checkpointing acts) without
    checkpointing, with ``auto`` and with every block checkpointed."""
    profile = _profile(_file(name))
    sgd = OptimizerName.SGD
    return {
        "none": estimate(profile, Scenario(optimizer=sgd)),
        "auto": estimate(profile, Scenario(optimizer=sgd, checkpoint=("auto",))),
        "every block": estimate(profile, Scenario(optimizer=sgd, checkpoint=BLOCKS[name])),
    }


@pytest.mark.parametrize("name", ["gpt2", "bert", "llama_gqa", "resnet"])
def test_checkpointing_saves_what_the_estimate_says(name: str) -> None:
    """The *effect* of checkpointing, estimated and real, where it can have one.

    With AdamW the BERT's and the ResNet's peak sits in the optimizer step, where checkpointing changes
    nothing (a comparison of peaks there passes whatever the estimate does). SGD keeps no state, so the
    peak is in backward: there ``auto`` must pick modules, and the bytes it saves must be saved for real,
    matching the estimated saving within 10% (or 0.2% of the peak, for savings that small); the same for
    checkpointing every block.
    """
    path = _file(name)
    est = _sgd_checkpoint_estimates(name)
    assert est["none"].peak_phase == "backward"
    assert est["auto"].checkpoint, "the peak is in backward, yet auto checkpoints nothing"
    real_base = gt.measure_peak(path, BATCH, optimizer="sgd").peak_bytes
    real_saving = {}
    for label, modules in (("auto", est["auto"].checkpoint), ("every block", BLOCKS[name])):
        real = real_base - gt.measure_peak(path, BATCH, optimizer="sgd", checkpoint=modules).peak_bytes
        predicted = est["none"].peak_bytes - est[label].peak_bytes
        real_saving[label] = real
        print(f"{name} sgd, checkpoint {label}: saves {predicted:,} B estimated, {real:,} B real")
        tolerance = max(0.10 * abs(real), 0.002 * real_base)
        assert abs(predicted - real) <= tolerance, f"{label}: {predicted:,} B estimated, {real:,} B real"
    assert real_saving["auto"] > 0


AUTO_MISSES_WHOLE_LAYERS = pytest.mark.xfail(
    strict=True,
    reason=(
        "auto's greedy ranks modules by bytes saved per recompute FLOP and takes each layer's self_attn and "
        "mlp (10.5 MFLOP recomputed, 458,752 B saved) rather than the whole decoder layers, which recompute "
        "the same FLOPs and also drop what the RMSNorms and the layers' own operators save (623,616 B): its "
        "peak is 8.6% above checkpointing every block"
    ),
)


@pytest.mark.parametrize(
    "name", ["gpt2", "bert", pytest.param("llama_gqa", marks=AUTO_MISSES_WHOLE_LAYERS), "resnet"]
)
def test_auto_checkpoint_beats_every_block(name: str) -> None:
    """Where the peak is in backward, ``auto`` reaches a peak at least as low as checkpointing every
    block, and saves at least as much per recompute FLOP (estimated; the savings are checked against
    real runs above)."""
    est = _sgd_checkpoint_estimates(name)
    base, auto, every = est["none"], est["auto"], est["every block"]
    assert auto.recompute_flops is not None and every.recompute_flops
    auto_rate = (base.peak_bytes - auto.peak_bytes) / max(auto.recompute_flops, 1)
    every_rate = (base.peak_bytes - every.peak_bytes) / every.recompute_flops
    print(f"{name}: auto {auto.checkpoint} saves {auto_rate:.4g} B/FLOP, every block {every_rate:.4g} B/FLOP")
    assert auto.peak_bytes <= every.peak_bytes * 1.005
    assert auto_rate >= every_rate


ADAFACTOR_STEP_MISS = pytest.mark.xfail(
    condition=HAS_AVX512,
    strict=True,
    reason=(
        "-5.36% on CPUs with AVX-512: the Adafactor estimate counts 9.4 MB of temporaries in the optimizer "
        "step where the real step takes 16.8 MB; with AVX2, oneDNN's convolution backward takes 22 MB more "
        "scratch than with AVX-512, so the peak stays in backward and the miss does not show"
    ),
)


OPTIMIZER_CASES = [
    pytest.param(
        name,
        optimizer,
        marks=ADAFACTOR_STEP_MISS if (name, optimizer) == ("resnet", "adafactor") else (),
        id=f"{name}-{optimizer}",
    )
    for name in ("mlp", "gpt2", "resnet")
    for optimizer in ("sgd", "sgd-momentum", "adam", "adagrad", "rmsprop", "adafactor")
]


@pytest.mark.parametrize(("name", "optimizer"), OPTIMIZER_CASES)
def test_optimizer(name: str, optimizer: str) -> None:
    path = _file(name)
    predicted = estimate(_profile(path), Scenario(optimizer=OptimizerName(optimizer))).peak_bytes
    truth = gt.measure_peak(path, BATCH, optimizer=optimizer).peak_bytes
    _check(f"{name} {optimizer}", predicted, truth, 0.02)


@pytest.mark.parametrize("name", ["gpt2", "llama_gqa"])
def test_grad_accumulation(name: str) -> None:
    path = _file(name)
    predicted = estimate(_profile(path), Scenario(grad_accum=4)).peak_bytes
    truth = gt.measure_peak(path, BATCH, grad_accum=4).peak_bytes
    _check(f"{name} grad-accum 4", predicted, truth, 0.03)


@pytest.mark.parametrize("name", ["gpt2", "llama_gqa"])
def test_frozen_prefix(name: str) -> None:
    path = _file(name)
    frozen = BLOCKS[name][:1]
    predicted = estimate(_profile(path), Scenario(frozen=frozen)).peak_bytes
    truth = gt.measure_peak(path, BATCH, frozen=frozen).peak_bytes
    _check(f"{name} frozen {frozen[0]}", predicted, truth, 0.05)


@pytest.mark.parametrize("name", ["mlp", "cnn_inplace_bn"])
def test_structured_pruning(name: str) -> None:
    path = _file(name)
    prune = Pruning(sparsity=0.5, kind=PruneKind.STRUCTURED)
    predicted = estimate(_profile(path), Scenario(prune=prune)).peak_bytes
    truth = gt.measure_peak(path, BATCH, transform=lambda m: gt.prune_structured(m, 0.5)).peak_bytes
    _check(f"{name} structured pruning 50%", predicted, truth, 0.03)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_unstructured_pruning_stored_dense_saves_nothing() -> None:
    profile = _profile(_file("mlp"))
    result = estimate(profile, Scenario(prune=Pruning(sparsity=0.5)))
    assert result.peak_bytes == profile.peak_bytes
    assert result.pruning is not None and result.pruning.csr_break_even > 0.5
    # Independent check of the break-even: real CSR tensors at and around it.
    weight = torch.randn(512, 256)
    for sparsity in (result.pruning.csr_break_even - 0.05, result.pruning.csr_break_even + 0.05):
        pruned = weight * (torch.rand_like(weight) >= sparsity)
        csr = pruned.to_sparse_csr()
        parts = (csr.values(), csr.col_indices(), csr.crow_indices())
        stored = sum(t.numel() * t.element_size() for t in parts)
        smaller = stored < weight.untyped_storage().nbytes()
        assert smaller == (sparsity > result.pruning.csr_break_even)


def _int8_weight_only(w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``w`` (out, in) as PyTorch's CPU int8 weight-only kernel takes it: int8 rows and one scale per row
    in the activations' dtype; checked by running ``torch._weight_int8pack_mm``."""
    scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127
    q = torch.round(w / scales[:, None]).clamp(-128, 127).to(torch.int8)
    x = torch.randn(3, w.shape[1])
    out = torch._weight_int8pack_mm(x, q, scales)
    torch.testing.assert_close(out, x @ (q.float() * scales[:, None]).T, rtol=1e-4, atol=1e-4)
    return q, scales


def _int4_weight_only(w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``w`` (out, in) as PyTorch's CPU int4 weight-only kernel takes it: packed 4-bit values and a bf16
    scale and zero point per group of up to 128 inputs; checked by running
    ``torch._weight_int4pack_mm_for_cpu``."""
    out_features, in_features = w.shape
    group = min(128, in_features)
    groups = w.reshape(out_features, in_features // group, group)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)
    scales = (high - low).clamp(min=1e-6) / 15
    zeros = low + 8 * scales
    q = ((groups - low[..., None]) / scales[..., None]).round().clamp(0, 15).to(torch.int32)
    q = q.reshape(out_features, in_features)
    packed = torch._convert_weight_to_int4pack_for_cpu(q, 2)
    scales_and_zeros = torch.stack([scales, zeros], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
    x = torch.randn(3, in_features, dtype=torch.bfloat16)
    result = torch._weight_int4pack_mm_for_cpu(x, packed, group, scales_and_zeros)
    sz = scales_and_zeros.float().transpose(0, 1)  # (out, groups, 2)
    dequant = (q.reshape(out_features, -1, group) - 8) * sz[..., :1] + sz[..., 1:]
    reference = x.float() @ dequant.reshape(out_features, in_features).T
    torch.testing.assert_close(result.float(), reference, rtol=0.05, atol=0.05 * reference.abs().max().item())
    return packed, scales_and_zeros


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_weight_only_quantisation_is_the_exact_byte_count(precision: str) -> None:
    """Quantise every linear weight of the GPT-2 for real, in the layouts PyTorch's own weight-only CPU
    kernels take (each layer's tensors are run through the kernel), and count their bytes; the other
    parameters stay as they are."""
    path = _file("gpt2")
    profile = _profile(path, "inference")
    result = estimate(profile, Scenario(precision=Precision(precision)))
    torch.manual_seed(0)
    spec_model = gt.load_model_file(path).build_model()
    quantise = _int8_weight_only if precision == "int8" else _int4_weight_only
    total = 0
    seen: set[int] = set()
    for module in spec_model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            is_linear = type(module).__name__ in ("Linear", "Conv1D") and name == "weight" and p.dim() == 2
            if not is_linear:
                total += p.untyped_storage().nbytes()
                continue
            weight = p.detach().T if type(module).__name__ == "Conv1D" else p.detach()  # Conv1D: (in, out)
            total += sum(t.untyped_storage().nbytes() for t in quantise(weight.contiguous()))
    print(f"gpt2 {precision}: estimate {result.param_bytes:,} real tensors {total:,}")
    assert result.param_bytes == total

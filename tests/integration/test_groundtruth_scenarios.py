"""What-if scenarios of the ground-truth harness (tests/groundtruth.py) against independent facts.

memadvise's what-if analyzer is checked against these measurements, so the
scenarios themselves (precision, activation checkpointing, frozen modules,
gradient accumulation, optimizers, structured pruning) must be right.  Every
expectation below comes from tensor sizes or from how PyTorch documents the
feature, never from memadvise.  All runs use one intra-op thread.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import groundtruth
import pytest
import torch
from cpu_features import HAS_AMX
from torch import nn

F32 = 4
REPO = Path(__file__).resolve().parents[2]
GPT2 = REPO / "tests" / "zoo" / "gpt2.py"
N = 1000
W = N * N * F32  # bytes of one 1000x1000 float32 weight

LINEAR_FILE = """
from __future__ import annotations
import torch

def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(1000, 1000, bias=False)

def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 1000)
"""

TWO_LINEAR_FILE = """
from __future__ import annotations
import torch

def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(1000, 1000, bias=False), torch.nn.Linear(1000, 1000, bias=False)
    )

def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 1000)
"""

# Two blocks of four Linear(256, 256) + ReLU: activations of a 1024 batch are 1 MiB each.
MLP_FILE = """
from __future__ import annotations
import torch
from torch import nn

def _block() -> nn.Module:
    return nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(256, 256), nn.ReLU())])

def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 256), _block(), _block(), nn.Linear(256, 4))

def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 32)
"""
MLP_WIDTH = 256


def _tiny_mlp() -> Any:
    """Linear chain with LayerNorm/Dropout/activations between the layers."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 64),
        nn.ReLU(),
        nn.LayerNorm(64),
        nn.Dropout(0.1),
        nn.Linear(64, 40),
        nn.GELU(),
        nn.Linear(40, 8),
    )


def _tiny_cnn() -> Any:
    """Conv/BatchNorm/ReLU/MaxPool chain ending in Flatten + Linear, for 8x8 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 12, 3, padding=1),
        nn.BatchNorm2d(12),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 10),
    )


PRUNE_FILE = """
from __future__ import annotations
import torch
from torch import nn

def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 8))

def example_inputs(batch_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch_size, 64)
"""


def _n_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the inline model files."""
    d = tmp_path_factory.mktemp("gt_scenarios")
    for name, text in {
        "linear.py": LINEAR_FILE,
        "two_linear.py": TWO_LINEAR_FILE,
        "mlp.py": MLP_FILE,
        "prune.py": PRUNE_FILE,
    }.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


# --------------------------------------------------------------------------- precision




@pytest.mark.xfail(
    HAS_AMX,
    strict=True,
    reason="with AMX, oneDNN's 16-bit linear kernels allocate buffers of their own: the bf16 train "
    "peak is 4,075,124 B (fp16 4,091,252 B), not 8,012,008 / 2",
)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_pure_half_precision_halves_everything_on_a_linear_model(model_dir: Path, precision: str) -> None:
    """Pure bf16/fp16 casts weight, input and every activation: all numbers halve exactly."""
    path = model_dir / "linear.py"
    for mode in ("train", "inference"):
        full = groundtruth.measure_peak(path, 1, mode, "sgd", loop="lean")
        half = groundtruth.measure_peak(path, 1, mode, "sgd", precision=precision, loop="lean")
        assert full.baseline_bytes == W + N * F32
        assert 2 * half.baseline_bytes == full.baseline_bytes
        assert 2 * half.peak_bytes == full.peak_bytes
        assert half.peak_phase == full.peak_phase


def test_pure_bf16_halves_the_parameter_part_of_gpt2(model_dir: Path) -> None:
    """GPT-2's integer token ids keep their size; only floating parameters and buffers halve."""
    module = groundtruth.load_model_file(GPT2)
    model = module.build_model()
    floating = {
        t.data_ptr(): t.numel() * t.element_size()
        for t in [*model.parameters(), *model.buffers()]
        if t.is_floating_point()
    }
    full = groundtruth.measure_peak(GPT2, 2, "train", "adamw")
    bf16 = groundtruth.measure_peak(GPT2, 2, "train", "adamw", precision="bf16")
    assert full.baseline_bytes - bf16.baseline_bytes == sum(floating.values()) // 2
    assert bf16.peak_bytes < 0.7 * full.peak_bytes


@pytest.mark.parametrize(
    "precision",
    [
        pytest.param(
            "bf16-mixed",
            marks=pytest.mark.xfail(
                HAS_AMX,
                strict=True,
                reason="with AMX, oneDNN's bf16 linear kernels add 137,212 B of their own: the peak is "
                "6,145,216 B, not 6,008,004 B",
            ),
        ),
        "fp16-mixed",
    ],
)
def test_mixed_precision_keeps_fp32_weights_and_adds_half_copies(model_dir: Path, precision: str) -> None:
    """Autocast keeps fp32 weights; a forward adds half copies of weight and input and a half output."""
    path = model_dir / "linear.py"
    full = groundtruth.measure_peak(path, 1, "inference")
    mixed = groundtruth.measure_peak(path, 1, "inference", precision=precision)
    assert mixed.baseline_bytes == full.baseline_bytes == W + N * F32
    # fp32 weight + fp32 input + half weight (autocast cache) + half input + half output
    assert mixed.peak_bytes == W + N * F32 + W // 2 + N * 2 + N * 2
    train = groundtruth.measure_peak(path, 1, "train", "sgd", precision=precision)
    assert train.baseline_bytes == full.baseline_bytes
    # the fp32 gradient lands next to the fp32 weight while the half weight is still saved for backward
    assert train.peak_bytes >= 2 * W + W // 2


def test_unknown_precision_rejected(model_dir: Path) -> None:
    """A typo in the precision fails loudly."""
    with pytest.raises(ValueError, match="precision"):
        groundtruth.measure_peak(model_dir / "linear.py", 1, precision="fp8")


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize(
    ("optimizer", "state_bytes"),
    [
        ("sgd-momentum", W),  # momentum_buffer
        ("adagrad", W + F32),  # sum + float32 step
        ("rmsprop", W + F32),  # square_avg + float32 step
        ("adam", 2 * W + F32),  # exp_avg, exp_avg_sq + float32 step
        ("adamw", 2 * W + F32),
    ],
)
def test_optimizer_state_matches_analytic_bytes(model_dir: Path, optimizer: str, state_bytes: int) -> None:
    """The second step's forward runs with the optimizer state live: it adds exactly the state bytes."""
    path = model_dir / "linear.py"
    sgd = groundtruth.measure_peak(path, 1, "train", "sgd")
    other = groundtruth.measure_peak(path, 1, "train", optimizer)
    assert other.phase_peaks["forward"] - sgd.phase_peaks["forward"] == state_bytes
    # during the update, weight + gradient + state are live together (plus temporaries)
    assert other.phase_peaks["optimizer"] >= sgd.baseline_bytes + W + state_bytes
    if optimizer != "sgd-momentum":
        assert other.peak_phase == "optimizer"


# --------------------------------------------------------------------------- frozen modules


def test_freezing_a_layer_drops_its_gradient_and_state(model_dir: Path) -> None:
    """Frozen parameters get no AdamW state: the second forward is lighter by exactly that state."""
    path = model_dir / "two_linear.py"
    full = groundtruth.measure_peak(path, 1, "train", "adamw")
    for name in ("0", "1"):
        frozen = groundtruth.measure_peak(path, 1, "train", "adamw", frozen=[name])
        assert frozen.baseline_bytes == full.baseline_bytes
        assert full.phase_peaks["forward"] - frozen.phase_peaks["forward"] >= 2 * W + F32
        assert full.peak_bytes - frozen.peak_bytes >= 3 * W  # gradient + two state tensors
    with pytest.raises(ValueError, match="no trainable parameter"):
        groundtruth.measure_peak(path, 1, "train", "adamw", frozen=["0", "1"])


def test_freezing_all_but_one_gpt2_block_reduces_the_peak() -> None:
    """LoRA-style: only transformer.h.1 trains; embeddings, h.0, ln_f frozen."""
    frozen = ["transformer.wte", "transformer.wpe", "transformer.h.0", "transformer.ln_f"]
    full = groundtruth.measure_peak(GPT2, 2, "train", "adamw")
    lora = groundtruth.measure_peak(GPT2, 2, "train", "adamw", frozen=frozen)
    assert lora.baseline_bytes == full.baseline_bytes
    assert lora.peak_bytes < full.peak_bytes


# --------------------------------------------------------------------------- checkpointing


def test_checkpointing_a_block_drops_its_saved_activations(model_dir: Path) -> None:
    """Checkpointing block 1 keeps only its input: three of its four ReLU outputs are no longer saved.

    The fourth ReLU output is block 2's input and stays saved; non-reentrant
    checkpointing stores the CPU RNG state instead (preserve_rng_state=True).
    """
    path = model_dir / "mlp.py"
    batch = 1024
    act = batch * MLP_WIDTH * F32
    full = groundtruth.measure_peak(path, batch, "train", "sgd")
    ckpt = groundtruth.measure_peak(path, batch, "train", "sgd", checkpoint=["1"])
    rng_state = torch.get_rng_state().numel() * torch.get_rng_state().element_size()
    assert ckpt.baseline_bytes == full.baseline_bytes
    assert full.phase_peaks["forward"] - ckpt.phase_peaks["forward"] == 3 * act - rng_state
    assert full.peak_bytes - ckpt.peak_bytes >= 2 * act


def test_checkpointing_gpt2_blocks_reduces_the_peak() -> None:
    """Both transformer blocks checkpointed: fewer saved activations, lower peak."""
    full = groundtruth.measure_peak(GPT2, 4, "train", "sgd")
    one = groundtruth.measure_peak(GPT2, 4, "train", "sgd", checkpoint=["transformer.h.0"])
    blocks = ["transformer.h.0", "transformer.h.1"]
    both = groundtruth.measure_peak(GPT2, 4, "train", "sgd", checkpoint=blocks)
    assert both.peak_bytes < one.peak_bytes < full.peak_bytes


def test_checkpoint_wrapper_recomputes_and_keeps_gradients() -> None:
    """The wrapper runs the module's forward again in backward and yields the same gradients."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 1))
    wrapped: Any = nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 1))
    wrapped.load_state_dict(plain.state_dict())
    calls: list[int] = []
    wrapped[1].register_forward_hook(lambda *_: calls.append(1))
    groundtruth.apply_checkpoint(wrapped, ["1.0"])
    inner_calls: list[int] = []
    wrapped[1][0].register_forward_pre_hook(lambda *_: inner_calls.append(1))
    groundtruth.apply_checkpoint(wrapped, ["1"])
    x = torch.randn(4, 8)
    plain(x).sum().backward()
    wrapped(x).sum().backward()
    assert calls == [1]  # the outer module is called once from the model's forward
    assert len(inner_calls) == 2  # and its contents run again during backward
    for a, b in zip(plain.parameters(), wrapped.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(a.grad, b.grad)


def test_unknown_module_names_rejected(model_dir: Path) -> None:
    """Unknown checkpoint/frozen names, or a bare string, raise ValueError before measuring."""
    path = model_dir / "mlp.py"
    with pytest.raises(ValueError, match="unknown module"):
        groundtruth.measure_peak(path, 2, checkpoint=["1", "block9"])
    with pytest.raises(ValueError, match="unknown module"):
        groundtruth.measure_peak(path, 2, frozen=["encoder"])
    with pytest.raises(ValueError, match="sequence"):
        groundtruth.measure_peak(path, 2, frozen="1")


# --------------------------------------------------------------------------- gradient accumulation


def test_grad_accum_adds_one_incoming_gradient(model_dir: Path) -> None:
    """From the second micro-batch on, the new gradient exists next to .grad before being added."""
    path = model_dir / "linear.py"
    one = groundtruth.measure_peak(path, 1, "train", "sgd", loop="lean")
    two = groundtruth.measure_peak(path, 1, "train", "sgd", grad_accum=2, loop="lean")
    three = groundtruth.measure_peak(path, 1, "train", "sgd", grad_accum=3, loop="lean")
    assert two.peak_bytes == one.peak_bytes + W
    assert three.peak_bytes == two.peak_bytes
    assert two.end_bytes == one.end_bytes == one.baseline_bytes
    # the tutorial loop holds each micro-batch's output and loss until the next one replaces them
    tutorial = groundtruth.measure_peak(path, 1, "train", "sgd", grad_accum=2)
    assert tutorial.end_bytes == one.baseline_bytes + N * F32 + F32


def test_grad_accum_never_lowers_the_gpt2_peak() -> None:
    """K micro-batches of the same size cannot need less memory than one."""
    one = groundtruth.measure_peak(GPT2, 2, "train", "adamw")
    two = groundtruth.measure_peak(GPT2, 2, "train", "adamw", grad_accum=2)
    assert two.peak_bytes >= one.peak_bytes


def test_grad_accum_validation(model_dir: Path) -> None:
    """K must be a positive int and only makes sense for training."""
    path = model_dir / "linear.py"
    bad_values: tuple[Any, ...] = (0, -1, 1.5, True)
    for bad in bad_values:
        with pytest.raises(ValueError, match="grad_accum"):
            groundtruth.measure_peak(path, 1, grad_accum=bad)
    with pytest.raises(ValueError, match="grad_accum"):
        groundtruth.measure_peak(path, 1, "inference", grad_accum=2)


# --------------------------------------------------------------------------- structured pruning


def test_prune_mlp_parameter_counts_and_shapes() -> None:
    """Hidden sizes 64 and 40 keep round(n * 0.5) units; LayerNorm follows; in/out sizes stay."""
    model = _tiny_mlp()
    x = torch.randn(3, 16)
    before = model(x).shape
    assert groundtruth.prunable_layers(model) == {"0": "4", "4": "6"}
    assert id(groundtruth.prune_structured(model, 0.5)) == id(model)  # pruned in place
    assert (model[0].in_features, model[0].out_features) == (16, 32)
    assert tuple(model[2].normalized_shape) == (32,)
    assert (model[4].in_features, model[4].out_features) == (32, 20)
    assert (model[6].in_features, model[6].out_features) == (20, 8)
    assert _n_params(model) == (16 * 32 + 32) + 2 * 32 + (32 * 20 + 20) + (20 * 8 + 8)
    assert model(x).shape == before


def test_prune_keeps_largest_l1_rows_and_rounds() -> None:
    """Kept units are the largest-L1 rows, in their original order; round() and at-least-one apply."""
    model = _tiny_mlp()
    weight = model[0].weight.detach().clone()
    expected = torch.topk(weight.abs().sum(dim=1), 48).indices.sort().values
    groundtruth.prune_structured(model, 0.25)
    torch.testing.assert_close(model[0].weight.detach(), weight[expected])
    assert model[4].out_features == round(40 * 0.75)
    tiny: Any = groundtruth.prune_structured(_tiny_mlp(), 0.999)
    assert tiny[0].out_features == 1 and tiny[4].out_features == 1


def test_prune_removing_dead_units_keeps_outputs() -> None:
    """Units whose weights and bias are zero contribute nothing: removing them changes no output."""
    model = _tiny_cnn().eval()
    with torch.no_grad():
        model[0].weight[::2] = 0
        model[0].bias[::2] = 0
        model[1].weight[::2] = 0
        model[1].bias[::2] = 0
        model[4].weight[::2] = 0
        model[4].bias[::2] = 0
        model[5].weight[::2] = 0
        model[5].bias[::2] = 0
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    groundtruth.prune_structured(model, 0.5)
    assert (model[0].out_channels, model[1].num_features, model[4].in_channels) == (8, 8, 8)
    assert (model[4].out_channels, model[5].num_features) == (6, 6)
    assert model[8].in_features == 6 * 4 * 4
    assert model[1].running_var.shape == (8,)
    torch.testing.assert_close(model(x), expected)


def test_prune_cnn_parameter_count() -> None:
    """Conv channels 16 -> 12 (x0.75) and 12 -> 9; the flatten shrinks the head by channels x 16."""
    model = _tiny_cnn()
    groundtruth.prune_structured(model, 0.25)
    expected = (
        (3 * 12 * 9 + 12)  # conv0
        + 2 * 12  # bn1
        + (12 * 9 * 9 + 9)  # conv4
        + 2 * 9  # bn5
        + (9 * 16 * 10 + 10)  # linear head
    )
    assert _n_params(model) == expected
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_prune_resnet_inner_convs_only() -> None:
    """Residual outputs are left alone; each BasicBlock's conv1 -> conv2 channels shrink."""
    torchvision = pytest.importorskip("torchvision")
    model: Any = torchvision.models.resnet18(weights=None, num_classes=10)
    pairs = groundtruth.prunable_layers(model)
    assert pairs == {f"layer{i}.{j}.conv1": f"layer{i}.{j}.conv2" for i in range(1, 5) for j in range(2)}
    groundtruth.prune_structured(model, 0.5)
    assert model.layer1[0].conv1.out_channels == 32 and model.layer1[0].bn1.num_features == 32
    assert model.layer1[0].conv2.out_channels == 64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_prune_rejects_unprunable_structures() -> None:
    """Nothing to prune, an untraceable model or a bad sparsity raise ValueError."""
    with pytest.raises(ValueError, match="nothing .* can be pruned"):
        groundtruth.prune_structured(nn.Sequential(nn.Linear(4, 8), nn.Softmax(dim=-1), nn.Linear(8, 2)), 0.5)
    with pytest.raises(ValueError, match="nothing .* can be pruned"):
        groundtruth.prune_structured(nn.Linear(4, 4), 0.5)

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.b(self.a(x))
            return x

    with pytest.raises(ValueError, match="cannot trace"):
        groundtruth.prune_structured(Branchy(), 0.5)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="sparsity"):
            groundtruth.prune_structured(_tiny_mlp(), bad)


def test_transform_prunes_before_the_window(model_dir: Path) -> None:
    """Only the pruned model is in the baseline; the unpruned one was freed before the window."""
    path = model_dir / "prune.py"
    batch = 4
    inputs = batch * 64 * F32
    full = groundtruth.measure_peak(path, batch, "train", "adamw")
    pruned = groundtruth.measure_peak(
        path, batch, "train", "adamw", transform=lambda m: groundtruth.prune_structured(m, 0.5)
    )
    full_params = (64 * 512 + 512) + (512 * 512 + 512) + (512 * 8 + 8)
    kept_params = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 8 + 8)
    assert full.baseline_bytes == full_params * F32 + inputs
    assert pruned.baseline_bytes == kept_params * F32 + inputs
    assert pruned.peak_bytes < full.peak_bytes


# --------------------------------------------------------------------------- command line


def test_command_line_scenario_options(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line passes every scenario option through and prints the same JSON."""
    path = model_dir / "two_linear.py"
    argv = [str(path), "--batch-size", "1", "--optimizer", "rmsprop", "--precision", "bf16"]
    argv += ["--frozen", "0", "--checkpoint", "1", "--grad-accum", "2"]
    assert groundtruth.main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    direct = groundtruth.measure_peak(
        path, 1, "train", "rmsprop", precision="bf16", frozen=["0"], checkpoint=["1"], grad_accum=2
    )
    assert printed == json.loads(direct.to_json())
    assert printed["baseline_bytes"] == (2 * W + N * F32) // 2

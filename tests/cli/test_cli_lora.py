"""``memadvise estimate --lora / --low-rank / --precision nf4`` and ``plan --lora`` on the tiny MLP's
saved profile (``Linear(8, 16)``, ReLU, ``Linear(16, 4)``), checked against closed-form counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app

LAYERS = ((16, 8), (4, 16))  # (out, in) of the two linear layers, "0" and "2"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _json(saved: Path, *args: str) -> dict:
    result = invoke("estimate", str(saved), *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_lora_adapters_their_gradients_and_adamw_state(saved: Path) -> None:
    data = _json(saved, "--lora", "4")
    adapters = sum(4 * (out + inp) * 4 for out, inp in LAYERS)  # A (r×in) and B (out×r), fp32
    assert data["lora"]["adapter_param_bytes"] == adapters
    assert data["lora"]["layers"] == ["0", "2"]
    assert data["grad_bytes"] == adapters  # the base model is frozen
    # AdamW: exp_avg and exp_avg_sq per adapter, and a 4-byte step counter for each of the 4 adapters.
    assert data["optimizer_state_bytes"] == 2 * adapters + 4 * 4
    base = sum(out * inp + out for out, inp in LAYERS) * 4
    assert data["param_bytes"] == base + adapters


def test_lora_targets_are_name_suffixes(saved: Path) -> None:
    data = _json(saved, "--lora", "2", "--lora-targets", "2")
    assert data["lora"]["layers"] == ["2"]
    assert data["lora"]["adapter_param_bytes"] == 2 * (4 + 16) * 4


def test_low_rank_factors_and_break_even(saved: Path) -> None:
    data = _json(saved, "--low-rank", "2")
    layers = data["low_rank"]["layers"]
    assert [layer["rank"] for layer in layers] == [2, 2]
    for layer, (out, inp) in zip(layers, LAYERS, strict=True):
        assert layer["factor_bytes"] == 2 * (out + inp) * 4
        assert math.isclose(layer["break_even"], out * inp / (out + inp))
    assert data["grad_bytes"] == sum(2 * (out + inp) * 4 + out * 4 for out, inp in LAYERS)


def test_low_rank_fraction_of_the_full_rank(saved: Path) -> None:
    layers = _json(saved, "--low-rank", "0.5")["low_rank"]["layers"]
    assert [layer["rank"] for layer in layers] == [4, 2]  # half of min(out, in)


def test_qlora_nf4_table(saved: Path) -> None:
    result = invoke(
        "estimate", str(saved), "--lora", "4", "--precision", "nf4", "--optimizer", "paged-adamw-8bit"
    )
    assert result.exit_code == 0, result.stderr
    assert "LoRA r=4" in result.stdout
    assert "nf4" in result.stdout


def test_qlora_weights_follow_the_bitsandbytes_nf4_layout(saved: Path) -> None:
    data = _json(saved, "--lora", "4", "--precision", "nf4")

    def nf4(n: int) -> int:  # bitsandbytes quantize_4bit, blocksize 64, compress_statistics=True
        blocks = math.ceil(n / 64)
        packed, absmax, nested_absmax, offset = math.ceil(n / 2), blocks, 4 * math.ceil(blocks / 256), 4
        codes = 16 * 4 + 256 * 4  # the NF4 code and the nested state's dynamic code, fp32
        return packed + absmax + nested_absmax + offset + codes

    weights = sum(nf4(out * inp) for out, inp in LAYERS)
    biases = sum(out for out, _ in LAYERS) * 2  # bf16
    adapters = sum(4 * (out + inp) for out, inp in LAYERS) * 4  # fp32, as PEFT keeps them
    assert data["param_bytes"] == weights + biases + adapters
    assert data["grad_bytes"] == adapters
    # A 4096×4096 weight: 8,388,608 packed + 262,144 absmax + 4,096 nested absmax + 4 + 1,088 bytes.
    assert nf4(4096 * 4096) == 8_655_940


PEFT_MLP = """
import torch
from peft import LoraConfig, get_peft_model
from torch import nn


def build_model():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    return get_peft_model(model, LoraConfig(r=2, target_modules=["0"]))


def example_inputs(batch_size):
    return torch.randn(batch_size, 8)
"""


def test_lora_on_a_profile_with_adapters_already(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    model_file = tmp_path / "peft_mlp.py"
    model_file.write_text(PEFT_MLP)
    saved = tmp_path / "peft.json"
    traced = invoke("profile", str(model_file), "-b", "1", "--device", "cpu", "-o", str(saved))
    assert traced.exit_code == 0, traced.stderr
    result = invoke("estimate", str(saved), "--lora", "4")
    assert result.exit_code == 2
    assert "LoRA adapters already" in result.stderr


def test_plan_takes_lora(saved: Path) -> None:
    result = invoke("plan", str(saved), "--gpu", "1GB", "--reserve", "0", "--lora", "4", "--format", "json")
    assert result.exit_code == 0, result.stderr
    best = json.loads(result.stdout)["options"][0]
    assert "--lora 4 --lora-targets all-linear" in best["flags"]
    assert any("get_peft_model" in line for line in best["code"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lora-targets", "0"], "need --lora RANK"),
        (["--lora", "4", "--lora-targets", "1"], "only linear layers"),
        (["--lora", "4", "--lora-targets", "q_proj"], "no module name ends with"),
        (["--lora", "4", "--frozen", "0"], "drop --frozen"),
        (["--precision", "nf4"], "--lora (QLoRA)"),
        (["--low-rank", "abc"], "--low-rank takes"),
        (["--low-rank", "2.5"], "integer rank or a fraction"),
        (["--low-rank-targets", "0"], "needs --low-rank"),
        (["--lora", "4", "--low-rank", "2"], "choose one"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(saved: Path, args: list[str], message: str) -> None:
    result = invoke("estimate", str(saved), *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""Hugging Face config folders and Hub names: built from config.json alone, traced like a model file.

Nothing here downloads: folders are written by ``XConfig(...).save_pretrained``, and the Hub cache is a
temporary folder laid out as huggingface_hub lays it out, with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import groundtruth
import pytest
from typer.testing import CliRunner

import memadvise
from memadvise.cli import app

TRUTH_FILE = """\
import torch
from transformers import AutoConfig, AutoModelForCausalLM

def build_model():
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained({folder!r}))

def example_inputs(batch_size):
    ids = torch.randint(0, 300, (batch_size, {seq}))
    return {{"input_ids": ids, "labels": ids}}
"""


def one_line_error(result: object) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("memadvise: error: "), lines
    return lines[0]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_config_folder_peak_matches_the_ground_truth(gpt2_folder: Path, tmp_path: Path) -> None:
    """The folder's model, traced, against the allocator peak of the same model written by hand."""
    import torch

    truth_file = tmp_path / "truth_gpt2.py"
    truth_file.write_text(TRUTH_FILE.format(folder=str(gpt2_folder), seq=16))
    truth = groundtruth.measure_peak(truth_file, 2)
    prof = memadvise.profile_file(str(gpt2_folder), batch_size=2, seq_len=16, device="cpu", scaling=False)
    error = abs(prof.peak_bytes - truth.peak_bytes) / truth.peak_bytes
    assert error <= 0.02, (prof.peak_bytes, truth.peak_bytes)
    model = groundtruth.load_model_file(truth_file).build_model()
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    assert prof.param_bytes == sum(unique.values())  # tied input and output embeddings counted once
    assert prof.input_bytes == 2 * 16 * torch.int64.itemsize  # labels are the input ids' tensor
    assert prof.seq_len == 16 and prof.model == "gpt2-tiny"


def test_default_seq_len_is_the_models_positions(gpt2_folder: Path) -> None:
    prof = memadvise.profile_file(str(gpt2_folder / "config.json"), device="meta", scaling=False)
    assert prof.seq_len == 32 and prof.trace == "fake"


def test_task_chooses_the_head(bert_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = ["profile", str(bert_folder), "--task", "seq-cls", "--fake", "--mode", "inference"]
    args += ["--no-scaling", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    from memadvise.model.profile import load_profile

    layers = {layer.name: layer.type for layer in load_profile(out).layers}
    assert layers[""] == "BertForSequenceClassification" and "classifier" in layers


def test_without_architectures_the_base_model_is_traced(bert_folder: Path) -> None:
    prof = memadvise.profile_file(str(bert_folder), device="meta", target_device="cpu", scaling=False)
    assert prof.layers[0].type == "BertModel"


@pytest.mark.parametrize("command", ["estimate", "plan"])
def test_estimate_and_plan_take_a_config_folder(gpt2_folder: Path, command: str) -> None:
    args = [command, str(gpt2_folder), "--fake", "--format", "json"]
    args += ["--batch-size", "4"] if command == "estimate" else ["--gpu", "24GB", "--task", "seq-cls"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr


def cache_hub_model(hub: Path, name: str, folder: Path) -> None:
    """Put ``folder``'s config.json into the Hub cache ``hub`` as huggingface_hub stores a download."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / ("models--" + name.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    shutil.copy(folder / "config.json", repo / "snapshots" / revision / "config.json")


def test_a_cached_hub_name(gpt2_folder: Path, offline_hub: Path) -> None:
    cache_hub_model(offline_hub, "acme/gpt2-tiny", gpt2_folder)
    prof = memadvise.profile_file("acme/gpt2-tiny", device="meta", mode="inference", scaling=False)
    assert prof.model == "acme/gpt2-tiny" and prof.layers[0].type == "GPT2LMHeadModel"


@pytest.mark.parametrize("name", ["gpt2", "bert-base-uncased", "acme/not-cached"])
def test_an_uncached_hub_name_offline_is_one_line(offline_hub: Path, name: str) -> None:
    line = one_line_error(CliRunner().invoke(app, ["profile", name, "--fake"]))
    assert name in line and "HF_HUB_OFFLINE" in line and f"hf download {name} config.json" in line


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not a readable JSON config"),
        ('{"hidden_size": 3}', "no model_type"),
        ('{"model_type": "no-such-model"}', "cannot read it"),
    ],
)
def test_bad_config_json(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "config.json").write_text(content)
    assert fragment in one_line_error(CliRunner().invoke(app, ["profile", str(tmp_path), "--fake"]))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--task", "seq-cls"], "--task applies to Hugging Face"),
        (["--image-size", "64"], "--image-size applies to"),
    ],
)
def test_target_options_on_a_model_file(args: list[str], fragment: str) -> None:
    model = Path(__file__).resolve().parents[1] / "models" / "tiny_mlp.py"
    assert fragment in one_line_error(CliRunner().invoke(app, ["profile", str(model), "--fake", *args]))


def test_task_needs_a_model_not_a_saved_profile(tmp_path: Path) -> None:
    from hand_built import hand_built_profile

    hand_built_profile().save(tmp_path / "p.json")
    line = one_line_error(
        CliRunner().invoke(app, ["estimate", str(tmp_path / "p.json"), "--task", "seq-cls"])
    )
    assert "--task needs the model" in line


def test_a_model_file_name_without_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text("")
    assert "did you mean the model file model.py" in one_line_error(
        CliRunner().invoke(app, ["profile", "model"])
    )


def test_seq_len_beyond_the_positions(gpt2_folder: Path) -> None:
    line = one_line_error(CliRunner().invoke(app, ["profile", str(gpt2_folder), "--fake", "--seq-len", "64"]))
    assert "32 positions" in line

"""``memadvise check`` takes the same targets as ``profile``: config folders and timm/torchvision names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memadvise.check import load_baseline
from memadvise.cli import app


def check(*args: str) -> object:
    return CliRunner().invoke(app, ["check", *args])


def test_a_config_folder_and_a_torchvision_name(
    gpt2_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(gpt2_folder, tmp_path / "models" / "gpt2-tiny")
    common = ["--baseline", "base.json", "-b", "1", "--mode", "inference", "--device", "cpu"]
    vision = ["torchvision:squeezenet1_1", "--image-size", "64"]
    for args in (["models/gpt2-tiny"], vision):
        result = check(*args, *common, "--update")
        assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    keys = sorted(load_baseline(tmp_path / "base.json").entries)
    assert keys[0].startswith("models/gpt2-tiny") and keys[1].startswith("torchvision:squeezenet1_1"), keys
    assert keys[1].endswith("|image_size=64"), keys  # the image side is part of the entry
    for args in (["models/gpt2-tiny"], vision):
        again = check(*args, *common)
        assert again.exit_code == 0, again.stdout + again.stderr  # type: ignore[attr-defined]
        assert "PASSED" in again.stdout  # type: ignore[attr-defined]
    assert "image 64" in again.stdout  # type: ignore[attr-defined]
    other = check("torchvision:squeezenet1_1", *common, "--image-size", "96")
    assert other.exit_code == 2 and "no entry" in other.stderr  # type: ignore[attr-defined]


def test_input_options_shape_the_run_and_the_entry(
    gpt2_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--seq-len reaches the synthesised inputs (a shorter sequence takes less memory) and names its own
    baseline entry; the same options in the config file give the same entry."""
    monkeypatch.chdir(tmp_path)
    common = [str(gpt2_folder), "-B", "base.json", "--mode", "inference", "--device", "cpu"]
    for seq in ("8", "32"):
        assert check(*common, "--seq-len", seq, "--update").exit_code == 0
    entries = load_baseline(tmp_path / "base.json").entries
    by_seq = {e.inputs["seq_len"]: e for e in entries.values()}
    assert sorted(by_seq) == [8, 32] and all(
        k.endswith(f"|seq_len={e.inputs['seq_len']}") for k, e in entries.items()
    )
    assert by_seq[8].figures["peak_bytes"] < by_seq[32].figures["peak_bytes"]
    (tmp_path / "memadvise.toml").write_text(
        f'[check]\nbaseline = "base.json"\nmodes = ["inference"]\ndevice = "cpu"\n'
        f'[[check.models]]\npath = "{gpt2_folder.as_posix()}"\nseq_len = 8\n'
    )
    result = check()
    assert result.exit_code == 0 and "seq 8" in result.stdout, result.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "--task"),
        (["--seq-len", "0"], "--seq-len"),
        (["--image-size", "0"], "--image-size"),
    ],
)
def test_bad_input_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = check("timm:resnet18", "-B", str(tmp_path / "b.json"), *args)
    assert result.exit_code == 2 and message in result.stderr  # type: ignore[attr-defined]


def test_bad_input_options_in_the_config_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "memadvise.toml").write_text(
        '[check]\nbaseline = "b.json"\nmodels = ["timm:resnet18"]\nseq_len = 0\n'
    )
    result = check("--config", str(tmp_path / "memadvise.toml"))
    assert result.exit_code == 2 and "seq_len" in result.stderr, result.stderr  # type: ignore[attr-defined]
    assert len(result.stderr.strip().splitlines()) == 1  # type: ignore[attr-defined]


def test_a_config_lists_a_folder(gpt2_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    shutil.copytree(gpt2_folder, project / "gpt2-tiny")
    (project / "memadvise.toml").write_text(
        '[check]\nbaseline = "base.json"\nbatch_sizes = [1]\nmodes = ["inference"]\ndevice = "cpu"\n'
        'models = ["gpt2-tiny"]\n'
    )
    monkeypatch.chdir(tmp_path)  # the config's paths are relative to the config, not to here
    result = check("--config", str(project / "memadvise.toml"), "--update")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert list(load_baseline(project / "base.json").entries)[0].startswith("gpt2-tiny")

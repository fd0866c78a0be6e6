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
    targets = ["models/gpt2-tiny", "torchvision:squeezenet1_1"]
    common = ["--baseline", "base.json", "-b", "1", "--mode", "inference", "--device", "cpu"]
    result = check(*targets, *common, "--update")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    keys = sorted(load_baseline(tmp_path / "base.json").entries)
    assert keys[0].startswith("models/gpt2-tiny") and keys[1].startswith("torchvision:squeezenet1_1"), keys
    again = check(*targets, *common)
    assert again.exit_code == 0, again.stdout + again.stderr  # type: ignore[attr-defined]
    assert "PASSED" in again.stdout  # type: ignore[attr-defined]


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

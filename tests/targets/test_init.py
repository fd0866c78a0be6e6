"""``memadvise init``: the template it writes profiles as it is, and nothing the user owns is overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memadvise.cli import app

# The template's model: Embedding(1000, 64), Linear(64, 256), Linear(256, 1000) in float32.
TEMPLATE_PARAMS = 1000 * 64 + (64 * 256 + 256) + (256 * 1000 + 1000)


def test_init_writes_a_template_that_profiles(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "memadvise profile" in result.stderr and result.stdout == ""
    text = path.read_text()
    for name in (
        "def build_model",
        "def example_inputs",
        "def loss_fn",
        "# def train_step",
        "# def make_dataloader",
    ):
        assert name in text
    out = tmp_path / "p.json"
    result = runner.invoke(
        app, ["profile", str(path), "-b", "2", "--device", "cpu", "--seq-len", "8", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    from memadvise.model.profile import load_profile

    prof = load_profile(out)
    assert prof.param_bytes == 4 * TEMPLATE_PARAMS
    assert prof.input_bytes == 2 * 8 * 8  # int64 token ids


def test_init_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text("mine\n")
    result = CliRunner().invoke(app, ["init", str(path)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert path.read_text() == "mine\n"


@pytest.mark.parametrize("name", ["model.txt", "missing_folder/model.py"])
def test_init_bad_names(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / name)])
    assert result.exit_code == 2 and result.stderr.startswith("memadvise: error: ")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("command", ["profile", "estimate", "plan"])
@pytest.mark.parametrize("target", ["no_such_model.py", "{folder}"])
def test_not_a_model_file_points_to_init(tmp_path: Path, command: str, target: str) -> None:
    args = [command, target.format(folder=tmp_path)]
    if command == "plan":
        args += ["--gpu", "24GB"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "memadvise init model.py" in result.stderr and "config" in result.stderr, result.stderr

"""``memadvise estimate``: from a saved profile and from a model file, table and JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memadvise.cli import app

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TINY = str(MODELS_DIR / "tiny_mlp.py")
ESTIMATE_KEYS = {
    "peak_bytes",
    "peak_phase",
    "peak_breakdown",
    "param_bytes",
    "grad_bytes",
    "optimizer_state_bytes",
    "activation_bytes",
    "scenario",
    "baseline",
    "change_bytes",
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["estimate", *args])


def _json(*args: str) -> dict:
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_has_the_profile_keys_the_scenario_and_the_change(saved: Path) -> None:
    data = _json(str(saved), "--batch-size", "8", "--optimizer", "sgd")
    assert ESTIMATE_KEYS <= set(data)
    assert data["scenario"]["batch_size"] == 8 and data["scenario"]["optimizer"] == "sgd"
    assert data["optimizer_state_bytes"] == 0
    assert data["change_bytes"] == data["peak_bytes"] - data["baseline"]["peak_bytes"]
    assert sum(data["peak_breakdown"].values()) == data["peak_bytes"]


def test_no_change_reproduces_the_profiled_peak(saved: Path) -> None:
    profile = json.loads(saved.read_text())
    data = _json(str(saved))
    assert data["peak_bytes"] == profile["peak_bytes"]
    assert data["change_bytes"] == 0


def test_table_names_the_scenario_and_the_baseline(saved: Path) -> None:
    result = invoke(str(saved), "-b", "4", "--precision", "bf16")
    assert result.exit_code == 0, result.stderr
    assert "batch 4, bf16" in result.stdout
    assert "profiled (batch 2)" in result.stdout
    assert "Alive at the estimated peak" in result.stdout


@pytest.fixture(scope="module")
def saved_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stack of four MLP blocks profiled at batch 2: unlike the tiny MLP (whose single layers save
    nothing when checkpointed), its blocks keep hidden activations that checkpointing drops."""
    path = tmp_path_factory.mktemp("blocks") / "blocks.json"
    result = CliRunner().invoke(
        app, ["profile", str(MODELS_DIR / "block_stack.py"), "-b", "2", "--device", "cpu", "-o", str(path)]
    )
    assert result.exit_code == 0, result.stderr
    return path


def test_auto_checkpoint_prints_the_modules_to_wrap(saved_blocks: Path) -> None:
    data = _json(str(saved_blocks), "--checkpoint", "auto", "-b", "256")
    assert data["scenario"]["checkpoint"] == ["auto"]
    assert data["checkpoint"], "auto picked nothing"
    assert set(data["checkpoint"]) <= {"0", "1", "2", "3"}  # whole blocks, not their single layers
    assert data["peak_bytes"] < _json(str(saved_blocks), "-b", "256")["peak_bytes"]
    result = invoke(str(saved_blocks), "--checkpoint", "auto", "-b", "256")
    assert result.exit_code == 0, result.stderr
    assert f"Checkpointed modules: {', '.join(data['checkpoint'])}" in result.stdout
    assert "torch.utils.checkpoint.checkpoint(module" in result.stdout


def test_model_file_is_profiled_first() -> None:
    data = _json(TINY, "--device", "cpu", "--trace-batch-size", "2", "-b", "4")
    assert data["baseline"]["batch_size"] == 2
    assert data["batch_size"] == 4


def test_output_file(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "estimate.json"
    result = invoke(str(saved), "-b", "4", "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["batch_size"] == 4
    assert "wrote json estimate" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "fp8"], "unknown precision"),
        (["--checkpoint", "no.such.module"], "no module named"),
        (["--frozen", "nope"], "no module named"),
        (["--prune", "1.5"], "sparsity"),
        (["--prune", "0.5:diagonal"], "unknown pruning kind"),
        (["--precision", "int8"], "inference"),
        (["--seq-len", "64"], "needs the model file"),
        (["--checkpoint", "auto,fc1"], "cannot be combined"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(saved: Path, args: list[str], message: str) -> None:
    result = invoke(str(saved), *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_profile_file(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_seq_len_without_support_in_the_model_file() -> None:
    result = invoke(TINY, "--device", "cpu", "--seq-len", "16")
    assert result.exit_code == 2
    assert "takes no seq_len" in result.stderr


@pytest.mark.slow
def test_seq_len_is_set_against_the_model_file_as_it_is() -> None:
    """The baseline column is the file traced as it is, the estimate the asked sequence length: each agrees
    with its own independent profile run, and the change is their difference."""
    seq = str(MODELS_DIR / "tiny_seq.py")
    data = _json(seq, "--device", "cpu", "--seq-len", "128", "--trace-batch-size", "2")

    def peak(*args: str) -> int:
        result = CliRunner().invoke(app, ["profile", seq, "-b", "2", "--device", "cpu", "-f", "json", *args])
        assert result.exit_code == 0, result.stderr
        return int(json.loads(result.stdout)["peak_bytes"])

    as_is, longer = peak("--no-scaling"), peak("--no-scaling", "--seq-len", "128")
    assert longer > as_is
    assert data["baseline"]["peak_bytes"] == as_is
    assert data["baseline"]["seq_len"] is None
    assert data["peak_bytes"] == longer
    assert data["change_bytes"] == longer - as_is
    assert data["scenario"]["seq_len"] == 128
    assert data["scenario_text"] == "seq 128"  # the report's header, not "as profiled"


@pytest.mark.parametrize("columns", [80, 200])
def test_tables_do_not_wrap_rows(saved: Path, columns: int) -> None:
    """Where the long category name does not fit, a short one takes its place instead of a row wrapping."""
    result = CliRunner().invoke(app, ["estimate", str(saved), "-b", "64"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for title in ("Against the profiled run", "Alive at the estimated peak"):
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        body = next(i for i in range(start, len(lines)) if lines[i].startswith("┡"))
        end = next(i for i in range(body, len(lines)) if lines[i].startswith("└"))
        for row in lines[body + 1 : end]:
            assert max(len(line) for line in lines[start:end]) <= columns
            assert row.strip("│ ").split("│")[0].strip(), f"a wrapped row at {columns} columns: {row!r}"
    if columns == 200:
        assert "activations (saved for backward)" in result.stdout  # the long name where there is room

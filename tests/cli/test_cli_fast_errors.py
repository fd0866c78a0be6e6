"""Simple mistakes are refused before torch is imported (importing torch takes seconds on a cold machine).

Each command line runs in one fresh interpreter, one after the other; after each, the test records the
exit code, the stderr line and whether ``torch`` is in ``sys.modules`` — a property, not a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memadvise.capture.leaks import MIN_LEAK_STEPS
from memadvise.capture.training import TRACED_PRECISIONS
from memadvise.cli import profile_cmd

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "sample_models" / "mlp.py")

MISTAKES: dict[str, list[str]] = {
    "missing file": ["profile", "no_such_model.py"],
    "Hub name not in the cache, offline": ["profile", "no-such-org/no-such-model", "--fake"],
    "folder": ["profile", str(ROOT / "sample_models")],
    "missing file (estimate)": ["estimate", "no_such_model.py", "-b", "4"],
    "missing file (plan)": ["plan", "no_such_model.py", "--gpu", "24GB"],
    "cuda without a GPU": ["profile", MLP, "--device", "cuda"],
    "cuda without a GPU (estimate)": ["estimate", MLP, "--device", "cuda"],
    "--fake with --device cpu": ["profile", MLP, "--fake", "--device", "cpu"],
    "--tree with html": ["profile", MLP, "--tree", "-o", "report.html"],
    "--table without csv": ["profile", MLP, "--table", "timeline"],
    "--steps 2": ["profile", MLP, "--steps", "2"],
    "--health --fake": ["profile", MLP, "--health", "--fake"],
    "--precision bad": ["profile", MLP, "--precision", "fp8"],
    "--fsdp without --fake": ["profile", MLP, "--fsdp", "4"],
    "--gpu without --fake": ["profile", MLP, "--gpu", "A100-80GB"],
    "--seq-len on a profile": ["estimate", "missing.json", "--seq-len", "64"],
    "--expert-load unknown": ["profile", MLP, "--fake", "--expert-load", "busy"],
    "--expert-load skewed above 1": ["profile", MLP, "--fake", "--expert-load", "skewed:1.5"],
    "--expert-load skewed without a share": ["estimate", MLP, "--fake", "--expert-load", "skewed"],
    "--expert-load on a real trace": ["profile", MLP, "--expert-load", "worst"],
    "--expert-load on a real trace (plan)": ["plan", MLP, "--gpu", "24GB", "--expert-load", "uniform"],
}

SCRIPT = """
import json, sys
from memadvise.cli import app
results = {}
for name, args in json.loads(sys.argv[1]).items():
    code = None
    try:
        app(args, prog_name="memadvise")
    except SystemExit as exc:
        code = exc.code
    results[name] = {"code": code, "torch": "torch" in sys.modules}
    if "torch" in sys.modules:
        break  # later cases would prove nothing
print(json.dumps(results))
"""


def test_mistakes_are_refused_before_torch_is_imported(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(MISTAKES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert list(results) == list(MISTAKES), f"stopped after torch was imported: {results}"
    for (name, result), line in zip(results.items(), errors, strict=True):
        assert result == {"code": 2, "torch": False}, (name, result, line)
        assert line.startswith("memadvise: error: "), (name, line)
    assert "Hub model" in errors[1] and "HF_HUB_OFFLINE" in errors[1]
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    ("copy", "source"),
    [(profile_cmd.MIN_LEAK_STEPS, MIN_LEAK_STEPS), (profile_cmd.TRACED_PRECISIONS, TRACED_PRECISIONS)],
)
def test_early_checks_agree_with_the_tracer(copy: object, source: object) -> None:
    assert copy == source

"""How fast plans are from a saved profile, side by side with an earlier memadvise (default: the
revision before the plan's search was reworked).

Profiles the GPT-2 sample (real, CPU) and Llama-2 7B (fake, CUDA kernels) once with this checkout, saves
them as JSON, and times the same plans with both versions in one run, each in a fresh Python process
(the earlier one unpacked from git with ``git archive``): one GPU by name, one with a minimum effective
batch (gradient accumulation searched), and the catalog ranking (``--list-gpus``, one plan per GPU).
Times are CPU seconds of the process (the machine may be shared), with the scenarios the analyzer
evaluated and the ratio before/after.

    python bench/plan_speed.py [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "a56d1d8"  # the last revision with the bisection search and six replayed finalists per plan

MODELS = (
    ("gpt2", "sample_models/gpt2.py", {}),
    ("llama2_7b", "sample_models/llama2_7b.py", {"device": "meta"}),
)
RUNS = ("--gpu H100", "--gpu H100 --min-batch 512", "--list-gpus")

TIMER = """
import json, sys, time
from memadvise.model.profile import load_profile
from memadvise.planner import Goal, Pins, budget_for, rank_gpus, search
profile = load_profile(sys.argv[1])
run = sys.argv[2]
start = time.process_time()
if run == "--list-gpus":
    plans = list(rank_gpus(profile, Pins(), Goal.MAX_BATCH).plans)
else:
    pins = Pins(min_batch=512) if "min-batch" in run else Pins()
    plans = [search(profile, budget_for("H100"), pins, Goal.MAX_BATCH)]
seconds = time.process_time() - start
best = plans[-1].recommendation if run != "--list-gpus" else None
import memadvise
assert memadvise.__file__.startswith(sys.argv[3]), memadvise.__file__
print(json.dumps({"seconds": seconds, "scenarios": sum(p.scenarios_evaluated for p in plans),
                  "batch": None if best is None else best.effective_batch_size}))
"""


def timed(code_root: Path, profile: Path, run: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    out = subprocess.run(  # run from the code's folder: `python -c` puts the working folder first
        [sys.executable, "-c", TIMER, str(profile), run, str(code_root)],
        env=env,
        cwd=code_root,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision to compare with")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import memadvise

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before, "memadvise"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        print(f"before = {args.before}, after = this checkout; CPU seconds of one process each")
        print(f"{'model':10s} {'plan':28s} {'before':>8s} {'after':>8s} {'ratio':>6s} {'scenarios':>15s}")
        for name, model, options in MODELS:
            prof = memadvise.profile_file(str(ROOT / model), batch_size=1, **options)
            path = Path(tmp) / f"{name}.json"
            prof.save(path)
            for run in RUNS:
                before, after = timed(old, path, run), timed(ROOT, path, run)
                ratio = before["seconds"] / max(after["seconds"], 1e-9)
                counts = f"{before['scenarios']:.0f} -> {after['scenarios']:.0f}"
                times = f"{before['seconds']:8.2f} {after['seconds']:8.2f} {ratio:5.1f}x"
                print(f"{name:10s} {run:28s} {times} {counts:>15s}", flush=True)


if __name__ == "__main__":
    main()

"""How fast plans are from a saved profile (target: a plan over 200+ scenarios in under 3 s).

Profiles the GPT-2 sample (real, CPU) and Llama-2 7B (fake, CUDA kernels) once, saves them as JSON,
and times `memadvise plan` from the file: one GPU by name, one with a minimum effective batch
(gradient accumulation searched), and the catalog ranking (`--list-gpus`, one plan per GPU). Each
row prints the scenarios the analyzer evaluated and the wall time.

    python bench/plan_speed.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memadvise  # noqa: E402
from memadvise.model.profile import load_profile  # noqa: E402
from memadvise.planner import Goal, Pins, budget_for, search  # noqa: E402
from memadvise.planner.gpus import load_catalog  # noqa: E402

MODELS = (
    ("sample_models/gpt2.py", {}, "H100"),
    ("sample_models/llama2_7b.py", {"device": "meta"}, "H100"),
)


def main() -> None:
    print(f"{'model':10s} {'plan':34s} {'scenarios':>9s} {'seconds':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for model, options, gpu in MODELS:
            prof = memadvise.profile_file(str(ROOT / model), batch_size=1, **options)
            path = Path(tmp) / "profile.json"
            prof.save(path)
            saved = load_profile(path)
            runs = {
                f"--gpu {gpu}": [(budget_for(gpu), Pins())],
                f"--gpu {gpu} --min-batch 512": [(budget_for(gpu), Pins(min_batch=512))],
                "--list-gpus (one plan per GPU)": [(budget_for(g), Pins()) for g in load_catalog()],
            }
            for label, plans in runs.items():
                start = time.perf_counter()
                n = sum(
                    search(saved, b, p, Goal.MAX_BATCH, suggest=False).scenarios_evaluated for b, p in plans
                )
                seconds = time.perf_counter() - start
                print(f"{prof.model:10s} {label:34s} {n:9d} {seconds:8.2f}", flush=True)


if __name__ == "__main__":
    main()

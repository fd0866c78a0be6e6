"""How fast what-if estimates are from a saved profile (target: one scenario under 50 ms).

Profiles two models once (the GPT-2 sample for real, Llama-2 7B fake), saves them as JSON, then times
loading the file and one estimate per lever (median of 15 runs), and a sweep of 240 scenarios
(batch size x precision x optimizer x checkpointing), as a planner would run it.

    python bench/estimate_speed.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memadvise  # noqa: E402
from memadvise.analyzer import Precision, PruneKind, Pruning, Scenario, estimate  # noqa: E402
from memadvise.model.profile import OptimizerName, load_profile  # noqa: E402

MODELS = (("sample_models/gpt2.py", {}), ("sample_models/llama2_7b.py", {"device": "meta"}))
BLOCKS = {"gpt2": ("transformer.h.0", "transformer.h.1"), "llama2_7b": ("model.layers.0", "model.layers.1")}


def median_ms(fn, runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'model':12s} {'scenario':34s} {'median ms':>10s}")
        for model, options in MODELS:
            prof = memadvise.profile_file(str(ROOT / model), batch_size=1, **options)
            path = Path(tmp) / f"{prof.model}.json"
            prof.save(path)
            blocks = BLOCKS.get(prof.model, ())
            print(
                f"{prof.model:12s} {'load the profile (' + str(len(prof.program)) + ' blocks)':34s} "
                f"{median_ms(lambda p=path: load_profile(p), 5):10.1f}"
            )
            saved = load_profile(path)
            scenarios = {
                "as profiled": Scenario(),
                "batch 16": Scenario(batch_size=16),
                "bf16-mixed": Scenario(precision=Precision.BF16_MIXED),
                "optimizer sgd-momentum": Scenario(optimizer=OptimizerName.SGD_MOMENTUM),
                "checkpoint 2 blocks": Scenario(checkpoint=blocks),
                "checkpoint auto": Scenario(checkpoint=("auto",)),
                "grad-accum 4": Scenario(grad_accum=4),
                "prune 50% structured": Scenario(prune=Pruning(0.5, PruneKind.STRUCTURED)),
                "batch 16, bf16-mixed, adamw-8bit": Scenario(
                    batch_size=16, precision=Precision.BF16_MIXED, optimizer=OptimizerName.ADAMW_8BIT
                ),
            }
            for label, scenario in scenarios.items():
                try:
                    ms = median_ms(lambda s=scenario, p=saved: estimate(p, s))
                except memadvise.UsageError as exc:
                    print(f"{prof.model:12s} {label:34s} {'n/a':>10s}  ({exc})")
                    continue
                print(f"{prof.model:12s} {label:34s} {ms:10.1f}")
            sweep = [
                Scenario(batch_size=b, precision=p, optimizer=o, checkpoint=c)
                for b, p, o, c in itertools.product(
                    (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                    (Precision.FP32, Precision.BF16_MIXED, Precision.BF16),
                    (
                        OptimizerName.ADAMW,
                        OptimizerName.SGD_MOMENTUM,
                        OptimizerName.ADAMW_8BIT,
                        OptimizerName.SGD,
                    ),
                    ((), blocks),
                )
            ]
            start = time.perf_counter()
            for scenario in sweep:
                estimate(saved, scenario)
            seconds = time.perf_counter() - start
            print(
                f"{prof.model:12s} {f'sweep of {len(sweep)} scenarios':34s} {seconds * 1000:10.0f}"
                f"  ({seconds / len(sweep) * 1000:.1f} ms each)"
            )


if __name__ == "__main__":
    main()

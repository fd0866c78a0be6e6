"""Fake tracing of models outside the test set: the fake CPU trace against a real CPU run.

For each model file in ``bench/unseen_models`` (torchvision, timm, transformers and plain torch.nn
models, tiny configs with random weights) and each mode, this measures the real run's allocator peak
independently (``tests/groundtruth.py``), memadvise's real CPU profile and its fake CPU profile
(``--fake --target-device cpu``), and prints each profile's error against the real run. One thread,
as the accuracy tests use (oneDNN sizes some scratch buffers by thread count).

    python bench/fake_unseen.py            # every model
    python bench/fake_unseen.py convnext   # models whose file name contains "convnext"
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = sorted((ROOT / "bench" / "unseen_models").glob("*.py"))


def main(patterns: list[str]) -> None:
    import memadvise
    from tests import groundtruth

    torch.set_num_threads(1)
    print(f"{'model':<22} {'mode':<9} {'truth MB':>9} {'real':>8} {'fake':>8}  fake notes")
    for path in MODELS:
        if patterns and not any(p in path.stem for p in patterns):
            continue
        batch = {"nn_word_lm": 20}.get(path.stem, 2 if path.stem.startswith(("tv_", "timm_convnext_")) else 4)
        for mode in ("train", "inference"):
            started = time.perf_counter()
            truth = groundtruth.measure_peak(path, batch, mode=mode, optimizer="adamw").peak_bytes
            options = {"batch_size": batch, "mode": mode, "optimizer": "adamw", "scaling": False}
            fake = {"device": "meta", "target_device": "cpu"}
            cells = []
            notes = ""
            for kind in ("real", "fake"):
                try:
                    if kind == "fake":
                        prof = memadvise.profile_file(str(path), **fake, **options)
                        notes = "; ".join(a for a in prof.assumptions if "assum" in a or "unknown" in a)
                    else:
                        prof = memadvise.profile_file(str(path), device="cpu", **options)
                    cells.append(f"{100 * (prof.peak_bytes - truth) / truth:+7.2f}%")
                except Exception as exc:  # noqa: BLE001 - a failure is a result here
                    cells.append(" failed ")
                    if kind == "fake":
                        notes = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
            seconds = time.perf_counter() - started
            print(f"{path.stem:<22} {mode:<9} {truth / 1e6:>9.2f} {cells[0]:>8} {cells[1]:>8}  "
                  f"{notes[:140]} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

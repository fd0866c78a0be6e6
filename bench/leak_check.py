"""What ``--steps 5`` costs and finds: every sample model traced for 2 and for 5 steps, side by side.

For each model file (sample_models/*.py and tests/zoo/*.py by default, fake-only ones skipped):
  * 2 steps  — the wall time of the default trace (``profile_file``, batch 2, CPU);
  * 5 steps  — the same with ``steps=5`` (the leak scan, plus the source pass when a leak is found);
  * leak     — the bytes per step reported (0 for these clean loops) and the peak check: the peak of the
    5-step trace must equal the 2-step peak byte for byte.
The planted leaks of tests/leaks/models/ are measured too, against the bytes each plants.

    python bench/leak_check.py
    python bench/leak_check.py sample_models/gpt2.py --batch-size 4
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memadvise  # noqa: E402

PLANTED = {  # model file → bytes planted per step at batch size B
    "tests/leaks/models/loss_history.py": lambda b: b * 1024 * 4 + 4,
    "tests/leaks/models/activation_cache.py": lambda b: b * 512 * 4,
}


def timed(path: str, batch: int, steps: int) -> tuple[float, memadvise.Profile]:
    start = time.perf_counter()
    prof = memadvise.profile_file(path, batch_size=batch, steps=steps, device="cpu")
    return time.perf_counter() - start, prof


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help="model files (default: sample_models/*.py tests/zoo/*.py)")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    models = args.models or [
        path
        for path in sorted(glob.glob(str(ROOT / "sample_models/*.py")))
        + sorted(glob.glob(str(ROOT / "tests/zoo/*.py")))
        if not Path(path).name.startswith("_") and "FAKE_ONLY = True" not in Path(path).read_text()
    ]
    models += [str(ROOT / p) for p in PLANTED if not args.models]
    console = Console()
    table = Table(title=f"--steps 5 against the default 2 steps (batch {args.batch_size}, CPU)")
    for column in ("model", "2 steps", "5 steps", "ratio", "leak / step", "planted", "same peak"):
        table.add_column(column, justify="left" if column == "model" else "right")
    timed(models[0], args.batch_size, 2)  # warm-up: the profiler's first start is slow
    for path in models:
        console.print(f"[dim]measuring {path}…[/dim]")
        two_s, two = timed(path, args.batch_size, 2)
        five_s, five = timed(path, args.batch_size, 5)
        rel = str(Path(path).resolve().relative_to(ROOT))
        planted = PLANTED.get(rel)
        table.add_row(
            five.model,
            f"{two_s * 1000:.0f} ms",
            f"{five_s * 1000:.0f} ms",
            f"{five_s / two_s:.2f}x",
            f"{five.leak_bytes_per_step:,} B",
            f"{planted(args.batch_size):,} B" if planted else "-",
            "yes" if five.peak_bytes == two.peak_bytes else "NO",
        )
    console.print(table)


if __name__ == "__main__":
    main()

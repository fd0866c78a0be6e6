"""What profiling costs: memadvise's trace of a model against one plain training step, side by side.

For each model file, in one process and one run:
  * plain step  — the median wall time of 3 steady-state training steps (after one warm-up step, so the
    optimizer state exists), run by the same step code the tracer uses, with no hooks or profiler;
  * profile     — the wall time of ``memadvise.profile_model`` on the same model and batch: it traces two
    steps (the peak is taken over the first two, so optimizer state is included) and builds the report.
  * health      — the same profile with ``health=True`` (``--health``); ``health extra`` is its extra time
    over the plain profile (target: under 30%). Both profiles run twice, interleaved; the faster of each
    pair is kept to damp noise.
The ratio profile / plain step is the figure to watch (target: at most 3x). Import and model-building
time are excluded from both. A model file's ``train_step()`` is used for the plain step and the traces.

    python bench/overhead.py                      # sample_models/*.py and tests/zoo/*.py, batch 2
    python bench/overhead.py sample_models/gpt2.py --batch-size 8 --csv overhead.csv
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memadvise  # noqa: E402
from memadvise.capture.loader import load_model_file  # noqa: E402
from memadvise.capture.training import make_optimizer, run_steps  # noqa: E402


def measure(path: str, batch_size: int, repeats: int = 3) -> dict[str, object]:
    spec = load_model_file(path)
    torch.manual_seed(0)
    model = spec.build()
    inputs = spec.inputs(batch_size)
    optimizer = make_optimizer("adamw", model.parameters())
    step = {"optimizer": optimizer, "loss_fn": spec.loss_fn, "train_step": spec.train_step}
    run_steps(model, inputs, steps=1, **step)  # type: ignore[arg-type]  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(model, inputs, steps=1, **step)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    plain = statistics.median(times)
    del optimizer, step
    traced: list[float] = []
    checked: list[float] = []
    for _ in range(2):
        for health, into in ((False, traced), (True, checked)):
            start = time.perf_counter()
            prof = memadvise.profile_model(
                model,
                inputs,
                loss_fn=spec.loss_fn,
                train_step=spec.train_step,
                name=spec.name,
                batch_size=batch_size,
                health=health,
            )
            into.append(time.perf_counter() - start)
    return {
        "model": spec.name,
        "plain_step_s": plain,
        "profile_s": min(traced),
        "ratio": min(traced) / plain,
        "health_s": min(checked),
        "health_extra": min(checked) / min(traced) - 1,
        "peak_bytes": prof.peak_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help="model files (default: sample_models/*.py tests/zoo/*.py)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--csv", help="also write the rows to this CSV file")
    args = parser.parse_args()
    models = args.models or [
        path
        for path in sorted(glob.glob(str(ROOT / "sample_models/*.py")))
        + sorted(glob.glob(str(ROOT / "tests/zoo/*.py")))
        if not Path(path).name.startswith("_") and "FAKE_ONLY = True" not in Path(path).read_text()
    ]
    console = Console()
    rows = []
    for path in models:
        console.print(f"[dim]measuring {path}…[/dim]")
        rows.append(measure(path, args.batch_size))
    table = Table(
        title=f"Profiling cost vs one plain training step (batch {args.batch_size}, "
        f"torch {torch.__version__})"
    )
    for column in ("model", "plain step", "profile", "ratio", "with --health", "health extra"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(
            str(row["model"]),
            f"{row['plain_step_s'] * 1000:.1f} ms",
            f"{row['profile_s'] * 1000:.1f} ms",
            f"{row['ratio']:.2f}x",
            f"{row['health_s'] * 1000:.1f} ms",
            f"{100 * row['health_extra']:+.0f}%",  # type: ignore[operator]
        )
    ratios = [float(r["ratio"]) for r in rows]  # type: ignore[arg-type]
    console.print(table)
    console.print(
        f"median ratio {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x (target: at most 3x)"
    )
    extras = [float(r["health_extra"]) for r in rows]  # type: ignore[arg-type]
    console.print(
        f"--health extra time: median {100 * statistics.median(extras):+.0f}%, "
        f"worst {100 * max(extras):+.0f}% (target: under 30%)"
    )
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()

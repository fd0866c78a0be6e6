"""memadvise against other ways of predicting a model's peak memory, each checked against the measured peak.

For every model file (sample_models/*.py and tests/zoo/*.py, without fake-only files), at the two batch
sizes in its ``BATCH_SIZES`` (default (2, 4)), in train (AdamW, two steps) and inference (two ``eval()``
forwards under ``no_grad``):

  * measured      — the real peak of those steps on this machine: on CPU, the running sum of
    ``torch.profiler``'s allocator events (tests/groundtruth.py, which shares no code with memadvise);
    with a GPU, ``torch.cuda.max_memory_allocated`` over the same steps, less what was allocated before
    the model was built;
  * profile       — ``memadvise.profile_file`` on the same device (a real trace of the two steps);
  * profile fake  — ``memadvise.profile_file(device="meta", target_device=<that device>)``;
    both columns trace without the second, batch-scaling trace (``scaling=False``: the peak is the same),
    which the estimate column includes;
  * estimate      — memadvise's estimate extrapolated from a batch-1 profile: a column kept for
    ``memadvise.analyzer.estimate`` (or ``memadvise.estimate``), called as
    ``estimate(batch_1_profile, batch_size=N)`` and returning bytes or an object with ``peak_bytes``;
    "n/a (not available)" while neither exists;
  * torchinfo     — ``torchinfo.summary(model, input_data=..., mode="train"|"eval")``'s "Estimated Total
    Size": input + forward/backward pass + parameter bytes (its ``total_input``, ``total_output_bytes``
    and ``total_param_bytes``), the same figure for both modes;
  * accelerate    — Hugging Face accelerate's ``estimate-memory`` rule, computed here from its published
    method (accelerate is not imported): the size of the parameters and buffers in their dtype ("Total
    Size", used for inference) and, for training with Adam in float32, 4 × that size (model + gradients
    + two optimizer moments, "Training using Adam");
  * 16 B/param    — the ZeRO paper's accounting for mixed-precision Adam training: 16 bytes per
    parameter (2 + 2 for fp16 weights and gradients, 12 for the fp32 master weights and two moments);
    a training rule, so not applied to inference;
  * MemTracker    — ``torch.distributed._tools.mem_tracker.MemTracker`` tracking the same two steps
    (``track_external(model, optimizer, inputs)``), its peak snapshot's total for the device.

Errors are signed: (predicted - measured) / measured; "exact" when the bytes are equal. Wall times run
from a built model file to the number: building the model and its batch (on the meta device for the
fake trace and for the parameter-count rules, as accelerate does) plus the tool's own work, divided by
one plain steady-state training step of the same model and batch (the median of 3 steps after a
warm-up step, as bench/overhead.py). Everything runs in this process with one intra-op thread, as the
accuracy tests do (some CPU kernels size scratch buffers by thread count).

    python bench/compare.py                                        # everything, writes bench/results/
    python bench/compare.py --models sample_models/mlp.py --batch-sizes 4 --out-dir /tmp/compare

Writes compare.csv (one row per case, bytes, errors, seconds) and compare.md (the tables README.md shows)
to --out-dir (default bench/results).
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime as dt
import gc
import importlib
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils._pytree import tree_map_only

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import groundtruth  # noqa: E402

import memadvise  # noqa: E402
from memadvise.capture.loader import ModelSpec, load_model_file  # noqa: E402
from memadvise.capture.training import StepFailed, make_optimizer, run_steps  # noqa: E402

MODES = ("train", "inference")
OPTIMIZER = "adamw"
DEFAULT_BATCH_SIZES = (2, 4)
MODEL_DIRS = (ROOT / "sample_models", ROOT / "tests" / "zoo")
NOT_AVAILABLE = "n/a (not available)"


@dataclass(frozen=True)
class Tool:
    key: str  # CSV column prefix
    title: str  # table heading


TOOLS = (
    Tool("profile", "memadvise profile"),
    Tool("fake", "memadvise profile (fake)"),
    Tool("estimate", "memadvise estimate"),
    Tool("torchinfo", "torchinfo"),
    Tool("accelerate", "accelerate rule"),
    Tool("zero16", "16 B/param"),
    Tool("memtracker", "MemTracker"),
)


@dataclass
class Outcome:
    """What one tool said about one case: bytes and seconds, or a note saying why there are none."""

    nbytes: int | None = None
    seconds: float | None = None
    note: str = ""


@dataclass
class Case:
    label: str
    path: Path
    mode: str
    batch: int
    measured: int = 0
    plain_step_s: float = 0.0
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def error(self, key: str) -> float | None:
        nbytes = self.outcomes[key].nbytes
        return None if nbytes is None else (nbytes - self.measured) / self.measured

    def ratio(self, key: str) -> float | None:
        seconds = self.outcomes[key].seconds
        return None if seconds is None or self.plain_step_s <= 0 else seconds / self.plain_step_s


# --------------------------------------------------------------------------- model files


def model_files() -> list[Path]:
    """Runnable model files: samples first, then the test zoo; no ``_*.py``, no ``FAKE_ONLY = True``."""
    return [
        p
        for d in MODEL_DIRS
        for p in sorted(d.glob("*.py"))
        if not p.name.startswith("_") and file_batch_sizes(p)
    ]


def file_batch_sizes(path: Path) -> tuple[int, ...]:
    """``BATCH_SIZES`` of a model file, read without importing it; () for ``FAKE_ONLY = True`` files."""
    tree = ast.parse(path.read_text(), filename=str(path))
    sizes = DEFAULT_BATCH_SIZES
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if "FAKE_ONLY" in names and ast.literal_eval(node.value):
            return ()
        if "BATCH_SIZES" in names:
            sizes = tuple(ast.literal_eval(node.value))
    return sizes


def label(path: Path) -> str:
    """``sample_models/gpt2`` or ``zoo/gpt2``."""
    return f"{path.parent.name}/{path.stem}"


# --------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def to_device(value: Any, device: torch.device) -> Any:
    return tree_map_only(torch.Tensor, lambda t: t.to(device), value)


def build(spec: ModelSpec, batch: int, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The model and its batch, built as the profiler and the ground truth build them."""
    torch.manual_seed(0)
    if device.type == "meta":
        with torch.device("meta"):
            model = spec.build()
            inputs = spec.inputs(batch)
        return model, inputs
    return spec.build().to(device), to_device(spec.inputs(batch), device)


def failed(exc: BaseException) -> Outcome:
    """ "fails: <exception type>", naming the model's own exception rather than memadvise's wrapper."""
    if isinstance(exc, StepFailed) and exc.__cause__ is not None:
        exc = exc.__cause__
    return Outcome(note=f"fails: {type(exc).__name__}")


def timed(device: torch.device, fn: Callable[[], int | Outcome]) -> Outcome:
    """Run ``fn`` (bytes, or an Outcome for "not applicable"), timing it; an exception becomes "fails: …"."""
    gc.collect()
    sync(device)
    start = time.perf_counter()
    try:
        result = fn()
        sync(device)
    except Exception as exc:  # every failure is a finding to report, not to hide
        return failed(exc)
    seconds = time.perf_counter() - start
    if isinstance(result, Outcome):
        return result
    return Outcome(nbytes=int(result), seconds=seconds)


def unique_tensors(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


# --------------------------------------------------------------------------- measurements


def measured_peak(path: Path, batch: int, mode: str, device: torch.device) -> int:
    """The real peak: profiler allocator events on CPU, ``max_memory_allocated`` on CUDA."""
    if device.type == "cpu":
        return groundtruth.measure_peak(path, batch, mode=mode, optimizer=OPTIMIZER).peak_bytes
    module = groundtruth.load_model_file(path)
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    model = module.build_model().to(device)
    inputs = to_device(module.example_inputs(batch), device)
    loss_fn = getattr(module, "loss_fn", None)
    if mode == "train":
        model.train()
        opt = groundtruth.make_optimizer(OPTIMIZER, model.parameters())
        for _ in range(2):
            out = groundtruth.call_model(model, inputs)
            loss = loss_fn(out, inputs) if loss_fn is not None else groundtruth.default_loss(out)
            loss.backward()
            del out, loss
            if opt is not None:
                opt.step()
                opt.zero_grad(set_to_none=True)
        del opt
    else:
        model.eval()
        with torch.no_grad():
            for _ in range(2):
                out = groundtruth.call_model(model, inputs)
                del out
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del model, inputs
    return peak


def plain_step_seconds(spec: ModelSpec, batch: int, device: torch.device, repeats: int = 3) -> float:
    """Median of ``repeats`` steady-state training steps (after a warm-up step), as bench/overhead.py."""
    model, inputs = build(spec, batch, device)
    optimizer = make_optimizer(OPTIMIZER, model.parameters())
    run_steps(model, inputs, optimizer=optimizer, loss_fn=spec.loss_fn, steps=1)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run_steps(model, inputs, optimizer=optimizer, loss_fn=spec.loss_fn, steps=1)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def find_estimator() -> Callable[..., Any] | None:
    """memadvise's estimate function, where this version has one (``memadvise.analyzer`` or top level)."""
    owners: list[Any] = []
    try:
        owners.append(importlib.import_module("memadvise.analyzer"))
    except ModuleNotFoundError as exc:
        if exc.name not in ("memadvise.analyzer", "memadvise"):
            raise
    owners.append(memadvise)
    for owner in owners:
        fn = getattr(owner, "estimate", None)
        if callable(fn):
            return fn
    return None


def memadvise_estimate(
    estimator: Callable[..., Any] | None, path: Path, batch: int, mode: str, device: torch.device
) -> Outcome:
    """Column hook: the estimate extrapolated from a batch-1 profile, or "n/a" without an estimator."""
    if estimator is None:
        return Outcome(note=NOT_AVAILABLE)

    def run() -> int:
        base = memadvise.profile_file(
            str(path), batch_size=1, mode=mode, optimizer=OPTIMIZER, device=device.type
        )
        result = estimator(base, batch_size=batch)
        return int(getattr(result, "peak_bytes", result))

    return timed(device, run)


def torchinfo_total(spec: ModelSpec, batch: int, mode: str, device: torch.device) -> int:
    """torchinfo's "Estimated Total Size", from its ModelStatistics fields rather than its text."""
    import torchinfo

    model, inputs = build(spec, batch, device)
    if isinstance(inputs, dict):
        data: Any = inputs
    elif isinstance(inputs, (tuple, list)):
        data = list(inputs)
    else:
        data = [inputs]
    stats = torchinfo.summary(
        model, input_data=data, mode="train" if mode == "train" else "eval", device=device, verbose=0
    )
    return int(stats.total_input + stats.total_output_bytes + stats.total_param_bytes)


def accelerate_rule(spec: ModelSpec, batch: int, mode: str) -> int:
    """accelerate estimate-memory: parameters and buffers in their dtype; x4 for Adam training (fp32)."""
    model, _ = build(spec, batch, torch.device("meta"))
    tensors = unique_tensors([*model.parameters(), *model.buffers()])
    total = sum(t.numel() * t.element_size() for t in tensors)
    return 4 * total if mode == "train" else total


def zero_rule(spec: ModelSpec, batch: int, mode: str) -> int | Outcome:
    """ZeRO's mixed-precision Adam accounting: 16 bytes per parameter; a training rule only."""
    if mode != "train":
        return Outcome(note="n/a (training rule)")
    model, _ = build(spec, batch, torch.device("meta"))
    return 16 * sum(p.numel() for p in unique_tensors(model.parameters()))


def memtracker_peak(spec: ModelSpec, batch: int, mode: str, device: torch.device) -> int:
    """PyTorch's MemTracker over the same two steps; the peak snapshot's total for ``device``."""
    from torch.distributed._tools.mem_tracker import MemTracker

    model, inputs = build(spec, batch, device)
    optimizer = make_optimizer(OPTIMIZER, model.parameters()) if mode == "train" else None
    tracker = MemTracker()
    tracker.track_external(model, optimizer, inputs)
    with tracker:
        for _ in range(2):  # its module statistics must be reset between iterations; the peak is kept
            run_steps(model, inputs, mode=mode, optimizer=optimizer, loss_fn=spec.loss_fn, steps=1)
            tracker.reset_mod_stats()
    snapshot = tracker.get_tracker_snapshot("peak")
    totals = [snap["Total"] for dev, snap in snapshot.items() if torch.device(dev).type == device.type]
    if not totals:
        raise RuntimeError(f"MemTracker recorded nothing on {device.type}")
    return int(max(totals))


def measure_case(case: Case, spec: ModelSpec, device: torch.device, estimator: Any) -> None:
    path, batch, mode = case.path, case.batch, case.mode
    case.measured = measured_peak(path, batch, mode, device)
    fake_target = "cuda" if device.type == "cuda" else "cpu"
    out = case.outcomes
    out["profile"] = timed(
        device,
        lambda: (
            memadvise.profile_file(
                str(path), batch_size=batch, mode=mode, optimizer=OPTIMIZER, device=device.type, scaling=False
            ).peak_bytes
        ),
    )
    out["fake"] = timed(
        device,
        lambda: (
            memadvise.profile_file(
                str(path),
                batch_size=batch,
                mode=mode,
                optimizer=OPTIMIZER,
                device="meta",
                target_device=fake_target,
                scaling=False,
            ).peak_bytes
        ),
    )
    out["estimate"] = memadvise_estimate(estimator, path, batch, mode, device)
    try:
        import torchinfo  # noqa: F401

        out["torchinfo"] = timed(device, lambda: torchinfo_total(spec, batch, mode, device))
    except ImportError:
        out["torchinfo"] = Outcome(note="n/a (pip install torchinfo)")
    out["accelerate"] = timed(device, lambda: accelerate_rule(spec, batch, mode))
    out["zero16"] = timed(device, lambda: zero_rule(spec, batch, mode))
    out["memtracker"] = timed(device, lambda: memtracker_peak(spec, batch, mode, device))


# --------------------------------------------------------------------------- formatting


def fmt_error(case: Case, key: str) -> str:
    outcome = case.outcomes[key]
    if outcome.nbytes is None:
        return outcome.note
    if outcome.nbytes == case.measured:
        return "exact"
    err = 100 * (outcome.nbytes - case.measured) / case.measured
    if abs(err) < 0.001:  # a few bytes: say how many
        text = f"{outcome.nbytes - case.measured:+,} B"
    else:
        text = f"{err:+.3f}%" if abs(err) < 1 else f"{err:+.1f}%"
    return text.replace("-", "−")


def fmt_ratio(case: Case, key: str) -> str:
    ratio = case.ratio(key)
    if ratio is None:
        return case.outcomes[key].note or "—"
    return "<0.01×" if ratio < 0.01 else f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.0f}×"


def fmt_mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def summary_rows(cases: list[Case]) -> list[list[str]]:
    rows = []
    for tool in TOOLS:
        errors = [abs(e) for c in cases if (e := c.error(tool.key)) is not None]
        ratios = [r for c in cases if (r := c.ratio(tool.key)) is not None]
        notes = sorted({c.outcomes[tool.key].note for c in cases if c.outcomes[tool.key].nbytes is None})
        if not errors:
            rows.append([tool.title, f"0 of {len(cases)}", "—", "—", "—", "—", "; ".join(notes)])
            continue
        rows.append(
            [
                tool.title,
                f"{len(errors)} of {len(cases)}",
                f"{100 * statistics.median(errors):.1f}%",
                f"{100 * max(errors):.1f}%",
                f"{sum(e <= 0.05 for e in errors)} of {len(errors)}",
                f"{statistics.median(ratios):.2f}×" if ratios else "—",
                "; ".join(notes),
            ]
        )
    return rows


SUMMARY_HEADER = [
    "estimator",
    "cases",
    "median |error|",
    "worst |error|",
    "within 5%",
    "median time / step",
    "no number",
]


def case_rows(cases: list[Case], cell: Callable[[Case, str], str], measured: bool) -> list[list[str]]:
    rows = []
    for c in cases:
        first = [c.label, c.mode, str(c.batch)] + ([fmt_mib(c.measured)] if measured else [])
        rows.append(first + [cell(c, t.key) for t in TOOLS])
    return rows


def header_line(device: torch.device, runtime_s: float, n_cases: int) -> str:
    if device.type == "cuda":
        where = f"CUDA ({torch.cuda.get_device_name()})"
    else:
        where = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} intra-op thread)"
    command = " ".join(["python bench/compare.py", *sys.argv[1:]])
    return (
        f"Measured {dt.date.today().isoformat()} with torch {torch.__version__} on {where}, "
        f"Python {platform.python_version()}: {n_cases} cases in {runtime_s / 60:.1f} min (`{command}`)."
    )


def rules_text(device: torch.device) -> list[str]:
    truth = (
        "the running sum of `torch.profiler` allocator events (tests/groundtruth.py)"
        if device.type == "cpu"
        else "`torch.cuda.max_memory_allocated` less what was allocated before the model was built"
    )
    return [
        f"Measured peak: {truth}, over two AdamW training steps or two inference forwards.",
        'Error: (predicted − measured) / measured, signed; "exact" when the bytes agree.',
        "accelerate rule (its `estimate-memory` method, computed here): parameters + buffers in their dtype "
        '("Total Size") for inference; for training with Adam in float32, 4 × that size '
        "(weights + gradients + two Adam moments).",
        "16 B/param: ZeRO's mixed-precision Adam accounting (2 + 2 + 12 bytes per parameter); training only.",
        'torchinfo: "Estimated Total Size" = input + forward/backward pass + parameter bytes '
        "(`summary(..., input_data=..., mode=...)`).",
        'memadvise estimate: extrapolated from a batch-1 profile; "n/a (not available)" until this '
        "version of memadvise has an `estimate` function.",
        "Time: from a model file to the number (model building included), as a multiple of one plain "
        "steady-state training step of the same model and batch.",
    ]


def md_table(header: list[str], rows: list[list[str]], left: int = 3) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    aligns = ["---" if i < left else "---:" for i in range(len(header))]
    return "\n".join([line(header), "| " + " | ".join(aligns) + " |", *(line(r) for r in rows)])


def write_markdown(path: Path, cases: list[Case], device: torch.device, runtime_s: float) -> None:
    tool_titles = [t.title for t in TOOLS]
    summary = md_table(SUMMARY_HEADER, summary_rows(cases), left=1)
    errors = md_table(["model", "mode", "batch", "measured", *tool_titles], case_rows(cases, fmt_error, True))
    times = md_table(["model", "mode", "batch", *tool_titles], case_rows(cases, fmt_ratio, False))
    parts = [
        header_line(device, runtime_s, len(cases)),
        "",
        summary,
        "",
        "Error of each prediction against the measured peak:",
        "",
        errors,
        "",
        "<details><summary>Wall time of each, as a multiple of one plain training step</summary>",
        "",
        times,
        "",
        "</details>",
        "",
        *(f"- {text}" for text in rules_text(device)),
        "",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")


def write_csv(path: Path, cases: list[Case], device: torch.device) -> None:
    columns = ["model", "path", "mode", "batch", "device", "torch", "measured_bytes", "plain_step_s"]
    for t in TOOLS:
        columns += [f"{t.key}_bytes", f"{t.key}_error", f"{t.key}_s", f"{t.key}_time_ratio", f"{t.key}_note"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for c in cases:
            row: list[Any] = [
                c.label,
                c.path.relative_to(ROOT).as_posix() if c.path.is_relative_to(ROOT) else str(c.path),
                c.mode,
                c.batch,
                device.type,
                torch.__version__,
                c.measured,
                f"{c.plain_step_s:.6f}",
            ]
            for t in TOOLS:
                o = c.outcomes[t.key]
                err, ratio = c.error(t.key), c.ratio(t.key)
                row += [
                    "" if o.nbytes is None else o.nbytes,
                    "" if err is None else f"{err:.6f}",
                    "" if o.seconds is None else f"{o.seconds:.6f}",
                    "" if ratio is None else f"{ratio:.4f}",
                    o.note,
                ]
            writer.writerow(row)


def rich_table(title: str, header: list[str], rows: list[list[str]], left: int = 3) -> Table:
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", type=Path, help="model files (default: samples and tests/zoo)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="instead of each file's BATCH_SIZES")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(1)
    # MemTracker's module tracker warns for every module that is gone before its backward hook runs.
    warnings.filterwarnings("ignore", message="Module is None", category=UserWarning)
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    paths = [p.resolve() for p in args.models] if args.models else model_files()
    estimator = find_estimator()
    cases: list[Case] = []
    for path in paths:
        spec = load_model_file(path)
        for batch in args.batch_sizes or file_batch_sizes(path) or DEFAULT_BATCH_SIZES:
            t0 = time.perf_counter()
            step_s = plain_step_seconds(spec, batch, device)
            for mode in args.modes:
                case = Case(label(path), path, mode, batch, plain_step_s=step_s)
                measure_case(case, spec, device, estimator)
                cases.append(case)
            console.print(
                f"[dim]{label(path)} batch {batch}: {time.perf_counter() - t0:.1f} s "
                f"(total {time.perf_counter() - started:.0f} s)[/dim]"
            )
    runtime = time.perf_counter() - started

    tool_titles = [t.title for t in TOOLS]
    console.print(
        rich_table(
            f"Error against the measured peak ({device.type}, torch {torch.__version__})",
            ["model", "mode", "batch", "measured", *tool_titles],
            case_rows(cases, fmt_error, True),
        )
    )
    console.print(
        rich_table(
            "Wall time, as a multiple of one plain training step",
            ["model", "mode", "batch", *tool_titles],
            case_rows(cases, fmt_ratio, False),
        )
    )
    console.print(rich_table("Summary", SUMMARY_HEADER, summary_rows(cases), left=1))
    for text in rules_text(device):
        console.print(f"[dim]- {text}[/dim]")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(args.out_dir / "compare.csv", cases, device)
    write_markdown(args.out_dir / "compare.md", cases, device, runtime)
    console.print(
        f"{len(cases)} cases in {runtime / 60:.1f} min; wrote {args.out_dir / 'compare.csv'} "
        f"and {args.out_dir / 'compare.md'}"
    )


if __name__ == "__main__":
    main()

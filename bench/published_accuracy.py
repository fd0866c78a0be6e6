"""Published GPU peak-memory measurements against memadvise's predictions (a table of signed errors).

Every record of bench/published/measurements.json (see bench/published/README.md) names a model file, the
shapes and the levers of a published GPU measurement. Each model is traced fake for a CUDA target at the
record's batch and sequence length (``memadvise profile --fake --no-scaling``; profiles are cached under the
temporary directory, keyed by the model file, the trace settings, memadvise's source and the library
versions), then ``memadvise plan`` is pinned to the record's GPU, batch, precision, checkpointing, optimizer
and accumulation, so it evaluates exactly that configuration. Like is compared with like:

- ``torch.cuda.max_memory_allocated``: the plan's ``predicted_peak_bytes``;
- ``torch.cuda.max_memory_reserved``: the plan's ``reserved_bytes`` (its caching-allocator replay);
- nvidia-smi used: ``reserved_bytes`` plus the plan's reserve (CUDA context and cuBLAS workspace);
- nvidia-smi after a first tiny tensor (a CUDA context): the plan's ``budget.context_bytes``.

Where a source also measured its own CUDA context, its nvidia-smi figures minus that context are compared
with ``reserved_bytes`` in a second table. Only memadvise's command line is used.

    python bench/published_accuracy.py [--only ID] [--out bench/results/published_accuracy.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "published" / "measurements.json"
CACHE = Path(tempfile.gettempdir()) / "memadvise-published-profiles"

ALLOCATED = "torch.cuda.max_memory_allocated"
RESERVED = "torch.cuda.max_memory_reserved"
SMI = "nvidia-smi used"
CONTEXT = "nvidia-smi used (CUDA context)"
SHORT = {ALLOCATED: "allocated", RESERVED: "reserved", SMI: "nvidia-smi", CONTEXT: "CUDA context"}


@dataclass
class Row:
    record: dict
    predicted: int | None = None  # bytes, the figure comparable with the published one
    reserved: int | None = None  # the plan's reserved_bytes
    problem: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def published(self) -> float:
        return self.record["value"] * self.record["unit_bytes"]

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else self.predicted / self.published - 1

    @property
    def derived_reserved(self) -> float | None:
        """nvidia-smi used minus the same source's measured CUDA context, in bytes."""
        context = self.record.get("published_context")
        if context is None or self.record["measures"] != SMI:
            return None
        return (self.record["value"] - context) * self.record["unit_bytes"]

    @property
    def derived_error(self) -> float | None:
        if self.derived_reserved is None or self.reserved is None:
            return None
        return self.reserved / self.derived_reserved - 1


def memadvise(*args: str) -> str:
    """Run ``python -m memadvise ARGS`` from this checkout; its stdout, or an error with its last line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "memadvise", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")
    return done.stdout


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "memadvise").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json"):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    for package in ("torch", "transformers", "torchvision"):
        try:
            digest.update(f"{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()


def profile_for(record: dict, source_digest: str) -> Path:
    """The cached fake-trace profile of the record's model at its trace settings (traced when missing)."""
    trace = dict(record["memadvise_args"]["trace"])
    lever = record["memadvise_args"]["levers"]["precision"]
    if lever in ("fp16-mixed", "bf16-mixed"):
        trace["precision"] = lever  # autocast is traced on a fake CUDA target, not estimated by rule
    trace["gpu"] = record["plan_gpu"]  # the kernels (attention, autocast) of the measured GPU
    model_file = ROOT / record["model_file"]
    target = str(model_file) + (f":{record['factory']}" if record.get("factory") else "")
    model_digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    settings = json.dumps([source_digest, model_digest, record.get("factory"), trace], sort_keys=True)
    key = hashlib.sha256(settings.encode()).hexdigest()[:20]
    path = CACHE / f"{model_file.stem}-{key}.json"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    args = [
        "profile", target, "--fake", "--target-device", "cuda", "--batch-size", str(trace["batch_size"]),
        "--precision", trace["precision"], "--optimizer", trace["optimizer"], "--mode", trace["mode"],
        "--no-scaling", "--format", "json", "--output", str(path) + ".part", "--gpu", trace["gpu"],
    ]  # fmt: skip
    if trace.get("seq_len"):
        args += ["--seq-len", str(trace["seq_len"])]
    memadvise(*args)
    os.replace(str(path) + ".part", path)
    return path


def plan_for(record: dict, profile: Path) -> dict:
    """``memadvise plan`` pinned to the record's levers and GPU: the JSON report."""
    levers = record["memadvise_args"]["levers"]
    checkpoint = levers["checkpoint"]
    if isinstance(checkpoint, list):
        checkpoint = ",".join(checkpoint)
    args = [
        "plan", str(profile), "--gpu", record["plan_gpu"], "--batch-size", str(levers["batch_size"]),
        "--precision", levers["precision"], "--checkpoint", checkpoint, "--optimizer", levers["optimizer"],
        "--grad-accum", str(levers["grad_accum"]), "--mode", record["memadvise_args"]["trace"]["mode"],
        "--format", "json",
    ]  # fmt: skip
    return json.loads(memadvise(*args))


def predict(record: dict, source_digest: str) -> Row:
    row = Row(record)
    try:
        plan = plan_for(record, profile_for(record, source_digest))
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        row.problem = f"memadvise failed: {exc}"
        return row
    option = plan.get("recommendation") or (plan.get("options") or [None])[0]
    budget = plan["budget"]
    if option is None:
        row.problem = "plan returned no option"
        return row
    row.reserved = option["reserved_bytes"]
    row.extra = {"fits": option.get("fits", True), "caveats": option.get("caveats", []), "budget": budget}
    measures = record["measures"]
    if measures == ALLOCATED:
        row.predicted = option["predicted_peak_bytes"]
    elif measures == RESERVED:
        row.predicted = option["reserved_bytes"]
    elif measures == SMI:
        row.predicted = option["reserved_bytes"] + budget["reserve_bytes"]
    elif measures == CONTEXT:
        row.predicted = budget["context_bytes"]
    else:
        row.problem = f"unknown measure {measures!r}"
    return row


def fmt(value_bytes: float | None, record: dict) -> str:
    """Bytes in the record's published unit, with as many decimals as the source printed."""
    if value_bytes is None:
        return "-"
    decimals = len(str(record["value"]).partition(".")[2])
    return f"{value_bytes / record['unit_bytes']:,.{decimals}f} {record['unit']}"


def pct(error: float | None) -> str:
    return "-" if error is None else f"{error:+.1%}"


def summary(label: str, rows: list[tuple[str, float]]) -> str:
    if not rows:
        return f"{label}: no records"
    worst_id, worst = max(rows, key=lambda item: abs(item[1]))
    median = statistics.median(abs(error) for _, error in rows)
    return f"{label} (n={len(rows)}): median |error| {median:.1%}, worst {worst:+.1%} ({worst_id})"


def summaries(rows: list[Row]) -> list[str]:
    train = [row for row in rows if row.record["mode"] == "train" and row.error is not None]
    by = {
        kind: [(row.record["id"], row.error) for row in train if row.record["measures"] == kind]
        for kind in SHORT
    }
    derived = [(row.record["id"], row.derived_error) for row in rows if row.derived_error is not None]
    context = [
        (r.record["id"], r.error) for r in rows if r.record["measures"] == CONTEXT and r.error is not None
    ]
    return [
        summary("Training, reserved memory (published max_memory_reserved)", by[RESERVED]),
        summary(
            "Training, reserved memory (max_memory_reserved, and nvidia-smi minus the source's own context)",
            by[RESERVED] + derived,  # type: ignore[operator]
        ),
        summary("Training, allocated memory (max_memory_allocated)", by[ALLOCATED]),
        summary("Training, nvidia-smi used", by[SMI]),
        summary("CUDA context (nvidia-smi after a first tensor)", context),  # type: ignore[arg-type]
    ]


def print_table(rows: list[Row]) -> None:
    head = f"{'id':40s} {'source':22s} {'measured':12s} {'published':>14s} {'predicted':>14s} {'error':>8s}"
    print(head)
    print("-" * len(head))
    for row in rows:
        r = row.record
        print(
            f"{r['id']:40s} {r['source_id']:22s} {SHORT[r['measures']]:12s} {fmt(row.published, r):>14s} "
            f"{fmt(row.predicted, r):>14s} {pct(row.error):>8s} {row.problem}"
        )
    derived = [row for row in rows if row.derived_reserved is not None]
    if derived:
        print("\nnvidia-smi minus the source's own CUDA context figure, against predicted reserved memory:")
        for row in derived:
            r = row.record
            print(
                f"{r['id']:40s} {fmt(row.derived_reserved, r):>14s} {fmt(row.reserved, r):>14s} "
                f"{pct(row.derived_error):>8s}"
            )


def markdown(rows: list[Row], elapsed: float) -> str:
    import torch

    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("transformers", "torchvision") if _installed(name)
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    lines = [
        "# Published GPU measurements against memadvise",
        "",
        f"{dt.date.today().isoformat()}; `python bench/published_accuracy.py`, {elapsed:.0f} s on this "
        f"machine's CPUs; memadvise at {commit or 'an unknown commit'}, torch {torch.__version__}, "
        f"{versions}. "
        "Data, units and what each source measured: `bench/published/README.md` and "
        "`bench/published/measurements.json`.",
        "",
        "Each model is traced fake for a CUDA target at the published batch and sequence length; "
        "`memadvise plan` is pinned to the published GPU (a catalog card of the same architecture where the "
        "catalog lacks it), precision, checkpointing, optimizer and accumulation. allocated → "
        "`predicted_peak_bytes`; reserved → `reserved_bytes`; nvidia-smi → `reserved_bytes` + context + "
        "cuBLAS workspace; CUDA context → `budget.context_bytes`. Error = predicted / published − 1.",
        "",
        "| id | source | measured | published | predicted | error |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        r = row.record
        error = pct(row.error) if not row.problem else f"{row.problem}"
        lines.append(
            f"| {r['id']} | {r['source_id']} | {SHORT[r['measures']]} | {fmt(row.published, r)} | "
            f"{fmt(row.predicted, r)} | {error} |"
        )
    derived = [row for row in rows if row.derived_reserved is not None]
    if derived:
        lines += [
            "",
            "nvidia-smi used minus the CUDA context the same source measured (`published_context`), against "
            "the predicted reserved memory:",
            "",
            "| id | published − context | predicted reserved | error |",
            "|---|---:|---:|---:|",
        ]
        for row in derived:
            r = row.record
            cells = [r["id"], fmt(row.derived_reserved, r), fmt(row.reserved, r), pct(row.derived_error)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Summary", ""]
    lines += [f"- {line}" for line in summaries(rows)]
    lines += ["", "## Sources", ""]
    seen: set[str] = set()
    for row in rows:
        source = row.record["source"]
        label = f"{source['title']} — {source['url']}"
        if label not in seen:
            seen.add(label)
            lines.append(f"- {label}")
        lines.append(f"  - `{row.record['id']}`: {source.get('section', '')}")
    return "\n".join(lines) + "\n"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="ID", help="only this record (repeatable)")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--data", type=Path, default=DATA, help="the measurements file")
    args = parser.parse_args()
    records = json.loads(args.data.read_text(encoding="utf-8"))["records"]
    if args.only:
        unknown = set(args.only) - {r["id"] for r in records}
        if unknown:
            parser.error(f"unknown record id(s): {', '.join(sorted(unknown))}")
        records = [r for r in records if r["id"] in args.only]
    started = time.perf_counter()
    digest = _source_digest()
    rows = []
    for record in records:
        row = predict(record, digest)
        rows.append(row)
        r = record
        print(
            f"{r['id']:40s} {SHORT[r['measures']]:12s} {fmt(row.published, r):>14s} "
            f"{fmt(row.predicted, r):>14s} {pct(row.error):>8s} {row.problem}",
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.perf_counter() - started
    print()
    print_table(rows)
    print()
    for line in summaries(rows):
        print(line)
    print(f"\n{len(rows)} records in {elapsed:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(rows, elapsed), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

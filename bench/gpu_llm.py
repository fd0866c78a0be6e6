"""memadvise's LLM workloads against a real CUDA GPU: LoRA fine-tuning, generation with a KV cache and
mixture-of-experts routing. One command, no network, a few minutes on one GPU.

    python bench/gpu_llm.py                 # on a machine with a CUDA GPU
    python bench/gpu_llm.py --selftest      # no GPU: runs every loop on the CPU at batch 1 (measures
                                            # nothing), to check the kit itself
    python bench/gpu_llm.py --report-only bench/results/gpu_llm_h200.json   # rewrite the report

For every case, in a fresh process each, the GPU's ``torch.cuda.max_memory_allocated()`` over the
case's work, minus what the process held before the model was built (the CUDA context and a warmed-up
cuBLAS workspace): two steps of PyTorch's tutorial training loop (AdamW over the trainable parameters,
output and loss alive through ``step()``), two forward passes without gradients, or one greedy
``model.generate(max_new_tokens=N, min_new_tokens=N, do_sample=False)``. The loops are written here,
independently of memadvise's own step code. They are compared with what a user would run:

- (a) ``memadvise profile --device cuda``: a real trace on the GPU (allocator events);
- (b) ``memadvise profile --fake --gpu <this GPU>``: the fake CUDA-target trace, made on the CPU
  (with ``--expert-load`` for the forced-routing MoE cases);
- (c) for LoRA: ``memadvise estimate BASE.json --lora 16 --lora-targets …`` from the fake trace of the
  base model's full fine-tuning; for generation: ``memadvise estimate SMALL.json -b B --new-tokens N
  --prompt-len P`` from the fake trace of a small generation (batch 2, 64-token prompt, 32 tokens).

Raw results go to ``bench/results/gpu_llm_<gpu>.json``, the report to ``gpu_llm_<gpu>.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import gc
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "bench" / "gpu_models"
RESULTS = ROOT / "bench" / "results"

# name: what runs, and how memadvise is asked about it
CASES: dict[str, dict[str, Any]] = {
    "lora-qv-fp32": {
        "file": "llama_lora.py",
        "factory": "build_lora_qv",
        "mode": "train",
        "precision": "fp32",
        "batch": 8,
        "lora": "q_proj,v_proj",
        "about": "Llama GQA 8 layers, LoRA r16 on q_proj,v_proj",
    },
    "lora-all-bf16-mixed": {
        "file": "llama_lora.py",
        "factory": "build_lora_all",
        "mode": "train",
        "precision": "bf16-mixed",
        "batch": 8,
        "lora": "all-linear",
        "about": "Llama GQA 8 layers, LoRA r16 on all-linear, autocast",
    },
    "generate-bf16": {
        "file": "llama_generate.py",
        "factory": "build_model",
        "mode": "generate",
        "precision": "bf16",
        "batch": 8,
        "new_tokens": 128,
        "prompt": 256,
        "about": "Llama GQA, 256-token prompt, 128 new tokens",
    },
    "generate-fp32": {
        "file": "llama_generate.py",
        "factory": "build_model",
        "mode": "generate",
        "precision": "fp32",
        "batch": 16,
        "new_tokens": 64,
        "prompt": 256,
        "about": "Llama GQA, 256-token prompt, 64 new tokens",
    },
    "moe-uniform-train": {
        "file": "moe_eager.py",
        "factory": "build_model",
        "mode": "train",
        "precision": "fp32",
        "batch": 32,
        "load": "uniform",
        "about": "Mixtral eager experts, balanced routing, --expert-load uniform",
    },
    "moe-worst-train": {
        "file": "moe_eager.py",
        "factory": "build_worst",
        "mode": "train",
        "precision": "fp32",
        "batch": 32,
        "load": "worst",
        "about": "Mixtral eager experts, all tokens to 2 experts, --expert-load worst",
    },
    "moe-skewed-inference": {
        "file": "moe_eager.py",
        "factory": "build_skewed",
        "mode": "inference",
        "precision": "fp32",
        "batch": 32,
        "load": "skewed:0.375",
        "about": "Mixtral eager experts, 3/8 to one expert",
    },
}
SMALL_GENERATION = {"batch": 2, "prompt": 64, "new_tokens": 32}
if os.environ.get("GPU_LLM_SELFTEST") == "1":  # --selftest: the same code paths on a CPU, smaller
    for _case in CASES.values():
        _case["batch"] = 1
        if "new_tokens" in _case:
            _case["new_tokens"], _case["prompt"] = 4, 64
    SMALL_GENERATION = {"batch": 1, "prompt": 64, "new_tokens": 2}


def _target(case: dict[str, Any], factory: str | None = None) -> str:
    return f"{MODELS / case['file']}:{factory or case['factory']}"


def _err(exc: BaseException | str) -> str:
    text = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}").strip().splitlines()
    return (text[-1] if text else "error")[:300]


# ----------------------------------------------------------------------------------------------
# On the GPU: what really happens (one fresh process per case)
# ----------------------------------------------------------------------------------------------


def measure(name: str, selftest: bool) -> dict[str, Any]:
    import torch

    case = CASES[name]
    device = "cpu" if selftest else "cuda"
    if not selftest:
        torch.zeros(1, device="cuda")
        for dtype in (torch.float32, torch.bfloat16):  # cuBLAS workspaces exist before the baseline
            a = torch.randn(64, 64, device="cuda", dtype=dtype)
            (a @ a).sum().item()
            torch.nn.functional.linear(a, a, a[0]).sum().item()
            del a
        torch.cuda.synchronize()
        gc.collect()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    mod = runpy.run_path(str(MODELS / case["file"]))
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = mod[case["factory"]]()
    pure = {"bf16": torch.bfloat16}.get(case["precision"])
    if pure is not None:
        model.to(pure)  # on the CPU: no fp32 copy is ever on the GPU
    model.to(device)
    if case["mode"] == "generate":
        inputs = mod["example_inputs"](case["batch"], case["prompt"])
    else:
        inputs = mod["example_inputs"](case["batch"])
    inputs = {k: v.to(device) for k, v in inputs.items()}
    autocast = case["precision"] == "bf16-mixed"
    if case["mode"] == "train":
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(2):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
                out = model(**inputs)
                loss = out.loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    elif case["mode"] == "inference":
        model.eval()
        with torch.no_grad():
            for _ in range(2):
                out = model(**inputs)
                del out
    else:
        model.eval()
        with torch.no_grad():
            ids = model.generate(
                **inputs,
                max_new_tokens=case["new_tokens"],
                min_new_tokens=case["new_tokens"],
                do_sample=False,
            )
        assert ids.shape[-1] == case["prompt"] + case["new_tokens"], ids.shape
    if selftest:
        return {"peak_bytes": 0, "seconds": round(time.perf_counter() - t0, 2)}
    torch.cuda.synchronize()
    return {
        "peak_bytes": int(torch.cuda.max_memory_allocated() - base),
        "seconds": round(time.perf_counter() - t0, 2),
    }


# ----------------------------------------------------------------------------------------------
# memadvise, as a user runs it (its command line, in processes of their own)
# ----------------------------------------------------------------------------------------------


def memadvise(args: list[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``memadvise ARGS``; the JSON it wrote (``-o``) or printed (``-f json``), or the error."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "memadvise", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": _err(done.stderr or done.stdout or f"exit {done.returncode}")}
    if "-o" in args:
        data = json.loads(Path(args[args.index("-o") + 1]).read_text())
    else:
        data = json.loads(done.stdout)
    return {"peak_bytes": int(data["peak_bytes"]), "seconds": round(time.perf_counter() - t0, 2)}


def _profile_args(case: dict[str, Any], target: str, out: Path, *, batch: int | None = None) -> list[str]:
    args = ["profile", target, "-b", str(batch or case["batch"]), "--mode", case["mode"], "-o", str(out)]
    if case["precision"] != "fp32":
        args += ["--precision", case["precision"]]
    if case["mode"] == "generate":
        args += ["--new-tokens", str(case["new_tokens"]), "--seq-len", str(case["prompt"])]
    return args


def real_trace(name: str, workdir: Path, selftest: bool) -> dict[str, Any]:
    """(a) memadvise's real trace on the GPU."""
    case = CASES[name]
    args = _profile_args(case, _target(case), workdir / f"{name}_real.json")
    return memadvise([*args, "--device", "cpu" if selftest else "cuda"])


def fake_trace(name: str, workdir: Path, gpu: str) -> dict[str, Any]:
    """(b) the fake CUDA-target trace, made on the CPU."""
    case = CASES[name]
    args = _profile_args(case, _target(case), workdir / f"{name}_fake.json") + ["--fake", "--gpu", gpu]
    if "load" in case:
        args += ["--expert-load", case["load"]]
    return memadvise(args)


def estimated(name: str, workdir: Path, gpu: str) -> dict[str, Any] | None:
    """(c) the what-if a user asks from a profile of something else (LoRA and generation cases)."""
    case = CASES[name]
    if "lora" in case:
        base = workdir / f"{name}_base.json"
        made = memadvise(_profile_args(case, _target(case, "build_model"), base) + ["--fake", "--gpu", gpu])
        if "error" in made:
            return made
        return memadvise(
            ["estimate", str(base), "--lora", "16", "--lora-targets", case["lora"], "-f", "json"]
        )
    if case["mode"] == "generate":
        small = workdir / f"{name}_small.json"
        small_case = {
            **case,
            "prompt": SMALL_GENERATION["prompt"],
            "new_tokens": SMALL_GENERATION["new_tokens"],
        }
        args = _profile_args(small_case, _target(case), small, batch=SMALL_GENERATION["batch"])
        made = memadvise([*args, "--fake", "--gpu", gpu])
        if "error" in made:
            return made
        return memadvise(
            [
                "estimate",
                str(small),
                "-b",
                str(case["batch"]),
                "--new-tokens",
                str(case["new_tokens"]),
                "--prompt-len",
                str(case["prompt"]),
                "-f",
                "json",
            ]
        )
    return None


# ----------------------------------------------------------------------------------------------
# Orchestration and report
# ----------------------------------------------------------------------------------------------


def _child_measure(name: str, selftest: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", name] + (
        ["--selftest"] if selftest else []
    )
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": _err(done.stderr or done.stdout or f"exit {done.returncode}")}
    return dict(json.loads(lines[-1]))


def _gpu_name(selftest: bool) -> str:
    """This GPU's name in memadvise's catalog (for ``--gpu``), as ``bench/gpu_validate.py`` finds it."""
    if selftest:
        return "H100"
    import torch

    from memadvise.planner.gpus import find_gpu

    try:
        return str(find_gpu(torch.cuda.get_device_name(0)).name)
    except Exception:  # noqa: BLE001 - not in the catalog: trace for the default GPU
        return "H100"


def run(args: argparse.Namespace) -> int:
    import torch

    selftest = args.selftest
    if selftest and os.environ.get("GPU_LLM_SELFTEST") != "1":  # the smaller cases, here and in children
        os.environ["GPU_LLM_SELFTEST"] = "1"
        return subprocess.call([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    if not selftest and not torch.cuda.is_available():
        print("gpu_llm: no CUDA GPU here; run with --selftest to check the kit on the CPU", file=sys.stderr)
        return 2
    names = [n for n in CASES if not args.cases or any(p in n for p in args.cases)]
    gpu = _gpu_name(selftest)
    device_name = "cpu (selftest)" if selftest else torch.cuda.get_device_name(0)
    raw: dict[str, Any] = {
        "gpu": device_name,
        "catalog_gpu": gpu,
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cases": {n: {"about": CASES[n]["about"]} for n in names},
    }
    slug = "".join(c for c in gpu.lower() if c.isalnum())
    out = Path(args.out) if args.out else RESULTS / f"gpu_llm_{slug}.json"
    if selftest:
        out = Path(tempfile.mkdtemp()) / out.name
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        cf.ThreadPoolExecutor(max(2, (os.cpu_count() or 2) // 2)) as pool,
    ):
        work = Path(tmp)
        cpu_jobs = {
            (n, kind): pool.submit(fn, n, work, gpu)
            for n in names
            for kind, fn in (("fake", fake_trace), ("estimate", estimated))
        }
        for n in names:  # one at a time on the GPU, while the CPU jobs run
            raw["cases"][n]["measured"] = _child_measure(n, selftest)
            raw["cases"][n]["real_cuda"] = real_trace(n, work, selftest)
            print(
                f"{n}: measured {raw['cases'][n]['measured']}  real trace {raw['cases'][n]['real_cuda']}",
                flush=True,
            )
        for (n, kind), fut in cpu_jobs.items():
            result = fut.result()
            if result is not None:
                raw["cases"][n]["fake_cuda" if kind == "fake" else "estimate"] = result
    raw["seconds"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=2) + "\n")
    out.with_suffix(".md").write_text(report(raw))
    print(report(raw))
    print(f"wrote {out} and {out.with_suffix('.md')} in {raw['seconds']} s")
    return 0


def _pct(pred: dict[str, Any] | None, truth: int | None) -> str:
    """The error against the measured peak; the prediction itself where nothing was measured."""
    if not pred:
        return "-"
    if "peak_bytes" not in pred:
        return f"failed: {pred.get('error', '?')[:60]}"
    if not truth:
        return f"{pred['peak_bytes'] / 2**20:,.1f} MiB"
    return f"{100 * (pred['peak_bytes'] - truth) / truth:+.1f}%"


def report(raw: dict[str, Any]) -> str:
    lines = [
        f"# memadvise LLM workloads on {raw['gpu']}",
        "",
        f"torch {raw['torch']}, {raw['date']}; `python bench/gpu_llm.py` ({raw.get('seconds', '?')} s). "
        "Measured: `max_memory_allocated()` of the case's work in a fresh process. Errors of memadvise's "
        "(a) real CUDA trace, (b) fake CUDA trace (made on the CPU), (c) estimate from a profile of "
        "something else (LoRA: the base model's full fine-tuning; generation: batch 2, 64-token prompt, "
        "32 tokens).",
        "",
        "| case | what | measured | (a) real trace | (b) fake trace | (c) estimate |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, c in raw["cases"].items():
        truth = (c.get("measured") or {}).get("peak_bytes")
        shown = f"{truth / 2**20:,.1f} MiB" if truth else (c.get("measured") or {}).get("error", "-")[:60]
        lines.append(
            f"| {name} | {c['about']} | {shown} | {_pct(c.get('real_cuda'), truth)} | "
            f"{_pct(c.get('fake_cuda'), truth)} | {_pct(c.get('estimate'), truth)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="only the cases whose names contain one of these")
    parser.add_argument("--selftest", action="store_true", help="run the loops on the CPU (measures nothing)")
    parser.add_argument("--out", help="raw results file (default bench/results/gpu_llm_<gpu>.json)")
    parser.add_argument("--report-only", metavar="RAW", help="rewrite the report of a raw results file")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        print(json.dumps(measure(args.job, args.selftest)))
        return 0
    if args.report_only:
        raw = json.loads(Path(args.report_only).read_text())
        Path(args.report_only).with_suffix(".md").write_text(report(raw))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""memadvise against a real CUDA GPU: one command, no network, a few minutes on one GPU.

    python bench/gpu_validate.py                       # on a machine with a CUDA GPU
    python bench/gpu_validate.py --quick               # three models, to try the kit
    python bench/gpu_validate.py --predict-only bench/results/gpu_h200.json   # no GPU: redo predictions
    python bench/gpu_validate.py --report-only bench/results/gpu_h200.json    # rewrite its report

For every case (model x train/inference x fp32 / bf16-mixed / pure bf16) it measures, in a fresh
process per case, what the GPU really used:

- ``torch.cuda.max_memory_allocated()`` and ``max_memory_reserved()`` over two steps, minus what the
  process held before the model was built (the CUDA context and a warmed-up cuBLAS workspace), for the
  tutorial loop (output and loss alive through ``step()`` and ``zero_grad()``) and for the lean loop
  (output and loss freed after ``backward()``);
- NVML's used memory of the process after the steps (what ``nvidia-smi`` shows), and the CUDA context
  (NVML's figure minus ``memory_reserved()``) before and after the model's kernels were loaded;

and compares with memadvise's figures:

- (a) ``memadvise profile --device cuda``: a real trace on the GPU (allocator events);
- (b) the fake CUDA-target trace (``--fake``, meta tensors, made on the CPU) and its reserved memory
  from memadvise's caching-allocator model;
- (c) ``memadvise estimate`` from a real CPU profile of the same model in fp32 (the precision what-if),
  and its reserved memory;
- (d) ``memadvise plan --gpu <this GPU>`` pinned to the case's levers: its reserved figure, and its
  nvidia-smi figure (reserved + CUDA context + cuBLAS workspace).

The measuring loops below are written here, independently of memadvise's own step code. The raw
results (measurements and predictions) go to ``gpu_<gpu>.json`` and a report to ``gpu_<gpu>.md``;
``--predict-only RAW.json`` keeps a file's GPU measurements and recomputes (b)-(d) with this checkout
on any machine, so the report can follow memadvise's changes without a GPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
GPU_MODELS = ROOT / "bench" / "gpu_models"
MiB = 2**20

# name: (model file, batch size, what it covers)
MODELS: dict[str, tuple[Path, int, str]] = {
    "mlp": (SAMPLES / "mlp.py", 64, "MLP (sample)"),
    "resnet18": (SAMPLES / "resnet.py", 32, "ResNet-18 64x64 (sample), cuDNN"),
    "resnet50": (GPU_MODELS / "resnet50.py", 16, "ResNet-50 224x224, cuDNN"),
    "gpt2-eager": (SAMPLES / "gpt2.py", 8, "GPT-2 eager attention (sample)"),
    "gpt2-sdpa": (GPU_MODELS / "gpt2_sdpa.py", 8, "GPT-2 SDPA (flash / mem-efficient)"),
    "gpt2-fused-adamw": (GPU_MODELS / "gpt2_fused_adamw.py", 8, "GPT-2 SDPA, AdamW(fused=True)"),
    "bert-eager": (SAMPLES / "bert.py", 8, "BERT eager attention (sample)"),
    "bert-sdpa": (GPU_MODELS / "bert_sdpa.py", 8, "BERT SDPA with padding mask"),
    "llama-gqa": (GPU_MODELS / "llama_gqa.py", 8, "Llama-style GQA, SDPA"),
    "moe": (GPU_MODELS / "moe.py", 8, "Mixtral-style MoE, 8 experts top-2"),
    "vit": (GPU_MODELS / "vit.py", 16, "ViT (nn.MultiheadAttention)"),
    "lstm": (SAMPLES / "lstm_lm.py", 16, "LSTM LM (sample), cuDNN RNN"),
    "checkpointed": (SAMPLES / "checkpointed.py", 16, "checkpointed blocks (sample)"),
}
QUICK = ("mlp", "gpt2-sdpa", "resnet18")
PRECISIONS = ("fp32", "bf16-mixed", "bf16")
MODES = ("train", "inference")
TRAIN_ONLY = {"gpt2-fused-adamw"}  # its point is the optimizer
CUSTOM_STEP = {"gpt2-fused-adamw"}  # files with their own train_step()
EXPANDABLE = ("gpt2-sdpa", "llama-gqa", "resnet50", "moe")  # also measured with expandable segments


def case_ids(models: list[str]) -> list[str]:
    out = []
    for m in models:
        if m in EXPANDABLE:
            out += [f"{m}|train|fp32|expandable", f"{m}|train|bf16-mixed|expandable"]
        for mode in MODES:
            if mode == "inference" and m in TRAIN_ONLY:
                continue
            for p in PRECISIONS:
                out.append(f"{m}|{mode}|{p}")
    return out


def split(case: str) -> tuple[str, str, str]:
    """(model, mode, precision) of a case id ``model|mode|precision[|expandable]``."""
    m, mode, p = case.split("|")[:3]
    return m, mode, p


def expandable(case: str) -> bool:
    """Cases ending ``|expandable`` run with ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True``."""
    return case.endswith("|expandable")


# ----------------------------------------------------------------------------------------------
# The independent measurement (runs in a child process with CUDA)
# ----------------------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_gv_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _move(value: Any, device: Any, dtype: Any = None) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.to(device)
        return value.to(dtype) if dtype is not None and value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _move(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device, dtype) for v in value)
    return value


def _call(model: Any, x: Any) -> Any:
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (list, tuple)):
        return model(*x)
    return model(x)


def _loss(mod: Any, out: Any, x: Any) -> Any:
    if getattr(mod, "loss_fn", None) is not None:
        return mod.loss_fn(out, x)
    loss = getattr(out, "loss", None)
    if loss is not None:
        return loss
    value = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
    return value.sum()


class Nvml:
    """NVML's used memory of this process on device 0 (``None`` where NVML cannot say)."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001
            self.nv = None

    def used(self) -> int | None:
        if self.nv is None:
            return None
        pid = os.getpid()
        try:
            for proc in self.nv.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    return int(proc.usedGpuMemory)
        except Exception:  # noqa: BLE001
            return None
        return None


class CudaMemory:
    """The caching allocator's counters on the GPU."""

    def __init__(self) -> None:
        import torch

        self.t = torch
        self.device = "cuda"

    def allocated(self) -> int:
        return int(self.t.cuda.memory_allocated())

    def reserved(self) -> int:
        return int(self.t.cuda.memory_reserved())

    def max_allocated(self) -> int:
        return int(self.t.cuda.max_memory_allocated())

    def max_reserved(self) -> int:
        return int(self.t.cuda.max_memory_reserved())

    def reset(self) -> None:
        self.t.cuda.reset_peak_memory_stats()

    def settle(self) -> None:
        gc.collect()
        self.t.cuda.synchronize()
        self.t.cuda.empty_cache()


class CpuStandIn(CudaMemory):
    """Zeros on the CPU: runs the measuring code without a GPU, to check the kit itself (``--selftest``)."""

    def __init__(self) -> None:
        super().__init__()
        self.device = "cpu"

    def allocated(self) -> int:
        return 0

    reserved = max_allocated = max_reserved = allocated

    def reset(self) -> None:
        pass

    def settle(self) -> None:
        gc.collect()


def _warm_cublas(torch: Any) -> None:
    """Create the cuBLAS/cuBLASLt workspaces of the default stream before anything is measured."""
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        a = torch.randn(64, 64, device="cuda", dtype=dtype)
        b = torch.randn(64, 64, device="cuda", dtype=dtype)
        bias = torch.randn(64, device="cuda", dtype=dtype)
        (a @ b).sum().item()
        torch.addmm(bias, a, b).sum().item()
        torch.bmm(a[None], b[None]).sum().item()
        torch.nn.functional.linear(a, b, bias).sum().item()
        del a, b, bias
    torch.cuda.synchronize()


def _measure_loop(
    mod: Any, batch: int, mode: str, precision: str, loop: str, nvml: Nvml, mem: CudaMemory
) -> dict[str, Any]:
    """Build the model on the GPU and run two steps; the peaks are relative to the state before building."""
    import torch

    mem.settle()
    base_alloc, base_reserved = mem.allocated(), mem.reserved()
    mem.reset()
    t0 = time.perf_counter()
    dtype = torch.bfloat16 if precision == "bf16" else None
    autocast = precision == "bf16-mixed"
    torch.manual_seed(0)
    model = mod.build_model()
    if dtype is not None:
        model.to(dtype)  # on the CPU, so no fp32 copy is ever on the GPU
    model.to(mem.device)
    x = _move(mod.example_inputs(batch), mem.device, dtype)
    after_build = mem.allocated() - base_alloc
    if mode == "inference":
        model.eval()
        with torch.no_grad():
            for _ in range(2):
                with torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                    out = _call(model, x)
                del out
    elif getattr(mod, "train_step", None) is not None:
        model.train()
        for _ in range(2):
            with torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                result = mod.train_step(model, x, None)
            del result
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(2):
            # PyTorch's tutorial loop: the previous step's output and loss live until these assignments.
            with torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                out = _call(model, x)
                loss = _loss(mod, out, x)
            loss.backward()
            if loop == "lean":
                del out, loss
            opt.step()
            opt.zero_grad(set_to_none=True)
    if mem.device == "cuda":
        torch.cuda.synchronize()
    used = nvml.used()
    return {
        "allocated_peak": mem.max_allocated() - base_alloc,
        "reserved_peak": mem.max_reserved() - base_reserved,
        "allocated_after_build": after_build,
        "reserved_end_abs": mem.reserved(),
        "max_reserved_abs": mem.max_reserved(),
        "nvml_used_end": used,
        "context_end": None if used is None else used - mem.reserved(),
        "seconds": round(time.perf_counter() - t0, 3),
    }


PROBED = ("attention", "sdp", "_foreach_", "_fused_", "cudnn", "rnn", "lstm", "grouped_mm", "convolution")


def _kernel_probe(mod: Any, batch: int, mode: str, precision: str, mem: CudaMemory) -> dict[str, int]:
    """Which attention, RNN, convolution and optimizer operators the GPU ran in one step (counts)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: dict[str, int] = {}

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = str(func.overloadpacket.__name__)
            if any(k in name for k in PROBED):
                seen[name] = seen.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    dtype = torch.bfloat16 if precision == "bf16" else None
    autocast = precision == "bf16-mixed"
    torch.manual_seed(0)
    model = mod.build_model().to(mem.device)
    if dtype is not None:
        model.to(dtype)
    x = _move(mod.example_inputs(batch), mem.device, dtype)
    with Record():
        if mode == "inference":
            model.eval()
            with torch.no_grad(), torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                _call(model, x)
        elif getattr(mod, "train_step", None) is not None:
            model.train()
            with torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                mod.train_step(model, x, None)
        else:
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            with torch.autocast(mem.device, dtype=torch.bfloat16, enabled=autocast):
                loss = _loss(mod, _call(model, x), x)
            loss.backward()
            opt.step()
    return seen


def _warm_backward(torch: Any) -> None:
    """Create the cuBLAS handle and workspace of the autograd engine's GPU thread (backward matmuls
    run there, on a handle of their own)."""
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        a = torch.randn(64, 64, device="cuda", dtype=dtype, requires_grad=True)
        b = torch.randn(64, 64, device="cuda", dtype=dtype, requires_grad=True)
        bias = torch.randn(64, device="cuda", dtype=dtype, requires_grad=True)
        torch.nn.functional.linear(torch.bmm(a[None], b[None])[0], b, bias).sum().backward()
        del a, b, bias
    torch.cuda.synchronize()


def gpu_job(case: str, what: str, selftest: bool = False) -> dict[str, Any]:
    """One fresh process: the ``what`` loop (``tutorial``, ``lean`` or ``inference``) measured, or
    memadvise's real CUDA trace (a) of the case (``trace``) and a probe of the kernels the GPU ran."""
    import torch

    name, mode, precision = split(case)
    path, batch, _ = MODELS[name]
    mem: CudaMemory = CpuStandIn() if selftest else CudaMemory()
    nvml = Nvml()
    out: dict[str, Any] = {"case": case, "what": what}
    if not selftest:
        torch.cuda.init()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        used0 = nvml.used()
        out["context_init"] = None if used0 is None else used0 - mem.reserved()
        alloc0 = mem.allocated()
        _warm_cublas(torch)
        out["cublas_workspace"] = mem.allocated() - alloc0
        _warm_backward(torch)
        out["cublas_workspace_with_backward"] = mem.allocated() - alloc0
        used1 = nvml.used()
        out["context_cublas"] = None if used1 is None else used1 - mem.reserved()
    mod = _load(path)
    if what != "trace":
        try:
            out["measured"] = _measure_loop(mod, batch, mode, precision, what, nvml, mem)
        except Exception as exc:  # noqa: BLE001
            out["measured"] = {"error": _err(exc)}
        return out
    # (a) memadvise's real trace on the GPU
    try:
        import memadvise

        mem.settle()
        base = mem.allocated()
        mem.reset()
        t0 = time.perf_counter()
        prof = memadvise.profile_file(
            str(path), batch_size=batch, mode=mode, device=mem.device, precision=precision, scaling=False
        )
        from memadvise.analyzer import Scenario

        out["real_cuda"] = {
            "peak_bytes": prof.peak_bytes,
            "reserved_bytes": _reserved_of(prof, Scenario(), expandable(case)),
            "step": getattr(prof, "train_loop", None),
            "seconds": round(time.perf_counter() - t0, 2),
            "max_allocated_during": mem.max_allocated() - base,
            "max_reserved_during": mem.max_reserved(),
        }
    except Exception as exc:  # noqa: BLE001
        out["real_cuda"] = {"error": _err(exc)}
    mem.settle()
    try:
        out["kernels"] = _kernel_probe(mod, batch, mode, precision, mem)
    except Exception as exc:  # noqa: BLE001
        out["kernels"] = {"error": _err(exc)}
    return out


def loops_of(case: str) -> tuple[str, ...]:
    """The loops a case is measured with, one fresh process each."""
    name, mode, _ = split(case)
    if mode == "inference":
        return ("inference",)
    return ("tutorial",) if name in CUSTOM_STEP else ("tutorial", "lean")


def _err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ----------------------------------------------------------------------------------------------
# memadvise's predictions (CPU only; run beside the GPU jobs)
# ----------------------------------------------------------------------------------------------


def _reserved_of(profile: Any, scenario: Any, expandable_segments: bool = False) -> int | None:
    from memadvise.analyzer.estimate import estimate_blocks
    from memadvise.planner.reserved import reserved

    try:
        _, blocks = estimate_blocks(profile, scenario)
        return int(reserved(blocks, expandable_segments=expandable_segments).reserved_bytes)
    except Exception:  # noqa: BLE001
        return None


def fake_job(case: str, gpu: str, loop: str = "tutorial") -> dict[str, Any]:
    """(b) the fake CUDA-target trace of the case, and its predicted reserved memory."""
    import torch

    torch.set_num_threads(2)
    import memadvise
    from memadvise.analyzer import Scenario
    from memadvise.cli.common import cuda_target

    name, mode, precision = split(case)
    path, batch, _ = MODELS[name]
    t0 = time.perf_counter()
    try:
        prof = memadvise.profile_file(
            str(path),
            batch_size=batch,
            mode=mode,
            device="meta",
            target_device="cuda",
            precision=precision,
            scaling=False,
            gpu=cuda_target(gpu),
            train_loop=loop,
        )
    except Exception as exc:  # noqa: BLE001
        return {"case": case, "fake_cuda": {"error": _err(exc)}}
    return {
        "case": case,
        "fake_cuda": {
            "peak_bytes": prof.peak_bytes,
            "reserved_bytes": _reserved_of(prof, Scenario(), expandable(case)),
            "step": getattr(prof, "train_loop", None),
            "seconds": round(time.perf_counter() - t0, 2),
            "notes": list(prof.assumptions),
        },
    }


def cpu_job(model: str, mode: str, workdir: str, loop: str = "tutorial") -> dict[str, Any]:
    """A real CPU profile of the model in fp32 at the case's batch, saved for (c) and (d)."""
    import torch

    torch.set_num_threads(2)
    import memadvise

    path, batch, _ = MODELS[model]
    t0 = time.perf_counter()
    target = Path(workdir) / f"cpu_{model}_{mode}_{loop}.json"
    try:
        prof = memadvise.profile_file(
            str(path), batch_size=batch, mode=mode, device="cpu", scaling=False, train_loop=loop
        )
        prof.save(target)
    except Exception as exc:  # noqa: BLE001
        return {"model": model, "mode": mode, "error": _err(exc)}
    return {"model": model, "mode": mode, "file": str(target), "seconds": round(time.perf_counter() - t0, 2)}


def predict_from_cpu(case: str, cpu_file: str | None, gpu: str) -> dict[str, Any]:
    """(c) estimate and (d) plan, from the CPU profile."""
    import memadvise
    from memadvise.analyzer import Precision, Scenario
    from memadvise.model.profile import OptimizerName
    from memadvise.planner import Pins, plan_for

    name, mode, precision = split(case)
    _, batch, _ = MODELS[name]
    if cpu_file is None:
        return {"estimate_cpu": {"error": "no CPU profile"}, "plan": {"error": "no CPU profile"}}
    prof = memadvise.load_profile(cpu_file)
    scen = Scenario(precision=None if precision == "fp32" else Precision(precision))
    res: dict[str, Any] = {}
    try:
        est = memadvise.estimate(prof, scen)
        res["estimate_cpu"] = {
            "peak_bytes": est.peak_bytes,
            "reserved_bytes": _reserved_of(prof, scen, expandable(case)),
        }
    except Exception as exc:  # noqa: BLE001
        res["estimate_cpu"] = {"error": _err(exc)}
    try:
        pins = Pins(
            batch_size=batch,
            precision=Precision(precision),
            checkpoint=(),
            optimizer=None if mode == "inference" else OptimizerName(prof.optimizer),
            grad_accum=1,
        )
        plan = plan_for(prof, gpu, pins=pins)
        budget = plan.budget  # training or inference, as the profile's mode
        opt = plan.options[0] if plan.options else None
        if opt is None:
            res["plan"] = {"error": "plan gave no option"}
        else:
            res["plan"] = {
                "peak_bytes": opt.predicted_peak_bytes,
                "reserved_bytes": opt.reserved_bytes,
                "nvidia_smi_bytes": opt.reserved_bytes + budget.context_bytes + budget.workspace_bytes,
                "context_bytes": budget.context_bytes,
                "workspace_bytes": budget.workspace_bytes,
                "precision": opt.precision,
                "batch": opt.batch_size,
            }
    except Exception as exc:  # noqa: BLE001
        res["plan"] = {"error": _err(exc)}
    return res


# ----------------------------------------------------------------------------------------------
# Orchestration
# ----------------------------------------------------------------------------------------------


def _child(kind: str, args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", kind, *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("KINETO_LOG_LEVEL", "5")
    env["OMP_NUM_THREADS"] = "2"
    if kind in ("gpu", "selftest") and expandable(args[0]):
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[:400]}


def _environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "CUDA_MODULE_LOADING": os.environ.get("CUDA_MODULE_LOADING"),
    }
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except Exception:  # noqa: BLE001
        pass
    env["memadvise_commit"] = _commit()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            gpu_total_bytes=p.total_memory,
            compute_capability=f"{p.major}.{p.minor}",
            sm_count=p.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
        nv = Nvml()
        if nv.nv is not None:
            try:
                env["driver"] = nv.nv.nvmlSystemGetDriverVersion()
                env["nvml_total_bytes"] = int(nv.nv.nvmlDeviceGetMemoryInfo(nv.handle).total)
            except Exception:  # noqa: BLE001
                pass
    return env


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "memadvise"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        return (out.stdout.strip() + ("+changes" if dirty else "")) or None
    except Exception:  # noqa: BLE001
        return None


def _slug(gpu: str) -> str:
    s = "".join(c if c.isalnum() else "_" for c in gpu.lower().replace("nvidia ", "")).strip("_")
    while "__" in s:
        s = s.replace("__", "_")
    return s or "gpu"


def _catalog_name(gpu: str) -> str:
    try:
        from memadvise.planner.gpus import find_gpu

        return str(find_gpu(gpu).name)
    except Exception:  # noqa: BLE001
        return gpu


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    deadline = started + args.deadline
    models = list(QUICK) if args.quick else list(MODELS)
    if args.only:
        models = [m for m in args.only.split(",") if m in MODELS]
        if not models:
            print(
                f"gpu_validate: no known model in {args.only!r}; known: {', '.join(MODELS)}", file=sys.stderr
            )
            return 2
    cases = case_ids(models)
    raw: dict[str, Any]
    if args.predict_only:
        raw = json.loads(Path(args.predict_only).read_text())
        gpu_name = raw["environment"].get("gpu", "unknown GPU")
        measure = False
        cases = [c for c in raw["cases"] if split(c)[0] in models]
        for c in raw["cases"].values():  # predictions are made anew; measurements stay
            kept = {
                loop: {"fake_cuda": p["fake_cuda"]}
                for loop, p in (c.get("predictions") or {}).items()
                if args.keep_fake and "fake_cuda" in p
            }
            for stale in ("fake_cuda", "estimate_cpu", "plan", "predictions"):
                c.pop(stale, None)
            if kept:
                c["predictions"] = kept
    else:
        import torch

        if not torch.cuda.is_available() and not args.selftest:
            print(
                "gpu_validate: no CUDA device here; run it on a GPU machine, or use "
                "--predict-only RESULTS.json to recompute predictions for stored measurements",
                file=sys.stderr,
            )
            return 2
        gpu_name = "CPU self-test" if args.selftest else torch.cuda.get_device_properties(0).name
        raw = {"environment": _environment(), "cases": {c: {} for c in cases}}
        measure = True
    gpu = _catalog_name(args.gpu or ("H100" if args.selftest else gpu_name))
    raw.setdefault("predictions_environment", {})
    raw["predictions_environment"] = {
        "torch": _torch_version(),
        "gpu_catalog_name": gpu,
        "commit": _commit(),
        "date": dt.date.today().isoformat(),
    }
    out_dir = Path(args.out_dir) if args.out_dir else ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_{_slug(raw['environment'].get('gpu', gpu))}"
    raw_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    workdir = args.cpu_profiles or tempfile.mkdtemp(prefix="memadvise_gv_")
    print(
        f"gpu_validate: {len(cases)} cases on {gpu_name}; results to {raw_path}", file=sys.stderr, flush=True
    )

    def save() -> None:
        raw_path.write_text(json.dumps(raw, indent=1, sort_keys=True))

    cpu_files: dict[tuple[str, str], str | None] = {}
    gpu_pool = cf.ThreadPoolExecutor(max_workers=args.gpu_workers)
    cpu_pool = cf.ThreadPoolExecutor(max_workers=args.cpu_workers)
    futures: dict[cf.Future[Any], tuple[str, Any]] = {}

    def submit(pool: cf.ThreadPoolExecutor, kind: str, key: Any, jargs: list[str], timeout: float) -> None:
        def task() -> dict[str, Any]:
            left = deadline - time.perf_counter()
            if left < 5:
                return {"error": "not run: the kit's deadline was reached"}
            return _child(kind, jargs, min(timeout, left))

        futures[pool.submit(task)] = (kind, key)

    if measure:
        kind = "selftest" if args.selftest else "gpu"
        for c in cases:
            for what in (*loops_of(c), "trace"):
                submit(gpu_pool, kind, (c, what), [c, what], args.case_timeout)
    loops = [x for x in args.train_loops.split(",") if x]
    for loop in loops:
        for m in sorted({split(c)[0] for c in cases}):
            for mode in sorted({split(c)[1] for c in cases if split(c)[0] == m}):
                if mode == "inference" and loop != loops[0]:
                    continue  # the loop is a training matter: one inference profile serves all
                saved = Path(workdir) / f"cpu_{m}_{mode}_{loop}.json"
                if args.cpu_profiles and saved.exists():
                    cpu_files[(m, mode, loop)] = str(saved)
                    continue
                submit(cpu_pool, "cpu", (m, mode, loop), [m, mode, workdir, loop], args.case_timeout)
        for c in cases:
            if split(c)[1] == "inference" and loop != loops[0]:
                continue
            if args.keep_fake and "fake_cuda" in ((raw["cases"][c].get("predictions") or {}).get(loop) or {}):
                continue
            submit(cpu_pool, "fake", (c, loop), [c, gpu, loop], args.case_timeout)
    done = 0
    for fut in cf.as_completed(futures):
        kind, key = futures[fut]
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001
            result = {"error": _err(exc)}
        done += 1
        if kind in ("gpu", "selftest"):
            case, what = key
            entry = raw["cases"][case]
            for k in ("context_init", "cublas_workspace", "cublas_workspace_with_backward", "context_cublas"):
                if k in result:
                    entry.setdefault("process", {}).setdefault(what, {})[k] = result[k]
            if "measured" in result:
                entry.setdefault("measured", {})[what] = result["measured"]
            for k in ("real_cuda", "kernels"):
                if k in result:
                    entry[k] = result[k]
            if "error" in result:
                entry.setdefault("gpu_errors", {})[what] = result["error"]
        elif kind == "fake":
            case, loop = key
            fake = result.get("fake_cuda", {"error": result.get("error")})
            raw["cases"][case].setdefault("predictions", {}).setdefault(loop, {})["fake_cuda"] = fake
        else:
            cpu_files[key] = result.get("file")
            if "error" in result:
                raw.setdefault("cpu_profile_errors", {})["|".join(key)] = result["error"]
        elapsed = time.perf_counter() - started
        print(
            f"[{done}/{len(futures)} {elapsed:5.0f}s] {kind:4} {key}: {result.get('error', 'ok')}",
            file=sys.stderr,
            flush=True,
        )
        if kind in ("gpu", "selftest"):
            save()
    gpu_pool.shutdown()
    cpu_pool.shutdown()
    for loop in loops:
        for c in cases:
            m, mode, _ = split(c)
            if mode == "inference" and loop != loops[0]:
                continue
            into = raw["cases"][c].setdefault("predictions", {}).setdefault(loop, {})
            try:
                into.update(
                    predict_from_cpu(
                        c, cpu_files.get((m, mode, loops[0] if mode == "inference" else loop)), gpu
                    )
                )
            except Exception as exc:  # noqa: BLE001
                into["estimate_cpu"] = {"error": _err(exc)}
    save()
    md_path.write_text(report(raw, gpu))
    print(
        f"gpu_validate: wrote {raw_path} and {md_path} in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


# The first training loop of each process in the first H200 run (before the kit warmed the autograd
# thread's cuBLAS handle) also allocated that handle's workspace: 32 MiB on Hopper, seen as the exact
# tutorial - lean difference of models whose output is negligible (ResNet-50, BERT). It is a once per
# process cost that memadvise counts in the plan's overhead, not in a step, so it is taken out of
# those loops' truth.
RUN1_BACKWARD_WORKSPACE = 32 * MiB


def truth_of(
    entry: dict[str, Any], name: str, mode: str, precision: str, loop: str
) -> tuple[dict[str, Any], str]:
    """The measured figures a prediction for ``loop`` is compared with, and why a case is left out of
    the summary (empty: it counts)."""
    measured = entry.get("measured") or {}
    if mode == "inference":
        which = "inference"
    elif name in CUSTOM_STEP:
        which = "tutorial"  # the model file's own step; the only loop measured
    else:
        which = loop
    m = dict(measured.get(which) or {})
    if not m or "error" in m:
        return {}, "not measured"
    first_in_process = "process" not in entry and mode == "train" and which == "tutorial"
    if first_in_process:
        for key in ("allocated_peak", "reserved_peak"):  # nvidia-smi's figure keeps it, as the plan's does
            if isinstance(m.get(key), int):
                m[key] -= RUN1_BACKWARD_WORKSPACE
    why = ""
    if mode == "inference" and precision == "bf16" and "process" not in entry:
        params32 = 2 * int(m.get("allocated_after_build") or 0)
        if params32 and 0.9 * params32 <= m.get("allocated_peak", 0) <= 1.3 * params32:
            why = (
                "truth is the fp32 model cast to bf16 on the GPU at build time (the kit now casts on the CPU)"
            )
    return m, why


def _pct(pred: Any, truth: Any) -> float | None:
    if not isinstance(pred, (int, float)) or not isinstance(truth, (int, float)) or truth <= 0:
        return None
    return 100.0 * (pred - truth) / truth


def _fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}%"


def _mib(x: Any) -> str:
    return "—" if not isinstance(x, (int, float)) else f"{x / MiB:,.1f}"


COLUMNS = (
    ("(b) fake CUDA trace vs allocated", "fake_cuda", "peak_bytes", "allocated_peak"),
    ("(b) its reserved vs reserved", "fake_cuda", "reserved_bytes", "reserved_peak"),
    ("(c) estimate from a CPU profile vs allocated", "estimate_cpu", "peak_bytes", "allocated_peak"),
    ("(c) its reserved vs reserved", "estimate_cpu", "reserved_bytes", "reserved_peak"),
    ("(d) plan's reserved vs reserved", "plan", "reserved_bytes", "reserved_peak"),
    ("(d) plan's nvidia-smi vs NVML", "plan", "nvidia_smi_bytes", "nvml_used_end"),
)


def _summary_rows(errors: dict[str, list[tuple[float, str]]]) -> list[str]:
    rows = [
        "| comparison | cases | median abs. error | worst | within 3% |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, vals in errors.items():
        if not vals:
            rows.append(f"| {label} | 0 | — | — | — |")
            continue
        worst = max(vals)
        within = sum(1 for v, _ in vals if v <= 3.0)
        med = statistics.median(v for v, _ in vals)
        rows.append(f"| {label} | {len(vals)} | {med:.1f}% | {worst[0]:.1f}% (`{worst[1]}`) | {within} |")
    return rows


def _kernel_of(notes: list[str]) -> str:
    for text in notes:
        if text.startswith("scaled_dot_product_attention: the "):
            return text.split("the ", 1)[1].split(" as on")[0].replace(" kernel", "").replace(" path", "")
    return ""


GPU_KERNELS = {
    "_scaled_dot_product_cudnn_attention": "cuDNN",
    "_scaled_dot_product_efficient_attention": "memory-efficient",
    "_scaled_dot_product_flash_attention": "flash",
}


def report(raw: dict[str, Any], gpu: str) -> str:
    env = raw["environment"]
    penv = raw.get("predictions_environment", {})
    loops = sorted({loop for c in raw["cases"].values() for loop in (c.get("predictions") or {})})
    lines = [
        f"# memadvise on a real GPU: {env.get('gpu', '?')}",
        "",
        f"Measured {env.get('date', '?')} with `python bench/gpu_validate.py`: torch {env.get('torch')}, "
        f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, driver {env.get('driver')}, "
        f"transformers {env.get('transformers')}, compute capability {env.get('compute_capability')}, "
        f"{env.get('sm_count')} SMs, {_mib(env.get('gpu_total_bytes'))} MiB (torch) / "
        f"{_mib(env.get('nvml_total_bytes'))} MiB (NVML); memadvise {env.get('memadvise_commit')} for the "
        f"real traces (a). Predictions (b)-(d) made {penv.get('date')} on a CPU with torch "
        f"{penv.get('torch')}, memadvise {penv.get('commit')}, for catalog GPU `{gpu}` "
        f"(`python bench/gpu_validate.py --predict-only bench/results/gpu_{_slug(env.get('gpu', gpu))}.json`"
        "; no GPU needed).",
        "",
        "Each case ran in a fresh process: two steps of the model (training: AdamW with PyTorch's CUDA "
        "defaults, i.e. the multi-tensor `foreach` path), peaks relative to the process's state before the "
        "model was built (the CUDA context and the main thread's cuBLAS workspace, warmed up first, "
        "excluded). In this run the tutorial loop ran first and the lean loop second in the same process; "
        f"the first also created the autograd thread's cuBLAS workspace ({RUN1_BACKWARD_WORKSPACE // MiB} "
        "MiB, taken out of its truth, see `RUN1_BACKWARD_WORKSPACE`). Errors are (predicted − measured) "
        "/ measured. Cases listed under *left out* are not in the summaries, with the reason.",
    ]
    left_out: list[str] = []
    failures: list[str] = []
    # (a) the real CUDA trace, made in the same run (lean loop, after both measured loops)
    real_err: dict[str, list[tuple[float, str]]] = {"(a) real CUDA trace vs allocated": []}
    for cid, c in raw["cases"].items():
        name, mode, precision = split(cid)
        real = c.get("real_cuda") or {}
        if real.get("error"):
            failures.append(f"- `{cid}` real CUDA trace: {real['error']}")
            continue
        truth, why = truth_of(c, name, mode, precision, "lean")
        err = _pct(real.get("peak_bytes"), truth.get("allocated_peak"))
        if err is not None and not why:
            real_err["(a) real CUDA trace vs allocated"].append((abs(err), cid))
    lines += ["", "## (a) memadvise's real trace on the GPU", "", *_summary_rows(real_err)]
    for loop in loops:
        errors: dict[str, list[tuple[float, str]]] = {label: [] for label, *_ in COLUMNS}
        rows = []
        for cid, c in raw["cases"].items():
            name, mode, precision = split(cid)
            every = c.get("predictions") or {}
            if mode == "inference":
                if loop != loops[0]:
                    continue  # the training loop does not matter to inference: listed once
                preds = next(iter(every.values()), {})
            else:
                preds = every.get(loop) or {}
            truth, why = truth_of(c, name, mode, precision, loop)
            label = precision + (", expandable segments" if expandable(cid) else "")
            errs = []
            for col, source, key, tkey in COLUMNS:
                e = _pct((preds.get(source) or {}).get(key), truth.get(tkey))
                errs.append(e)
                if e is not None and not why:
                    errors[col].append((abs(e), cid))
            if why and f"`{cid}`" not in " ".join(left_out):
                left_out.append(f"- `{cid}`: {why}")
            for source in ("fake_cuda", "estimate_cpu", "plan"):
                problem = (preds.get(source) or {}).get("error")
                if problem:
                    failures.append(f"- `{cid}` {source} ({loop} loop): {problem}")
            rows.append(
                f"| {name} | {mode} | {label} | {_mib(truth.get('allocated_peak'))} | "
                f"{_mib(truth.get('reserved_peak'))} | {_mib(truth.get('nvml_used_end'))} | "
                + " | ".join(_fmt_pct(e) for e in errs)
                + " |"
            )
        lines += [
            "",
            f"## Predictions for the {loop} loop (inference cases appear once)",
            "",
            *_summary_rows(errors),
            "",
            "| model | mode | precision | allocated MiB | reserved MiB | NVML used MiB | "
            + " | ".join(label for label, *_ in COLUMNS)
            + " |",
            "| --- | --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |",
            *rows,
        ]
    # attention kernels: what the GPU ran against what the fake trace chose
    kernel_rows = []
    agree = total = 0
    for cid, c in raw["cases"].items():
        ran = sorted({GPU_KERNELS[k] for k in (c.get("kernels") or {}) if k in GPU_KERNELS})
        if "_native_multi_head_attention" in (c.get("kernels") or {}):
            ran.append("fused MHA (inference fast path)")
        preds = next(iter((c.get("predictions") or {}).values()), {})
        chosen = _kernel_of((preds.get("fake_cuda") or {}).get("notes") or [])
        if not ran and not chosen:
            continue
        ran_text = ", ".join(ran) or "math (no fused kernel)"
        if not chosen:
            verdict = "no fake trace"
        elif any(r.startswith("fused MHA") for r in ran):
            verdict = "not modelled (MHA fast path)"
        else:
            total += 1
            same = chosen == (ran[0] if ran else "math")
            agree += same
            verdict = "yes" if same else "no"
        kernel_rows.append(f"| `{cid}` | {ran_text} | {chosen or '—'} | {verdict} |")
    lines += [
        "",
        "## Attention kernels: the GPU's against the fake trace's choice",
        "",
        f"{agree} of {total} calls of `scaled_dot_product_attention` took the kernel the GPU ran.",
        "",
        "| case | GPU ran | fake trace chose | same kernel |",
        "| --- | --- | --- | --- |",
        *kernel_rows,
    ]
    procs = [p for c in raw["cases"].values() for p in (c.get("process") or {}).values()]
    top = [c for c in raw["cases"].values() if "context_init" in c]
    ctx = [p.get("context_init") for p in procs] + [c.get("context_init") for c in top]
    ws = [p.get("cublas_workspace") for p in procs] + [c.get("cublas_workspace") for c in top]
    ctx_train = [
        m.get("context_end")
        for cid, c in raw["cases"].items()
        if split(cid)[1] == "train"
        for m in (c.get("measured") or {}).values()
        if isinstance(m, dict) and m.get("context_end")
    ]
    ctx_inf = [
        m.get("context_end")
        for cid, c in raw["cases"].items()
        if split(cid)[1] == "inference"
        for m in (c.get("measured") or {}).values()
        if isinstance(m, dict) and m.get("context_end")
    ]
    plan = (
        next(
            (
                p.get("plan")
                for cid, c in raw["cases"].items()
                if split(cid)[1] == "train"
                for p in (c.get("predictions") or {}).values()
                if (p.get("plan") or {}).get("context_bytes")
            ),
            {},
        )
        or {}
    )
    lines += [
        "",
        "## CUDA context and workspaces (what nvidia-smi shows beyond reserved memory)",
        "",
        f"- After `torch.zeros(1, device='cuda')`: {_range(ctx)} MiB (NVML used − `memory_reserved()`).",
        f"- After inference of the models: {_range(ctx_inf)} MiB; after training: {_range(ctx_train)} MiB.",
        f"- cuBLAS and cuBLASLt workspaces of the main thread after fp32/bf16/fp16 matmuls: {_range(ws)} MiB "
        f"(allocated); the autograd thread's handle adds {RUN1_BACKWARD_WORKSPACE // MiB} MiB.",
        f"- memadvise's plan for `{gpu}` (training) assumes {_mib(plan.get('context_bytes'))} MiB of "
        f"context and {_mib(plan.get('workspace_bytes'))} MiB of workspaces.",
        "",
        "## Left out of the summaries",
        "",
        *(left_out or ["- none"]),
        "",
        "## Failures",
        "",
        *(failures or ["- none"]),
        "",
    ]
    return "\n".join(lines)


def _range(values: list[Any]) -> str:
    vals = [v for v in values if isinstance(v, (int, float))]
    if not vals:
        return "—"
    lo, hi = min(vals) / MiB, max(vals) / MiB
    return f"{lo:,.1f}" if abs(hi - lo) < 0.05 else f"{lo:,.1f}–{hi:,.1f}"


def child_main(kind: str, jargs: list[str]) -> int:
    try:
        if kind == "gpu":
            result = gpu_job(jargs[0], jargs[1])
        elif kind == "selftest":
            result = gpu_job(jargs[0], jargs[1], selftest=True)
        elif kind == "fake":
            result = fake_job(*jargs)
        elif kind == "cpu":
            result = cpu_job(*jargs)
        else:
            raise ValueError(kind)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        result = {"error": _err(exc)}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--gpu", help="catalog GPU for the predictions (default: the GPU found)")
    parser.add_argument("--out-dir", help="folder for gpu_<gpu>.json/.md (default bench/results)")
    parser.add_argument(
        "--predict-only", metavar="RAW_JSON", help="keep these measurements, redo predictions"
    )
    parser.add_argument(
        "--train-loops",
        default="tutorial,lean",
        help="training loops memadvise predicts (tutorial, lean, or both comma-separated)",
    )
    parser.add_argument("--deadline", type=float, default=420.0, help="seconds before no new job starts")
    parser.add_argument("--case-timeout", type=float, default=180.0)
    parser.add_argument("--gpu-workers", type=int, default=4)
    parser.add_argument("--cpu-workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    parser.add_argument(
        "--selftest", action="store_true", help="run the measuring code on the CPU (zeros), to check the kit"
    )
    parser.add_argument("--report-only", metavar="RAW_JSON", help="rewrite the report of a results file")
    parser.add_argument(
        "--cpu-profiles", metavar="DIR", help="keep CPU profiles in DIR and reuse those already there"
    )
    parser.add_argument(
        "--keep-fake", action="store_true", help="with --predict-only: keep the file's fake-trace predictions"
    )
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report_only:
        raw = json.loads(Path(args.report_only).read_text())
        gpu = raw.get("predictions_environment", {}).get("gpu_catalog_name") or raw["environment"].get("gpu")
        Path(args.report_only).with_suffix(".md").write_text(report(raw, str(gpu)))
        return 0
    if args.job:
        return child_main(args.job[0], args.job[1:])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

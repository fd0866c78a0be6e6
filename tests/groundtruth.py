"""Independent ground truth for memadvise's peak-memory numbers.

This module deliberately shares no code with ``memadvise``: it loads a model
file on its own, runs a fixed training (or inference) loop under
``torch.profiler`` with ``profile_memory=True`` and rebuilds the live-bytes
curve as the running sum of the profiler's CPU allocator events (positive =
allocation, negative = free).  The peak of that curve inside the measured
window is the number memadvise has to reproduce.

The measured loop (``mode="train"``)::

    torch.manual_seed(0)
    model = build_model(); inputs = example_inputs(batch_size); gc.collect()
    # --- window starts ---
    model.train(); opt = make_optimizer(...)
    for _ in range(2):
        out = call(model, inputs); loss = loss_fn(out, inputs)   # phase "forward"
        loss.backward()                                          # phase "backward"
        del out, loss
        opt.step(); opt.zero_grad(set_to_none=True)              # phase "optimizer"
    # --- window ends ---

``mode="inference"`` runs two ``model.eval()`` forwards under ``torch.no_grad()``.
Everything allocated since the profiler started (parameters, buffers, inputs)
counts towards the curve, and the peak is at least the level live when the
window opens.  PyTorch drops the free of a block allocated while no profiler
was recording, but it does report the free of a block allocated under an
*earlier* profiling session; garbage is therefore collected before the
profiler starts, so that leftovers of a previous run cannot lower the curve.

Peaks depend on ``torch.get_num_threads()``: some CPU kernels (oneDNN
convolution backward in particular) size scratch buffers by thread count.

Command line: ``python tests/groundtruth.py MODEL_FILE --batch-size 4 [--mode inference]``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

MODES = ("train", "inference")
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd-momentum", "none")
PHASES = ("forward", "backward", "optimizer")

_PREFIX = "groundtruth::"
_WINDOW = _PREFIX + "window"
_MEMORY_EVENT = "[memory]"
_HOST_DEVICE_TYPES = {"CPU", "MKLDNN", "IDEEP"}


@dataclass(frozen=True)
class MemoryEvent:
    """One allocator event: time stamp (ns), signed size and original position."""

    t_ns: int
    nbytes: int
    index: int


@dataclass(frozen=True)
class GroundTruth:
    """Result of one measurement.

    ``peak_bytes`` is the maximum live bytes inside the window, ``peak_phase``
    the phase in which it was first reached (``None`` when the peak is the
    level already live when the window opened).
    """

    peak_bytes: int
    peak_phase: str | None
    baseline_bytes: int
    end_bytes: int
    phase_peaks: dict[str, int] = field(default_factory=dict)
    n_events: int = 0
    n_timestamp_ties: int = 0

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)


# --------------------------------------------------------------------------- model files


def load_model_file(path: str | Path) -> ModuleType:
    """Execute a model file as a fresh module (a new module object every call)."""
    path = Path(path).resolve()
    name = f"groundtruth_model_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load model file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    for required in ("build_model", "example_inputs"):
        if not callable(getattr(module, required, None)):
            raise AttributeError(f"{path} does not define {required}()")
    return module


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Call ``model`` the way the model-file format prescribes."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def default_loss(output: Any) -> torch.Tensor:
    """Loss used when a model file has no ``loss_fn``."""
    loss = getattr(output, "loss", None)
    if loss is not None:
        return loss
    if isinstance(output, (tuple, list)):
        value = output[0]
    elif getattr(output, "logits", None) is not None:
        value = output.logits
    elif isinstance(output, dict) and "logits" in output:
        value = output["logits"]
    else:
        value = output
    return value.sum()


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    """Build the optimizer named ``name`` over the trainable ``params``."""
    trainable = [p for p in params if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(trainable, lr=1e-3)
    if name == "adam":
        return torch.optim.Adam(trainable, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(trainable, lr=1e-2)
    if name == "sgd-momentum":
        return torch.optim.SGD(trainable, lr=1e-2, momentum=0.9)
    if name == "none":
        return None
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


# --------------------------------------------------------------------------- measured loop


def _run_window(module: ModuleType, batch_size: int, mode: str, optimizer: str, steps: int) -> None:
    """Build the model and run the measured steps (called inside the profiler)."""
    torch.manual_seed(0)
    model = module.build_model()
    inputs = module.example_inputs(batch_size)
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = getattr(module, "loss_fn", None)
    gc.collect()
    with record_function(_WINDOW):
        if mode == "train":
            model.train()
            opt = make_optimizer(optimizer, model.parameters())
            for _ in range(steps):
                with record_function(_PREFIX + "forward"):
                    out = call_model(model, inputs)
                    loss = loss_fn(out, inputs) if loss_fn is not None else default_loss(out)
                with record_function(_PREFIX + "backward"):
                    loss.backward()
                del out, loss
                with record_function(_PREFIX + "optimizer"):
                    if opt is not None:
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                    else:
                        for p in model.parameters():
                            p.grad = None
            del opt
        else:
            model.eval()
            with torch.no_grad():
                for _ in range(steps):
                    with record_function(_PREFIX + "forward"):
                        out = call_model(model, inputs)
                    del out
    del model, inputs


def _split_events(events: list[Any]) -> tuple[dict[str, list[tuple[int, int]]], list[MemoryEvent]]:
    """One pass over raw profiler events: our named ranges and the host allocator events.

    Ranges map name -> [(start_ns, end_ns)].  Memory events are sorted by time
    stamp; equal time stamps keep the order in which the profiler reported them.
    """
    ranges: dict[str, list[tuple[int, int]]] = {}
    mem: list[MemoryEvent] = []
    for i, e in enumerate(events):
        name = e.name()
        if name == _MEMORY_EVENT:
            if str(e.device_type()).rsplit(".", 1)[-1].upper() in _HOST_DEVICE_TYPES:
                mem.append(MemoryEvent(t_ns=e.start_ns(), nbytes=int(e.nbytes()), index=i))
        elif name.startswith(_PREFIX):
            ranges.setdefault(name, []).append((e.start_ns(), e.end_ns()))
    mem.sort(key=lambda m: (m.t_ns, m.index))
    return ranges, mem


def _phase_at(t_ns: int, phases: dict[str, list[tuple[int, int]]]) -> str | None:
    """Name of the phase range containing ``t_ns``, if any."""
    for name, spans in phases.items():
        if any(s <= t_ns <= e for s, e in spans):
            return name
    return None


def analyse(events: list[Any]) -> GroundTruth:
    """Rebuild the live-bytes curve from raw profiler events and find the window peak."""
    ranges, mem = _split_events(events)
    windows = ranges.get(_WINDOW, [])
    if len(windows) != 1:
        raise RuntimeError(f"expected exactly one measured window, found {len(windows)}")
    w_start, w_end = windows[0]
    phases = {p: ranges.get(_PREFIX + p, []) for p in PHASES}
    ties = sum(1 for a, b in zip(mem, mem[1:], strict=False) if a.t_ns == b.t_ns)

    live = 0
    baseline: int | None = None
    peak = 0
    peak_t: int | None = None
    phase_peaks: dict[str, int] = {}
    for ev in mem:
        if ev.t_ns > w_end:
            break
        if baseline is None and ev.t_ns >= w_start:
            baseline = peak = live
        live += ev.nbytes
        if baseline is None:
            continue
        if live > peak:
            peak, peak_t = live, ev.t_ns
        if ev.nbytes > 0:
            phase = _phase_at(ev.t_ns, phases)
            if phase is not None and live > phase_peaks.get(phase, -1):
                phase_peaks[phase] = live
    if baseline is None:  # no allocator event inside the window
        baseline = peak = live
    peak_phase = _phase_at(peak_t, phases) if peak_t is not None else None
    return GroundTruth(
        peak_bytes=peak,
        peak_phase=peak_phase,
        baseline_bytes=baseline,
        end_bytes=live,
        phase_peaks=phase_peaks,
        n_events=len(mem),
        n_timestamp_ties=ties,
    )


def measure_peak(
    path: str | Path,
    batch_size: int,
    mode: str = "train",
    optimizer: str = "adamw",
    steps: int = 2,
) -> GroundTruth:
    """Measure the live-bytes peak of ``steps`` training/inference steps of a model file."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    module = load_model_file(path)
    gc.collect()
    # Objects that survived the collection cannot be garbage created by the
    # model; freezing them makes the collection inside the window cheap
    # (a full collection costs ~0.2 s once transformers is imported).
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            _run_window(module, batch_size, mode, optimizer, steps)
    finally:
        if freeze:
            gc.unfreeze()
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None:
        raise RuntimeError("the profiler returned no results")
    return analyse(list(results.events()))


def main(argv: list[str] | None = None) -> int:
    """Print the ground truth of one model file as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_file")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--mode", choices=MODES, default="train")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    args = parser.parse_args(argv)
    print(measure_peak(args.model_file, args.batch_size, args.mode, args.optimizer).to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

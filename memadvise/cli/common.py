"""What every command shares: consoles, option types, and the one error-to-exit-code path."""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperCommand

from memadvise.cli.outputs import check_command_output
from memadvise.cli.usage import OneLineErrors
from memadvise.errors import MemadviseError, UsageError
from memadvise.model.limits import MAX_BATCH_SIZE, MAX_GPUS, MAX_SEQ_LEN
from memadvise.model.profile import Mode, OptimizerName
from memadvise.model.text import printable
from memadvise.reporters import Reporter, TableReporter

if TYPE_CHECKING:
    from memadvise.analyzer import Scenario
    from memadvise.model.profile import Profile

EXIT_INPUT_ERROR = 2
EXIT_INTERNAL_ERROR = 3

F = TypeVar("F", bound=Callable[..., Any])


REPORT_WIDTH = 120  # when output is a file or a pipe, rich would otherwise wrap at 80 columns


def stdout_console() -> Console:
    """The terminal's width; into a file or a pipe, $COLUMNS when set, else 120 columns. Markup is off:
    names from files print as they are."""
    import os

    console = Console(soft_wrap=False, markup=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(soft_wrap=False, width=REPORT_WIDTH, markup=False)
    return console


def stderr_console() -> Console:
    """Diagnostics: never wrapped, so paths and messages stay copyable."""
    return Console(stderr=True, soft_wrap=True, markup=False)


class DeviceChoice(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    meta = "meta"


class TargetDeviceChoice(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


BatchSizeOpt = Annotated[
    int,
    typer.Option(
        "--batch-size", "-b", min=1, max=MAX_BATCH_SIZE, help="Batch size passed to example_inputs()."
    ),
]
ModeOpt = Annotated[
    Mode,
    typer.Option(
        "--mode",
        "-m",
        help="train: forward, backward, optimizer step. inference: no_grad forward. "
        "generate: greedy generation with a KV cache (--new-tokens).",
    ),
]
OptimizerOpt = Annotated[OptimizerName, typer.Option("--optimizer", help="Optimizer of the training step.")]
DeviceOpt = Annotated[
    DeviceChoice | None,
    typer.Option(
        "--device",
        help="Where to run the steps (default: cuda if available, else cpu); meta traces fake.",
    ),
]
FakeOpt = Annotated[
    bool, typer.Option("--fake", metavar="", help="Trace fake on the meta device (same as --device meta).")
]
TargetDeviceOpt = Annotated[
    TargetDeviceChoice | None,
    typer.Option("--target-device", help="Whose kernels a fake trace follows (default: cuda)."),
]


ExpertLoadOpt = Annotated[
    str | None,
    typer.Option(
        "--expert-load",
        metavar="LOAD",
        help="Fake traces of mixture-of-experts models that loop over their experts: tokens per expert. "
        "uniform (default): tokens x top-k / experts each; worst: every token to the same top-k experts; "
        "skewed:F: the busiest expert gets fraction F of the routed rows (e.g. skewed:0.5), the rest "
        "share evenly. No effect on grouped experts, whose memory does not depend on routing.",
        show_default=False,
    ),
]


def check_expert_load(expert_load: str | None, where: str | None) -> None:
    """``--expert-load`` parses, and is given to a fake trace only (one-line UsageError otherwise)."""
    if expert_load is None:
        return
    from memadvise.model.expert_load import parse_expert_load

    parse_expert_load(expert_load)
    if where != "meta":
        raise UsageError("--expert-load is the routing assumption of a fake trace: add --fake")


class TrainLoop(str, Enum):
    tutorial = "tutorial"
    lean = "lean"


TrainLoopOpt = Annotated[
    TrainLoop,
    typer.Option(
        "--train-loop",
        help="tutorial: PyTorch's tutorial loop, the output and loss alive through step() and zero_grad(). "
        "lean: they are freed after backward().",
    ),
]


def chosen_device(device: DeviceChoice | None, fake: bool, target: TargetDeviceChoice | None) -> str | None:
    """The device to trace on, from --device, --fake and --target-device (checked for conflicts)."""
    if fake and device not in (None, DeviceChoice.meta):
        raise UsageError(
            f"--fake traces on the meta device; it cannot be combined with --device {device.value}"
        )
    name = "meta" if fake else (device.value if device else None)
    if target is not None and name != "meta":
        raise UsageError("--target-device applies to fake traces only; add --fake (or --device meta)")
    return name


MemoryLimitOpt = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        metavar="SIZE",
        help="Stop a real trace cleanly once memadvise's process holds more than SIZE of RAM, e.g. 8GiB "
        "(default: what the machine has available, less a margin). Fake traces need no memory.",
    ),
]
def cuda_visible() -> bool:
    """Whether a GPU may be there for torch, found without importing torch (which takes seconds): NVML sees
    an NVIDIA device, or a ROCm device node exists. Only a clear "no" lets the command line refuse early;
    torch has the last word."""
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if os.path.exists("/dev/kfd"):  # ROCm builds of torch call AMD GPUs cuda
        return True
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount()) > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return False


def precheck(target: str, device: str | None) -> None:
    """What can be checked before torch is imported: the model file's path (or the Hub model's config)
    and a cuda device."""
    from memadvise.capture.loader import check_model_path
    from memadvise.capture.targets import hub_name_config, is_model_target, is_named_target

    name = target.rpartition(":build_model")[0] or target
    if not is_model_target(name):
        check_model_path(target)
    elif is_named_target(name) and not name.startswith(("timm:", "torchvision:")):
        hub_name_config(name)  # from the local cache (or fetched alone): a clear error when it cannot be
    if device == "cuda" and not cuda_visible():
        raise UsageError("device cuda was asked for, but this machine has no CUDA device available to torch")


DebugOpt = Annotated[bool, typer.Option("--debug", metavar="", help="Show the full traceback of errors.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        metavar="TARGET",
        help="profile.json, model.py or model.py:factory (default: model of tool.memadvise, pyproject.toml).",
        show_default=False,
    ),
]
GpusOpt = Annotated[int, typer.Option(min=1, max=MAX_GPUS, help="GPUs per node for data-parallel training.")]
NodesOpt = Annotated[int, typer.Option(min=1, max=MAX_GPUS, help="Nodes (each with --gpus GPUs).")]
StrategyOpt = Annotated[
    str | None, typer.Option(help="ddp, zero1, zero2, zero3 or fsdp (default ddp with several GPUs).")
]
OffloadOpt = Annotated[
    str | None,
    typer.Option(help="Move to host memory: optimizer, or optimizer+params (ZeRO-Offload, FSDP CPUOffload)."),
]


def resolve_target(target: str | None, argument: str = "TARGET") -> str:
    """TARGET as given, or the model the nearest memadvise config names (see ``default_target``)."""
    if target is not None:
        return target
    from memadvise.check.config import default_target

    return default_target(Path.cwd(), argument)


SeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        min=1,
        max=MAX_SEQ_LEN,
        help="Sequence length (model files whose example_inputs take seq_len).",
    ),
]
TraceBatchSizeOpt = Annotated[
    int,
    typer.Option(
        "--trace-batch-size", min=1, max=MAX_BATCH_SIZE, help="Batch size a model file is traced at."
    ),
]


class TextFormat(str, Enum):
    """Formats of the estimate and plan reports."""

    table = "table"
    json = "json"


FormatOpt = Annotated[TextFormat, typer.Option("--format", "-f", help="table or json.")]
LoraOpt = Annotated[
    int | None,
    typer.Option("--lora", min=1, metavar="RANK", help="LoRA adapters of this rank on a frozen base model."),
]
LoraTargetsOpt = Annotated[
    str | None,
    typer.Option(
        "--lora-targets",
        help="Linear layers to adapt: module-name suffixes (q_proj,v_proj) or all-linear (the default).",
    ),
]
LoraDropoutOpt = Annotated[
    float, typer.Option("--lora-dropout", min=0.0, max=0.99, help="Dropout on the adapters' input.")
]


def lora_of(rank: int | None, targets: str | None, dropout: float) -> Any:
    """The ``Lora`` scenario of ``--lora``/``--lora-targets``/``--lora-dropout`` (``None`` without --lora)."""
    from memadvise.model.scenario import Lora

    if rank is None:
        if targets is not None or dropout:
            raise UsageError("--lora-targets and --lora-dropout need --lora RANK")
        return None
    return Lora.parse(rank, targets, dropout)


def help_text(text: str) -> str:
    """A command's help as rich should wrap it: the source keeps its lines short, but a line break inside a
    paragraph would otherwise show as one (mid-sentence, at every width). A ``\\b`` paragraph (the
    examples) keeps its lines."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs
    )


class _NoFlagMetavar:
    """``--help`` is a switch: no ``<bool>`` beside it (typer shows the type of every option)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Command(_NoFlagMetavar, TyperCommand):
    """The class of every memadvise command."""


class Group(_NoFlagMetavar, OneLineErrors):
    """The class of the memadvise command group: the parser's own usage errors as one line."""


def warn(message: str) -> None:
    """One warning line on stderr (the run goes on)."""
    print(f"memadvise: warning: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = EXIT_INPUT_ERROR) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    print(f"memadvise: error: {printable(message)}", file=sys.stderr)
    return typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn MemadviseError into one stderr line and exit code 2; other errors into exit code 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        try:
            check_command_output(kwargs)  # before anything runs: never write over an input
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except MemadviseError as exc:
            if debug:
                traceback.print_exc()
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as exc:  # a bug in memadvise, not the user's input
            if debug:
                traceback.print_exc()
            hint = "" if debug else " (run with --debug for the traceback)"
            raise fail(f"internal error: {type(exc).__name__}: {exc}{hint}", EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


#: Seconds between two progress lines when stderr is not a terminal (a CI log, a notebook, nohup).
PROGRESS_INTERVAL = 10.0


class ProgressLines:
    """Plain progress lines on stderr for long runs when there is no terminal to draw a bar on: nothing for
    the first :data:`PROGRESS_INTERVAL` seconds, then at most one line per interval, saying which step
    and phase runs and for how long the run has taken — so a log shows that a run is alive and where it is.
    """

    def __init__(self, message: str, steps: int, interval: float | None = None) -> None:
        import threading
        import time

        self.message = message
        self.steps = steps
        self.interval = PROGRESS_INTERVAL if interval is None else interval
        self.status = "building the model"
        self.printed = 0
        self._clock = time.monotonic
        self._start = self._last = self._clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="memadvise-progress", daemon=True)

    def __enter__(self) -> ProgressLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.printed and exc[0] is None:
            self._line(f"done in {self._clock() - self._start:.0f} s")

    def phase(self, phase: str, step: int) -> None:
        """The tracer's callback as each phase starts."""
        with self._lock:
            self.status = f"step {step + 1}/{self.steps} {phase}"
        self._maybe_print()

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, max(self.interval / 4, 0.01))):
            self._maybe_print()

    def _maybe_print(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last < self.interval:
                return
            self._last = now
            status = self.status
        self._line(f"{status} ({now - self._start:.0f} s so far)")

    def _line(self, text: str) -> None:
        self.printed += 1
        print(f"memadvise: {self.message}: {text}", file=sys.stderr, flush=True)


@contextmanager
def step_progress(
    message: str, steps: int, phases_per_step: int
) -> Iterator[Callable[[str, int], None] | None]:
    """A progress bar on stderr over the traced steps' phases when stderr is a terminal; plain lines
    (:class:`ProgressLines`) for long runs when it is not.

    Yields the callback the tracer calls as each phase starts.
    """
    console = stderr_console()
    if not console.is_terminal:
        with ProgressLines(message, steps) as lines:
            yield lines.phase
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    total = steps * phases_per_step
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} phases"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{message}: building the model", total=total)
        seen = 0

        def advance(phase: str, step: int) -> None:
            nonlocal seen
            bar.update(
                task, completed=min(seen, total), description=f"{message}: step {step + 1}/{steps} {phase}"
            )
            seen += 1

        yield advance
        bar.update(task, completed=total)


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs (only when stderr is a terminal)."""
    console = stderr_console()
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


BY_FORMULA = (OptimizerName.ADAMW_8BIT, OptimizerName.PAGED_ADAMW_8BIT)  # estimated, never traced


def load_or_profile(
    target: str,
    scenario: Scenario,
    trace_batch_size: int,
    mode: Mode,
    device: object,
    fake: bool,
    target_device: object,
    seq_len: int | None,
    fsdp: int | None = None,
    train_loop: TrainLoop = TrainLoop.tutorial,
    gpu: str | None = None,
    memory_limit: str | None = None,
    task: Any = None,
    image_size: int | None = None,
    scaling: bool = True,
    expert_load: str | None = None,
) -> tuple[Profile, Scenario]:
    """A saved profile (``*.json``) as it is, or a model file profiled for the scenario: precision and
    optimizer are traced when PyTorch runs them, and taken out of the scenario that remains."""
    from dataclasses import replace

    from memadvise.analyzer import Precision

    if target.endswith(".json"):
        if seq_len is not None or task is not None or image_size is not None:
            option = "--seq-len" if seq_len is not None else "--task" if task is not None else "--image-size"
            raise UsageError(f"{option} needs the model file: a profile holds the model it traced")
        refuse_trace_options(device, fake, target_device)
        from memadvise.model.profile import load_profile

        return load_profile(target), scenario

    where = chosen_device(device, fake, target_device)  # type: ignore[arg-type]
    check_expert_load(expert_load, where)
    precheck(target, where)
    from memadvise.api import profile_file  # torch: only when a model file is profiled

    traced_precision = "fp32"
    by_formula = (Precision.INT8, Precision.INT4, Precision.NF4)
    if scenario.precision is not None and scenario.precision not in by_formula:
        traced_precision = scenario.precision.value
        scenario = replace(scenario, precision=None)
    if scenario.precision is Precision.NF4:
        traced_precision = "bf16"  # QLoRA computes in bf16: trace that, quantise by formula
    traced_optimizer = OptimizerName.ADAMW
    if scenario.optimizer is not None and scenario.optimizer not in BY_FORMULA:
        traced_optimizer = scenario.optimizer
        scenario = replace(scenario, optimizer=None)
    fake_cuda = where == "meta" and getattr(target_device, "value", "cuda") == "cuda"
    phases = 3 if mode is Mode.TRAIN else 1
    with step_progress(f"Profiling {Path(target.rpartition(':')[0] or target).name}", 2, phases) as on_phase:
        profile = profile_file(
            target,
            batch_size=trace_batch_size,
            mode=mode.value,
            optimizer=traced_optimizer.value,
            device=where,
            target_device=target_device.value if target_device else None,  # type: ignore[attr-defined]
            precision=traced_precision,
            seq_len=seq_len,
            progress=on_phase,
            fsdp=fsdp,
            train_loop=train_loop.value,
            gpu=cuda_target(gpu) if fake_cuda else None,
            memory_limit=memory_limit,
            task=task.value if task is not None else None,
            image_size=image_size,
            scaling=scaling,
            warn=warn,
            expert_load=expert_load,
        )
    return profile, scenario


#: Options that only choose how a model file is traced, by parameter name.
TRACE_ONLY_OPTIONS = {
    "trace_batch_size": "--trace-batch-size",
    "train_loop": "--train-loop",
    "memory_limit": "--memory-limit",
    "expert_load": "--expert-load",
}


def refuse_typed_trace_options(ctx: Any, target: str) -> None:
    """On a saved profile, an option that only chooses how a model file is traced — typed on the command
    line, not left at its default — is an error, since it would be ignored."""
    if not target.endswith(".json") or ctx is None:
        return
    typed = [
        flag
        for name, flag in TRACE_ONLY_OPTIONS.items()
        if name in ctx.params and ctx.get_parameter_source(name).name == "COMMANDLINE"
    ]
    _refuse_on_a_saved_profile(typed)


def refuse_trace_options(device: object, fake: bool, target_device: object) -> None:
    """--fake, --device and --target-device choose how a model file is traced; a saved profile was
    traced already, so they would be ignored and the answer would not be the one asked for."""
    given = [
        name
        for name, value in (("--fake", fake), ("--device", device), ("--target-device", target_device))
        if value
    ]
    _refuse_on_a_saved_profile(given)


def _refuse_on_a_saved_profile(flags: list[str]) -> None:
    if flags:
        raise UsageError(
            f"{' and '.join(flags)} appl{'ies' if len(flags) == 1 else 'y'} only when tracing a model file; "
            "a saved profile was traced already (profile the model file again to change it)"
        )


def cuda_target(gpu: str | None) -> Any:
    """The fake CUDA trace's target for a GPU catalog name (``None``: memadvise's default target)."""
    if gpu is None:
        return None
    from memadvise.capture.cuda_target import CudaTarget
    from memadvise.planner.gpus import find_gpu

    spec = find_gpu(gpu)
    return CudaTarget(spec.name, spec.compute_capability_tuple, assumed=False)


def module_names(values: list[str] | None) -> tuple[str, ...]:
    """Repeated and comma-separated module names; ``none`` means no module."""
    names: list[str] = []
    for value in values or []:
        names.extend(part.strip() for part in value.split(",") if part.strip())
    if names == ["none"]:
        return ()
    return tuple(names)


def show(
    reporter: Reporter, result: object, output: Path | None, written: str, *, highlight: bool | None = None
) -> None:
    """Show ``result`` on stdout — the table reporter's rich tables on the console, any other reporter's
    text as it is — or write the reporter's text to ``output`` and say ``wrote {written} to {output}`` on
    stderr."""
    if output is None and isinstance(reporter, TableReporter):
        stdout_console().print(reporter.renderable(result), highlight=highlight)
        return
    text = reporter.render(result)
    if output is None:
        typer.echo(printable(text.rstrip("\n"), keep_newlines=True))
        return
    try:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    stderr_console().print(f"wrote {written} to {output}", highlight=False, markup=False)

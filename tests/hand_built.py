"""Results built by hand, without running a model: a one-layer profile (with its allocation program)
and a check of it, for tests that need one result of each kind."""

from __future__ import annotations

from pathlib import Path

from memadvise.check import BaselineEntry, CheckResult, CheckRun, CheckTarget, Tolerance, compare
from memadvise.model.generation import Generation, KVLayout
from memadvise.model.profile import CATEGORIES, Holder, LayerStats, Profile, Timeline
from memadvise.model.program import SCALING_ASSUMED, SCALING_TRACED, ParamInfo, Program

C = {c: k for k, c in enumerate(CATEGORIES)}


def hand_built_program(
    sizes: tuple[int, ...] = (400, 8, 40, 60, 400), per_sample: tuple[float, ...] = ()
) -> Program:
    """A parameter, an input, one activation, one temporary and the parameter's gradient (``sizes``).

    Events: 0 activation alloc, 1 temporary alloc, 2 temporary free, 3 gradient alloc, 4 activation
    free; the gradient stays to the end. ``per_sample`` makes its batch scaling traced.
    """
    return Program(
        batch_size=2,
        n_events=5,
        modules=("fc", "<inputs>"),
        ops=("", "aten::relu", "aten::mm", "MmBackward0"),
        dtypes=("", "float32"),
        alloc=(-1, -1, 0, 1, 3),
        free=(-1, -1, 4, 2, -1),
        size=sizes,
        category=(C["parameters"], C["inputs"], C["activations"], C["temporaries"], C["gradients"]),
        module=(0, 1, 0, 0, 0),
        op=(0, 0, 1, 2, 3),
        dtype=(1, 1, 1, 0, 1),
        phases=(("forward", 0, 0, 3), ("backward", 0, 3, 5)),
        forward_calls=((0, 0, 0, 3),),
        backward_nodes=((0, 0, 3, 5),),
        per_sample=per_sample,
        scaling=SCALING_TRACED if per_sample else SCALING_ASSUMED,
        parameters=(ParamInfo(module="fc", name="weight", shape=(10, 10), dtype="float32", itemsize=4),),
    )


def hand_built_profile(peak: int = 908, param_bytes: int = 400) -> Profile:
    """A one-layer model with a program (a parameter, an input, an activation, a temporary and the
    gradient), its layer rows, the holders of its peak and a short timeline."""
    program = hand_built_program((param_bytes, 8, 40, 60, param_bytes))
    return Profile(
        model="toy",
        batch_size=2,
        mode="train",
        device="cpu",
        optimizer="sgd",
        peak_bytes=peak,
        peak_phase="backward",
        peak_step=0,
        peak_op="MmBackward0",
        peak_module="fc",
        peak_breakdown={"parameters": param_bytes, "inputs": 8, "activations": 40, "gradients": param_bytes},
        param_bytes=param_bytes,
        buffer_bytes=0,
        input_bytes=8,
        grad_bytes=param_bytes,
        optimizer_state_bytes=0,
        activation_bytes=40,
        steps=1,
        layers=(
            LayerStats(name="", type="Toy", calls=1, output_bytes=40),
            LayerStats(name="fc", type="Linear", calls=1, param_bytes=param_bytes, grad_bytes=param_bytes),
        ),
        peak_holders=(
            Holder(category="parameters", module="fc", bytes=param_bytes),
            Holder(category="gradients", module="fc", bytes=param_bytes),
            Holder(category="activations", module="fc", bytes=40),
            Holder(category="inputs", module="<inputs>", bytes=8),
        ),
        timeline=Timeline(
            index=(0, 1, 2, 3),
            step=(0, 0, 0, 0),
            phase=("forward", "forward", "backward", "backward"),
            op=("aten::relu", "aten::mm", "MmBackward0", "MmBackward0"),
            module=("fc", "fc", "fc", "fc"),
            bytes={
                "parameters": (param_bytes,) * 4,
                "inputs": (8,) * 4,
                "activations": (40, 40, 40, 0),
                "gradients": (0, 0, param_bytes, param_bytes),
            },
        ),
        program=program,
    )


def check_run() -> CheckRun:
    """A check of the toy model whose peak and parameters grew past a 2% tolerance."""
    target = CheckTarget(Path("toy.py"), "build_model", 2, "train", "sgd", None, Tolerance.parse("2%"))
    before, after = hand_built_profile(), hand_built_profile(peak=1200, param_bytes=500)
    old = BaselineEntry.from_profile(target, before, Path("."))
    new = BaselineEntry.from_profile(target, after, Path("."))
    result = CheckResult(target, new, old, tuple(compare(old, after, target.tolerance)))
    return CheckRun(Path("memory-baseline.json"), (result,))


def hand_built_generation() -> Generation:
    """Planted figures: weights 1000 B, a 10-token prompt, 2 bytes per cache value, a cache of
    2·1·1·4·2 = 16 B per token and sequence; 4 forward passes at batch 1."""
    layout = KVLayout(layers=1, heads=1, kv_heads=1, head_dim=4)
    kv = [16 * (10 + k) for k in range(4)]
    starts = [1000] + [1000 + kv[k - 1] for k in range(1, 4)]
    peaks = [starts[0] + kv[0] + 300] + [starts[k] + 20 for k in range(1, 4)]
    return Generation(
        prompt_len=10,
        new_tokens=4,
        cache="dynamic",
        source="model.generate",
        layout=layout,
        kv_itemsize=2,
        kv_cache_bytes=16 * 14,
        kv_traced_bytes=kv[-1],
        kv_traced_tokens=13,
        weights_bytes=1000,
        weights_itemsize=4,
        step_ctx=tuple(10 + k for k in range(4)),
        step_start=tuple(starts),
        step_peak=tuple(peaks),
        step_kv=tuple(kv),
    )

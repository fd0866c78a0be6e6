"""Hand-built profiles for the report tests: deterministic, no model run, consistent with themselves.

``toy_profile()`` is a small two-block network traced over two training steps. Its timeline, peak,
breakdown and holders agree with each other (the holders sum to the breakdown, which is the timeline's
highest sample), so every picture of it can be checked against the numbers it was built from.
``large_profile()`` has the shape of a 7B-parameter decoder (32 blocks, the timeline's 2000 samples), for
size checks of the HTML report.
"""

from __future__ import annotations

from memadvise import Holder, LayerStats, Profile, Timeline

KiB = 2**10
MiB = 2**20

# (phase, samples) per step; the peak falls in the backward pass of the second step.
_PHASES = (("forward", 14), ("backward", 10), ("optimizer", 8))


def _toy_timeline() -> Timeline:
    index: list[int] = []
    step: list[int] = []
    phase: list[str] = []
    op: list[str] = []
    module: list[str] = []
    columns: dict[str, list[int]] = {
        c: []
        for c in (
            "parameters",
            "buffers",
            "inputs",
            "activations",
            "gradients",
            "optimizer_state",
            "temporaries",
        )
    }
    n = 0
    for s in range(2):
        for name, count in _PHASES:
            for k in range(count):
                index.append(n * 3 + (k % 2))  # uneven gaps, as thinned traces have
                n += 1
                step.append(s)
                phase.append(name)
                columns["parameters"].append(8 * MiB)
                columns["buffers"].append(64 * KiB)
                columns["inputs"].append(256 * KiB)
                if name == "forward":
                    columns["activations"].append((k + 1) * 2 * MiB)
                    columns["gradients"].append(0)
                    columns["temporaries"].append((k % 3) * MiB)
                    op.append("aten::addmm" if k % 2 else "aten::gelu")
                    module.append(f"blocks.{k % 2}.mlp")
                elif name == "backward":
                    columns["activations"].append(max(0, 28 * MiB - k * 3 * MiB))
                    columns["gradients"].append((k + 1) * 800 * KiB)
                    columns["temporaries"].append(max(0, 6 - abs(k - 2)) * MiB if s == 1 else 2 * MiB)
                    op.append("AddmmBackward0" if k % 2 else "GeluBackward0")
                    module.append("<autograd>")
                else:
                    columns["activations"].append(0)
                    columns["gradients"].append(8 * MiB if k < count - 1 else 0)
                    columns["temporaries"].append(KiB * (k + 1))
                    op.append("aten::_foreach_add_")
                    module.append("<optimizer>")
                columns["optimizer_state"].append(
                    16 * MiB if s == 1 or (name == "optimizer" and k > 1) else 0
                )
    return Timeline(
        index=tuple(index),
        step=tuple(step),
        phase=tuple(phase),
        op=tuple(op),
        module=tuple(module),
        bytes={c: tuple(v) for c, v in columns.items()},
    )


_LAYERS = (
    ("", "ToyNet"),
    ("embed", "Embedding"),
    ("blocks", "ModuleList"),
    ("blocks.0", "Block"),
    ("blocks.0.attn", "Attention"),
    ("blocks.0.mlp", "MLP"),
    ("blocks.1", "Block"),
    ("blocks.1.attn", "Attention"),
    ("blocks.1.mlp", "MLP"),
    ("dropout", "Dropout"),
    ("head", "Linear"),
)

# Share of each category's bytes at the peak, by module (the last module of a category takes the rest).
_EVEN = (("embed", 0.25), ("blocks.0.attn", 0.125), ("blocks.0.mlp", 0.25), ("blocks.1.attn", 0.125))
_HOLDER_SHARES: dict[str, tuple[tuple[str, float], ...]] = {
    "parameters": (*_EVEN, ("blocks.1.mlp", 0.125), ("head", 1.0)),
    "buffers": (("embed", 1.0),),
    "inputs": (("<inputs>", 1.0),),
    "activations": (
        ("blocks.0.attn", 0.2),
        ("blocks.0.mlp", 0.3),
        ("blocks.1.attn", 0.2),
        ("blocks.1.mlp", 1.0),
    ),
    "gradients": (("blocks.1.mlp", 0.5), ("head", 1.0)),
    "optimizer_state": (*_EVEN, ("blocks.1.mlp", 0.125), ("head", 1.0)),
    "temporaries": (("<autograd>", 0.75), ("", 1.0)),
}


def _holders(breakdown: dict[str, int]) -> tuple[Holder, ...]:
    held: dict[tuple[str, str], int] = {}
    for category, shares in _HOLDER_SHARES.items():
        left = breakdown.get(category, 0)
        for k, (module, share) in enumerate(shares):
            nbytes = left if k == len(shares) - 1 else int(breakdown[category] * share)
            left -= nbytes
            if nbytes:
                held[(category, module)] = nbytes
    return tuple(
        Holder(category=c, module=m, bytes=n) for (c, m), n in sorted(held.items(), key=lambda kv: -kv[1])
    )


def toy_profile(model: str = "toy") -> Profile:
    """A small, self-consistent two-step training profile (peak in the backward pass of step 2)."""
    timeline = _toy_timeline()
    totals = timeline.totals()
    peak = totals.index(max(totals))
    breakdown = {c: col[peak] for c, col in timeline.bytes.items()}
    holders = _holders(breakdown)
    own: dict[str, dict[str, int]] = {}
    for h in holders:
        own.setdefault(h.module, {})[h.category] = h.bytes
    layers = tuple(
        LayerStats(
            name=name,
            type=type_name,
            calls=0 if type_name == "ModuleList" else 1,
            param_bytes=own.get(name, {}).get("parameters", 0),
            buffer_bytes=own.get(name, {}).get("buffers", 0),
            grad_bytes=own.get(name, {}).get("parameters", 0),
            optimizer_state_bytes=2 * own.get(name, {}).get("parameters", 0),
            activation_bytes=own.get(name, {}).get("activations", 0),
            output_bytes=512 * KiB if type_name not in ("ModuleList", "Dropout") else 0,
            forward_temp_bytes=KiB * (k + 1),
            backward_temp_bytes=2 * KiB * (k + 1),
        )
        for k, (name, type_name) in enumerate(_LAYERS)
    )
    return Profile(
        model=model,
        batch_size=8,
        mode="train",
        device="cpu",
        optimizer="adamw",
        peak_bytes=sum(breakdown.values()),
        peak_phase=timeline.phase[peak],
        peak_step=timeline.step[peak],
        peak_op=timeline.op[peak],
        peak_module=timeline.module[peak],
        peak_breakdown=breakdown,
        param_bytes=8 * MiB,
        buffer_bytes=64 * KiB,
        input_bytes=256 * KiB,
        grad_bytes=8 * MiB,
        optimizer_state_bytes=16 * MiB,
        activation_bytes=28 * MiB,
        steps=2,
        layers=layers,
        peak_holders=holders,
        timeline=timeline,
        torch_version="2.14.1",
        created="2026-01-02T03:04:05Z",
    )


def large_profile(samples: int = 2000, blocks: int = 32) -> Profile:
    """The shape of a 7B decoder's profile: 32 blocks of 11 modules, a full 2000-sample timeline."""
    GiB = 2**30
    names: list[tuple[str, str]] = [("", "LlamaForCausalLM"), ("model", "LlamaModel")]
    names.append(("model.embed_tokens", "Embedding"))
    names.append(("model.layers", "ModuleList"))
    for b in range(blocks):
        p = f"model.layers.{b}"
        names += [
            (p, "LlamaDecoderLayer"),
            (f"{p}.self_attn", "LlamaAttention"),
            (f"{p}.self_attn.q_proj", "Linear"),
            (f"{p}.self_attn.k_proj", "Linear"),
            (f"{p}.self_attn.v_proj", "Linear"),
            (f"{p}.self_attn.o_proj", "Linear"),
            (f"{p}.mlp", "LlamaMLP"),
            (f"{p}.mlp.gate_proj", "Linear"),
            (f"{p}.mlp.up_proj", "Linear"),
            (f"{p}.mlp.down_proj", "Linear"),
            (f"{p}.mlp.act_fn", "SiLU"),
            (f"{p}.input_layernorm", "LlamaRMSNorm"),
            (f"{p}.post_attention_layernorm", "LlamaRMSNorm"),
        ]
    names += [("model.norm", "LlamaRMSNorm"), ("lm_head", "Linear")]
    params = 13 * GiB
    per_layer = params // len(names)
    layers = tuple(
        LayerStats(
            name=n,
            type=t,
            calls=1,
            param_bytes=per_layer,
            grad_bytes=per_layer,
            optimizer_state_bytes=2 * per_layer,
            activation_bytes=per_layer // 3,
            output_bytes=per_layer // 7,
            forward_temp_bytes=per_layer // 5,
            backward_temp_bytes=per_layer // 4,
        )
        for n, t in names
    )
    half = samples // 2
    step = tuple(0 if k < half else 1 for k in range(samples))
    phases: list[str] = []
    acts: list[int] = []
    grads: list[int] = []
    for k in range(samples):
        j = k % half  # position inside the step: forward 40%, backward 35%, optimizer 25%
        if j < half * 40 // 100:
            phases.append("forward")
            acts.append(j * 64 * 2**20)
            grads.append(0)
        elif j < half * 75 // 100:
            phases.append("backward")
            top = (half * 40 // 100) * 64 * 2**20
            acts.append(max(0, top - (j - half * 40 // 100) * 92 * 2**20))
            grads.append(params * (j - half * 40 // 100) // (half * 35 // 100))
        else:
            phases.append("optimizer")
            acts.append(0)
            grads.append(params)
    timeline = Timeline(
        index=tuple(range(0, samples * 5, 5)),
        step=step,
        phase=tuple(phases),
        op=tuple(f"aten::op_{k % 17}" for k in range(samples)),
        module=tuple(names[k % len(names)][0] for k in range(samples)),
        bytes={
            "parameters": (params,) * samples,
            "activations": tuple(acts),
            "gradients": tuple(grads),
            "optimizer_state": tuple(
                2 * params if s or p == "optimizer" else 0 for s, p in zip(step, phases, strict=True)
            ),
            "temporaries": tuple((k * 7919 % 1000) * 2**20 for k in range(samples)),
        },
    )
    totals = timeline.totals()
    peak = totals.index(max(totals))
    breakdown = {c: col[peak] for c, col in timeline.bytes.items()}
    holders = tuple(
        Holder(category=c, module=n, bytes=breakdown[c] // len(names))
        for c in breakdown
        for n, _ in names
        if breakdown[c]
    )
    return Profile(
        model="llama-7b-shaped",
        batch_size=1,
        mode="train",
        device="cuda",
        optimizer="adamw",
        peak_bytes=sum(breakdown.values()),
        peak_phase=timeline.phase[peak],
        peak_step=timeline.step[peak],
        peak_op=timeline.op[peak],
        peak_module=timeline.module[peak],
        peak_breakdown=breakdown,
        param_bytes=params,
        buffer_bytes=0,
        input_bytes=0,
        grad_bytes=params,
        optimizer_state_bytes=2 * params,
        activation_bytes=max(acts),
        steps=2,
        layers=layers,
        peak_holders=holders,
        timeline=timeline,
        torch_version="2.14.1",
        created="2026-01-02T03:04:05Z",
    )


def spiky_timeline(n: int, peak_at: int) -> Timeline:
    """``n`` samples of a sawtooth with one spike at ``peak_at``."""
    temps = [(k % 50) * 10 for k in range(n)]
    temps[peak_at] = 10_000
    return Timeline(
        index=tuple(range(0, 2 * n, 2)),
        step=tuple(0 if k < n // 2 else 1 for k in range(n)),
        phase=tuple("forward" if (k % (n // 2)) < n // 4 else "backward" for k in range(n)),
        op=("aten::mm",) * n,
        module=("m",) * n,
        bytes={"parameters": (1000,) * n, "temporaries": tuple(temps), "gradients": (0,) * n},
    )

"""Per-GPU memory of model states under data parallelism: DDP, ZeRO stages 1–3 and FSDP.

The accounting follows the ZeRO paper (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
Trillion Parameter Models", SC 2020, section 5 and figure 1). With Ψ parameters trained with
mixed-precision Adam, each of N data-parallel GPUs holds 2Ψ bytes of fp16 parameters, 2Ψ of fp16
gradients and KΨ of optimizer states, K = 12 (fp32 master parameters, momentum and variance):

* DDP (the paper's baseline) replicates everything: (2 + 2 + K)Ψ;
* ZeRO-1 (P_os) partitions the optimizer states: 2Ψ + 2Ψ + KΨ/N;
* ZeRO-2 (P_os+g) the gradients too: 2Ψ + (2 + K)Ψ/N;
* ZeRO-3 (P_os+g+p) the parameters too: (2 + 2 + K)Ψ/N. PyTorch's FSDP with ``FULL_SHARD`` shards the
  same three, so ``fsdp`` is accounted as ZeRO-3.

Rather than fixing 2/2/12 bytes per parameter, :func:`shard_model_states` takes the byte counts
memadvise measured or estimated for the user's own precision and optimizer: ``param_bytes``,
``grad_bytes``, ``optimizer_state_bytes`` and, for mixed precision, ``master_param_bytes`` (the fp32
copy, which the paper counts inside K and which ZeRO-1 shards with the optimizer states). A sharded part
is divided by N rounding up, as each rank holds one (padded) shard of a flat buffer.

What is not in these figures: activations (they do not shrink with data parallelism), the transient
all-gathered parameters of ZeRO-3/FSDP (see :func:`fsdp_unsharded_peak_bytes`), and the communication
buffers of ZeRO implementations (DeepSpeed's ``reduce_bucket_size`` / ``allgather_bucket_size``, 5e8
elements each by default, are bounded transients that depend on its configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

from memadvise.errors import UsageError
from memadvise.model.scenario import Strategy, parse_strategy

__all__ = [
    "ShardedStates",
    "Strategy",
    "fsdp_unsharded_peak_bytes",
    "parse_strategy",
    "shard_model_states",
]


# Which model states each strategy shards (the others are replicated on every GPU).
_SHARDED: dict[Strategy, tuple[str, ...]] = {
    Strategy.DDP: (),
    Strategy.ZERO1: ("optimizer_state", "master_params"),
    Strategy.ZERO2: ("optimizer_state", "master_params", "grads"),
    Strategy.ZERO3: ("optimizer_state", "master_params", "grads", "params"),
    Strategy.FSDP: ("optimizer_state", "master_params", "grads", "params"),
}

_NOTES: dict[Strategy, str] = {
    Strategy.DDP: ("DDP replicates parameters, gradients and optimizer states on every GPU"),
    Strategy.ZERO1: "ZeRO-1 (P_os) shards the optimizer states and master weights over {n} GPUs",
    Strategy.ZERO2: "ZeRO-2 (P_os+g) shards optimizer states, master weights and gradients over {n} GPUs",
    Strategy.ZERO3: (
        "ZeRO-3 (P_os+g+p) shards optimizer states, master weights, gradients and parameters over {n} GPUs; "
        "each layer's parameters are all-gathered while it runs (not included)"
    ),
    Strategy.FSDP: (
        "FSDP (FULL_SHARD, accounted as ZeRO-3) shards parameters, gradients, optimizer states and master "
        "weights over {n} GPUs; each wrapped unit's parameters are all-gathered while it runs (not included)"
    ),
}


@dataclass(frozen=True)
class ShardedStates:
    """Model-state bytes one GPU holds under a strategy.

    ``bucket_bytes`` is DDP's flat gradient buckets (see :func:`shard_model_states`); ``total_bytes`` sums
    every field. ``sharded`` names the parts divided over the GPUs, ``note`` says in words what was done.
    """

    strategy: Strategy
    gpus: int
    param_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    master_param_bytes: int
    bucket_bytes: int
    total_bytes: int
    sharded: tuple[str, ...]
    note: str


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def shard_model_states(
    param_bytes: int,
    grad_bytes: int,
    optimizer_state_bytes: int,
    *,
    gpus: int,
    strategy: str | Strategy,
    master_param_bytes: int = 0,
    gradient_as_bucket_view: bool = False,
) -> ShardedStates:
    """Per-GPU bytes of parameters, gradients, optimizer states and master weights under ``strategy``.

    Inputs are the whole model's bytes as one GPU would hold them without sharding. Sharded parts are
    divided by ``gpus`` rounding up; the others are kept whole.

    DDP's gradient buckets: ``DistributedDataParallel`` packs gradients into flat buckets (25 MiB each
    by default, ``bucket_cap_mb``) to all-reduce them. With ``gradient_as_bucket_view=False`` — PyTorch's
    default — the buckets are separate tensors that the gradients are copied into, so the buckets hold a
    second copy of every gradient for the whole run: ``bucket_bytes = grad_bytes``. With
    ``gradient_as_bucket_view=True`` the ``.grad`` tensors are views into the buckets and there is no
    copy. The ZeRO paper's baseline ignores the buckets, which matches ``gradient_as_bucket_view=True``.
    The ZeRO/FSDP strategies get no bucket term (their reduce-scatter buffers are transient).

    Raises UsageError for an unknown strategy, fewer than one GPU, or a negative byte count.
    """
    strat = parse_strategy(strategy)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise UsageError(f"the number of GPUs must be a whole number of at least 1, not {gpus!r}")
    sizes = {
        "params": param_bytes,
        "grads": grad_bytes,
        "optimizer_state": optimizer_state_bytes,
        "master_params": master_param_bytes,
    }
    for name, value in sizes.items():
        if value < 0:
            raise UsageError(f"{name} bytes cannot be negative ({value})")
    sharded = _SHARDED[strat]
    per_gpu = {name: _ceil_div(value, gpus) if name in sharded else value for name, value in sizes.items()}
    buckets = grad_bytes if strat is Strategy.DDP and not gradient_as_bucket_view else 0
    note = _NOTES[strat].format(n=gpus)
    if strat is Strategy.DDP:
        note += (
            "; its gradient buckets hold a second copy of the gradients (gradient_as_bucket_view=False)"
            if buckets
            else "; gradients are views into its buckets (gradient_as_bucket_view=True), no extra copy"
        )
    return ShardedStates(
        strategy=strat,
        gpus=gpus,
        param_bytes=per_gpu["params"],
        grad_bytes=per_gpu["grads"],
        optimizer_state_bytes=per_gpu["optimizer_state"],
        master_param_bytes=per_gpu["master_params"],
        bucket_bytes=buckets,
        total_bytes=sum(per_gpu.values()) + buckets,
        sharded=sharded,
        note=note,
    )


def fsdp_unsharded_peak_bytes(largest_unit_param_bytes: int, prefetch: int = 1) -> int:
    """Transient bytes of all-gathered (unsharded) parameters under ZeRO-3/FSDP.

    A ZeRO-3/FSDP rank holds only its shard of each parameter; before a wrapped unit (an FSDP module, a
    transformer block, say) runs, its full parameters are all-gathered and freed again after. With
    prefetching (FSDP's ``forward_prefetch`` / ``BackwardPrefetch.BACKWARD_PRE``, DeepSpeed's
    ``stage3_prefetch_bucket_size``) the next ``prefetch`` units are gathered while the current one
    computes. The worst case is the largest unit in flight together with as many units as large:
    ``largest_unit_param_bytes * (1 + prefetch)``. ``prefetch=0`` is no prefetching.

    Not included: in backward the unit's unsharded gradients also exist briefly before the
    reduce-scatter (about one more unit's parameter bytes in the gradient dtype).
    """
    if largest_unit_param_bytes < 0:
        raise UsageError(f"unit parameter bytes cannot be negative ({largest_unit_param_bytes})")
    if prefetch < 0:
        raise UsageError(f"prefetch must be 0 or more units, not {prefetch}")
    return largest_unit_param_bytes * (1 + prefetch)

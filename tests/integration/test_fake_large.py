"""Fake tracing of the Llama-2-7B-shaped sample: nothing real is allocated, and the figures agree with
the closed-form accounting: 16 bytes per parameter for fp32 AdamW training, and the activations that
autograd saves in each operator of a Llama decoder layer with eager attention, summed by hand below
(the same sum agrees to the byte with a real trace of a small Llama)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "sample_models" / "llama2_7b.py"
CHILD = """
import json, resource, sys
import memadvise
prof = memadvise.profile_file(sys.argv[1], batch_size=1, device="meta", scaling=False)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"profile": prof.to_dict(), "rss": rss}))
"""
SEQ, LAYERS, HIDDEN, HEADS, INTERMEDIATE, VOCAB = 2048, 32, 4096, 32, 11008, 32000


@pytest.fixture(scope="module")
def traced() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(MODEL)], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_nothing_is_allocated_for_real(traced: dict[str, Any]) -> None:
    prof = traced["profile"]
    params = prof["param_bytes"] / 2**30
    print(f"max RSS {traced['rss'] / 2**30:.2f} GiB for a model whose parameters take {params:.1f} GiB")
    assert traced["rss"] < 2 * 10**9
    assert traced["rss"] < prof["param_bytes"] / 10


def test_parameter_gradient_and_adam_state_match_16_bytes_per_parameter(traced: dict[str, Any]) -> None:
    prof = traced["profile"]
    n_params = prof["param_bytes"] // 4
    closed_form = 16 * n_params
    ours = prof["param_bytes"] + prof["grad_bytes"] + prof["optimizer_state_bytes"]
    error = (ours - closed_form) / closed_form
    print(f"params + grads + AdamW state: {ours:,} B vs 16 B/param {closed_form:,} B ({100 * error:+.4f}%)")
    # AdamW's 4-byte step counters live on the host, not on the (CUDA) target: at most a few KB.
    assert 0 <= ours - closed_form < 4 * 1000


def llama_activation_bytes(
    batch: int, seq: int, hidden: int, heads: int, intermediate: int, vocab: int, layers: int, itemsize: int
) -> int:
    """Bytes autograd keeps for backward at the end of a LlamaForCausalLM forward pass (eager attention,
    no dropout, one dtype), counted operator by operator. Per decoder layer, in elements:

    * each RMSNorm (two): its input and the normalised input (``b·s·h`` each) and ``rsqrt`` (``b·s``);
      its output, saved by the projections that read it (``b·s·h``);
    * attention: the rotated query and key (``cat``) and the value copy that ``matmul`` saves
      (``b·s·h`` each), the softmax output (``a·b·s²``), the output made contiguous for ``o_proj``
      (``b·s·h``);
    * MLP: the gate projection, its SiLU, the up projection and their product (``b·s·i`` each).

    Once per model: the rotary ``cos`` and ``sin`` (``s·h/a`` each, shared by the batch), the final norm
    and its output, and the loss's ``log_softmax`` output (``b·s·V``).
    """
    b, s, h, a, i = batch, seq, hidden, heads, intermediate
    per_layer = 2 * (2 * b * s * h + b * s) + 2 * b * s * h + 4 * b * s * h + a * b * s * s + 4 * b * s * i
    once = 2 * s * (h // a) + (2 * b * s * h + b * s) + b * s * h + b * s * vocab
    return (layers * per_layer + once) * itemsize


def test_activations_match_the_closed_form(traced: dict[str, Any]) -> None:
    prof = traced["profile"]
    closed_form = llama_activation_bytes(1, SEQ, HIDDEN, HEADS, INTERMEDIATE, VOCAB, LAYERS, itemsize=4)
    ours = prof["activation_bytes"]
    # Korthikanti et al. 2022, eq. 2, for comparison only: s*b*h*(34 + 5*a*s/h) 16-bit bytes per layer of
    # a GPT block (GeLU MLP of 4h, dropout masks); doubled for fp32.
    korthikanti = LAYERS * SEQ * HIDDEN * (34 + 5 * HEADS * SEQ / HIDDEN) * 2 * 2
    print(
        f"activations saved at end of forward {ours:,} B vs closed form {closed_form:,} B "
        f"({ours - closed_form:+,} B); Korthikanti's GPT estimate {korthikanti / 2**30:.1f} GiB"
    )
    # What is left is the loss's bookkeeping (shifted labels, scalars) in 512-byte CUDA blocks.
    assert 0 <= ours - closed_form < 64 * 1024


def test_the_closed_form_is_what_a_real_trace_of_a_small_llama_saves() -> None:
    """The closed form above, checked on a Llama small enough to run for real on the CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import memadvise

    b, s, h, a, i, vocab, layers = 2, 32, 64, 4, 172, 1000, 2
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=h,
        intermediate_size=i,
        num_hidden_layers=layers,
        num_attention_heads=a,
        num_key_value_heads=a,
        max_position_embeddings=s,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (b, s))
    prof = memadvise.profile_model(LlamaForCausalLM(config), {"input_ids": ids, "labels": ids}, batch_size=b)
    closed_form = llama_activation_bytes(b, s, h, a, i, vocab, layers, itemsize=4)
    print(f"small Llama: memadvise {prof.activation_bytes:,} B, closed form {closed_form:,} B")
    # The loss's shifted labels (int64, b·s) and its total weight (4 bytes) are the rest.
    assert prof.activation_bytes - closed_form == b * s * 8 + 4

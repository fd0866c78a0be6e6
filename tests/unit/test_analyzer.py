"""The analyzer on hand-built profiles: replay, batch scaling, levers' formulas, scenario parsing."""

from __future__ import annotations

import json
import math

import pytest
from hand_built import hand_built_program

from memadvise.analyzer import Precision, PruneKind, Pruning, Scenario, estimate
from memadvise.analyzer.optimizers import state_bytes
from memadvise.analyzer.precision import quantized_bytes
from memadvise.errors import UsageError
from memadvise.model.profile import CATEGORIES, OptimizerName, Profile
from memadvise.model.program import SCALING_TRACED, ParamInfo, Program, with_scaling

C = {c: k for k, c in enumerate(CATEGORIES)}


_program = hand_built_program


def _profile(program: Program, **extra: object) -> Profile:
    fields = dict(
        model="toy",
        batch_size=2,
        mode="train",
        device="cpu",
        optimizer="sgd",
        peak_bytes=908,
        peak_phase="forward",
        peak_step=0,
        peak_op="aten::mm",
        peak_module="fc",
        peak_breakdown={},
        param_bytes=400,
        buffer_bytes=0,
        input_bytes=8,
        grad_bytes=400,
        optimizer_state_bytes=0,
        activation_bytes=40,
        steps=1,
        program=program,
    )
    fields.update(extra)
    return Profile(**fields)  # type: ignore[arg-type]


def test_replay_of_an_unchanged_profile_is_its_peak() -> None:
    # live: 408 → +40 → +60 (508, peak) → -60 → +400 (848) → -40: the gradient moment is higher.
    result = estimate(_profile(_program()))
    assert result.peak_bytes == 408 + 40 + 400
    assert result.peak_phase == "backward"
    assert sum(result.peak_breakdown.values()) == result.peak_bytes
    assert result.change_bytes == result.peak_bytes - 908


def test_batch_scaling_is_affine_per_block() -> None:
    program = _program(per_sample=(0, 4, 20, 30, 0))
    result = estimate(_profile(program), Scenario(batch_size=10))
    # input 8+4*8, activation 40+20*8; the temporary (60+30*8=300) has died before the gradient.
    assert result.input_bytes == 40
    assert result.peak_bytes == max(400 + 40 + 200 + 300, 400 + 40 + 200 + 400)


def test_batch_scaling_assumed_without_a_second_trace_is_proportional() -> None:
    result = estimate(_profile(_program()), Scenario(batch_size=4))
    assert result.input_bytes == 16
    assert result.activation_bytes == 80
    assert any("assumed" in note for note in result.notes)


def test_pure_bf16_halves_floating_blocks_only() -> None:
    program = _program()
    program = Program(**{**program.__dict__, "dtype": (1, 0, 1, 0, 1), "dtypes": ("", "float32")})
    int_input = Program(**{**program.__dict__, "dtypes": ("", "float32", "int64"), "dtype": (1, 2, 1, 0, 1)})
    result = estimate(_profile(int_input), Scenario(precision=Precision.BF16))
    assert result.param_bytes == 200
    assert result.input_bytes == 8  # int64 ids keep their width
    assert result.grad_bytes == 200


def test_optimizer_state_formulas() -> None:
    matrix = ParamInfo(module="fc", name="weight", shape=(3, 4, 5), dtype="float32", itemsize=4)
    vector = ParamInfo(module="fc", name="bias", shape=(5,), dtype="float32", itemsize=4)
    n = 60
    assert state_bytes(OptimizerName.SGD, matrix, True) == 0
    assert state_bytes(OptimizerName.SGD_MOMENTUM, matrix, True) == 4 * n
    assert state_bytes(OptimizerName.ADAMW, matrix, True) == 8 * n + 4
    assert state_bytes(OptimizerName.ADAMW, matrix, False) == 8 * n  # step counters live on the host
    assert state_bytes(OptimizerName.ADAGRAD, matrix, True) == 4 * n + 4
    # Adafactor: rows and columns of each 4x5 slice, as torch.optim.Adafactor keeps them.
    assert state_bytes(OptimizerName.ADAFACTOR, matrix, True) == 3 * (4 + 5) * 4 + 4
    assert state_bytes(OptimizerName.ADAFACTOR, vector, True) == 5 * 4 + 4
    big = ParamInfo(module="fc", name="weight", shape=(1024, 1024), dtype="float32", itemsize=4)
    assert state_bytes(OptimizerName.ADAMW_8BIT, big, False) == 2 * 2**20 + 8 * math.ceil(2**20 / 256)
    assert state_bytes(OptimizerName.ADAMW_8BIT, vector, False) == 8 * 5  # small tensors keep fp32 state


def test_sgd_to_adamw_adds_two_state_buffers() -> None:
    program = _program()
    program = Program(**{**program.__dict__, "phases": program.phases + (("optimizer", 0, 5, 5),)})
    result = estimate(_profile(program), Scenario(optimizer=OptimizerName.ADAMW))
    assert result.optimizer_state_bytes == 2 * 400 + 4


def test_weight_only_quantised_bytes() -> None:
    w = ParamInfo(module="fc", name="weight", shape=(256, 300), dtype="float32", itemsize=4)
    assert quantized_bytes(w, Precision.INT8) == 256 * 300 + 256 * 4
    assert quantized_bytes(w, Precision.INT4) == 256 * 150 + 256 * math.ceil(300 / 128) * 4
    t = ParamInfo(module="c", name="weight", shape=(300, 256), dtype="float32", itemsize=4)
    assert quantized_bytes(t, Precision.INT8, transposed=True) == quantized_bytes(w, Precision.INT8)


def test_with_scaling_matches_blocks_despite_an_extra_one() -> None:
    small = _program()
    extra = Program(
        **{
            **small.__dict__,
            "batch_size": 4,
            "alloc": small.alloc + (2,),
            "free": small.free + (3,),
            "size": (400, 16, 80, 120, 400, 999),
            "category": small.category + (C["temporaries"],),
            "module": small.module + (0,),
            "op": small.op + (2,),
            "dtype": small.dtype + (0,),
        }
    )
    fitted = with_scaling(small, extra)
    assert fitted.scaling == SCALING_TRACED
    assert fitted.per_sample == (0.0, 4.0, 20.0, 30.0, 0.0)


def test_program_survives_json() -> None:
    profile = _profile(_program(per_sample=(0, 4, 20, 30, 0)))
    again = Profile.from_dict(json.loads(profile.to_json()))
    assert again.program == profile.program
    assert again == profile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", Pruning(0.5)),
        ("50%", Pruning(0.5)),
        ("0.3:structured", Pruning(0.3, PruneKind.STRUCTURED)),
    ],
)
def test_pruning_parse(text: str, expected: Pruning) -> None:
    assert Pruning.parse(text) == expected


@pytest.mark.parametrize("text", ["1", "-0.1", "x", "0.5:diagonal"])
def test_pruning_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        Pruning.parse(text)


def test_scenario_validation() -> None:
    with pytest.raises(UsageError):
        Scenario(batch_size=0)
    with pytest.raises(UsageError):
        Scenario(grad_accum=0)
    with pytest.raises(UsageError):
        Scenario(checkpoint=("auto", "fc"))
    assert Scenario().describe() == "as profiled"
    assert Scenario(batch_size=8, precision=Precision.BF16).describe() == "batch 8, bf16"


def test_profile_without_program_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="profile the model again"):
        estimate(_profile(None))  # type: ignore[arg-type]


def _with_adam_state() -> Profile:
    program = _program()
    program = Program(
        **{
            **program.__dict__,
            "phases": program.phases + (("optimizer", 0, 5, 5),),
        }
    )
    return _profile(program, optimizer="adamw")


@pytest.mark.parametrize(
    ("strategy", "params", "grads", "states"),
    [
        ("ddp", 400, 400, 804),
        ("zero1", 400, 400, 201),
        ("zero2", 400, 100, 201),
        ("zero3", 100, 100, 201),
        ("fsdp", 100, 100, 201),
    ],
)
def test_sharding_follows_the_zero_accounting(strategy: str, params: int, grads: int, states: int) -> None:
    """4 GPUs; AdamW state 2 x 400 + 4 bytes: each part divided (rounded up) when the strategy shards it."""
    from memadvise.analyzer.sharding import Strategy

    result = estimate(
        _with_adam_state(), Scenario(gpus=4, strategy=Strategy(strategy), optimizer=OptimizerName.ADAMW)
    )
    assert result.sharding is not None
    assert (
        result.sharding.param_bytes,
        result.sharding.grad_bytes,
        result.sharding.optimizer_state_bytes,
    ) == (
        params,
        grads,
        states,
    )
    assert result.param_bytes == params  # the replayed blocks agree with the formula
    if strategy == "ddp":
        assert result.sharding.bucket_bytes == 400
    assert result.effective_batch_size == 4 * result.batch_size

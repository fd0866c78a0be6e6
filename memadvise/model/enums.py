"""The closed choices of a trace: memory categories, step phases, modes and optimizers.

They live apart from :mod:`memadvise.model.profile` so that the program (which indexes categories) and
the profile (which holds a program) do not import each other.
"""

from __future__ import annotations

from enum import Enum


class Category(str, Enum):
    """What a byte of live memory is for."""

    PARAMETERS = "parameters"
    BUFFERS = "buffers"
    INPUTS = "inputs"
    ACTIVATIONS = "activations"
    GRADIENTS = "gradients"
    OPTIMIZER_STATE = "optimizer_state"
    TEMPORARIES = "temporaries"


class Phase(str, Enum):
    """Where in a training step memory was allocated."""

    SETUP = "setup"
    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"
    PREFILL = "prefill"  # generation: the forward pass over the prompt
    DECODE = "decode"  # generation: the one-token forward passes after it


class Mode(str, Enum):
    TRAIN = "train"
    INFERENCE = "inference"
    GENERATE = "generate"


class OptimizerName(str, Enum):
    """Optimizers memadvise traces or estimates (``adamw-8bit`` and ``paged-adamw-8bit``, bitsandbytes',
    by formula only)."""

    ADAMW = "adamw"
    ADAM = "adam"
    SGD = "sgd"
    SGD_MOMENTUM = "sgd-momentum"
    ADAGRAD = "adagrad"
    RMSPROP = "rmsprop"
    ADAFACTOR = "adafactor"
    ADAMW_8BIT = "adamw-8bit"
    PAGED_ADAMW_8BIT = "paged-adamw-8bit"  # bitsandbytes' PagedAdamW8bit: state in CUDA unified memory
    NONE = "none"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)

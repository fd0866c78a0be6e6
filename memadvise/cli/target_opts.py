"""Options of the targets that need no model file (Hugging Face configs and names, timm, torchvision)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


class Task(str, Enum):
    """The head of a Hugging Face model (the ``transformers`` Auto class it builds)."""

    causal_lm = "causal-lm"
    masked_lm = "masked-lm"
    seq_cls = "seq-cls"
    token_cls = "token-cls"
    qa = "qa"
    seq2seq_lm = "seq2seq-lm"
    image_cls = "image-cls"
    base = "base"


TaskOpt = Annotated[
    Task | None,
    typer.Option(
        "--task",
        help="Hugging Face targets: the head to build "
        "(default: the config's architectures[0], else the base model).",
    ),
]
ImageSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--image-size",
        min=1,
        help="Image side for Hugging Face vision configs, timm: and torchvision: targets "
        "(default: the config's, timm's default input size, or 224).",
    ),
]

TARGETS_HELP = """\
Instead of a model file: a folder holding a Hugging Face config.json (or the config.json), a Hub
name (gpt2, org/name: only its config.json is read, from the local Hugging Face cache or fetched
alone; HF_HUB_OFFLINE=1 forbids fetching), timm:NAME or torchvision:NAME. Weights are random; batches
come from the config (token ids and labels: --seq-len, default the model's positions up to 2048;
images: --image-size)."""

"""``memadvise init``: write a commented model-file template to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memadvise.cli.common import DebugOpt, handles_errors

HELP = """Write a commented model-file template that 'memadvise profile' runs as it is.

The file defines build_model() (returns your torch.nn.Module) and example_inputs(batch_size) (one
batch, as your training loop feeds the model), with optional loss_fn(output, inputs),
train_step(model, inputs, optimizer) and make_dataloader() hooks left commented out. Replace the
small example model with yours; an existing file is never overwritten.

No model file needed for: a Hugging Face config folder or Hub name (memadvise profile
path/to/model/ or org/name --fake), timm:NAME and torchvision:NAME, a script of your own
(memadvise run train.py), or memadvise.track(model, optimizer) inside your own loop.

Examples:
  memadvise init model.py
  memadvise profile model.py --batch-size 8
"""

TEMPLATE = '''\
"""A model file for memadvise: edit build_model() and example_inputs(), then run

    memadvise profile {name} --batch-size 8          # a real run on this machine
    memadvise profile {name} --batch-size 8 --fake   # fake: no memory used, CUDA kernels assumed
    memadvise plan {name} --gpu 24GB                  # what fits on a 24 GB card

memadvise imports this file, calls build_model() once and example_inputs(batch_size) for each batch
size it traces, and runs PyTorch's tutorial training step on them:

    out = model(inputs); loss = loss_fn(out, inputs); loss.backward(); optimizer.step(); optimizer.zero_grad()

Weights can stay random: memory does not depend on their values. Use FILE.py:other_factory to profile
another factory function of this file than build_model.
"""

from __future__ import annotations

import torch
from torch import nn

SEQ_LEN = 128  # the default sequence length of example_inputs (memadvise profile --seq-len overrides it)


def build_model() -> nn.Module:
    """Return the model to profile (replace this small example with your own model)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Embedding(1000, 64),
        nn.Linear(64, 256),
        nn.GELU(),
        nn.Linear(256, 1000),
    )


def example_inputs(batch_size: int, seq_len: int = SEQ_LEN) -> torch.Tensor:
    """One batch of ``batch_size`` as your loop feeds it to the model.

    A tensor is passed as model(batch); a tuple or list as model(*batch); a dict as model(**batch)
    (Hugging Face style: include ``labels`` and the output's ``.loss`` is the loss). Drop the seq_len
    argument for models without a sequence (images, tables).
    """
    torch.manual_seed(0)
    return torch.randint(0, 1000, (batch_size, seq_len))


def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Optional: the loss of one batch (without it: ``output.loss`` when set, else the output's sum)."""
    return nn.functional.cross_entropy(output.flatten(0, 1), inputs.flatten())


# Optional: replace the whole training step (several losses, GANs, gradient clipping...). memadvise
# splits it into phases as it runs: backward() calls are the backward phase, optimizer.step() calls the
# optimizer phase. Return the loss or None.
#
# def train_step(model: nn.Module, inputs: torch.Tensor, optimizer: torch.optim.Optimizer | None):
#     out = model(inputs)
#     loss = loss_fn(out, inputs)
#     loss.backward()
#     torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
#     if optimizer is not None:
#         optimizer.step()
#         optimizer.zero_grad(set_to_none=True)
#     return loss


# Optional: your DataLoader; its num_workers, prefetch_factor and pin_memory give the host-memory
# estimate (batches prefetched by the workers and pinned for the GPU).
#
# def make_dataloader() -> torch.utils.data.DataLoader:
#     data = torch.utils.data.TensorDataset(torch.randint(0, 1000, (64, SEQ_LEN)))
#     return torch.utils.data.DataLoader(data, batch_size=8, num_workers=2, pin_memory=True)
'''


def template(name: str) -> str:
    """The template's text for a file called ``name``."""
    return TEMPLATE.format(name=name)


@handles_errors
def init_command(
    path: Annotated[
        Path, typer.Argument(metavar="MODEL_FILE", help="The model file to write (e.g. model.py).")
    ] = Path("model.py"),
    debug: DebugOpt = False,
) -> None:
    from memadvise.errors import UsageError

    if path.suffix != ".py":
        raise UsageError(f"'{path}' is not a Python file name; give a name ending in .py (e.g. model.py)")
    if path.exists() or path.is_symlink():
        raise UsageError(
            f"'{path}' already exists; memadvise init never overwrites a file (choose another name)"
        )
    if not path.parent.is_dir():
        raise UsageError(f"folder '{path.parent}' does not exist")
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(template(str(path)))
    except FileExistsError:
        raise UsageError(f"'{path}' already exists; memadvise init never overwrites a file") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    typer.echo(
        f"wrote {path}: edit build_model() and example_inputs(), then run: memadvise profile {path}", err=True
    )

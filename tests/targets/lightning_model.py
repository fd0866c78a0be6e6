"""A tiny ``LightningModule`` for the Lightning tests, and the same network as a model file.

``build_model``/``example_inputs``/``loss_fn`` make this file a model file, so ``tests/groundtruth.py``
runs the module's forward pass, loss, backward pass and AdamW step as PyTorch's tutorial loop.
``Classifier.training_step`` computes the same loss on a batch of ``Batches``; ``configure_optimizers``
is the same AdamW (lr 1e-3, PyTorch's defaults otherwise) as the ground truth's.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from torch import nn

BATCH = 16
FEATURES = 64


def targets(output: torch.Tensor) -> torch.Tensor:
    return torch.zeros(output.shape[0], dtype=torch.long)


class Classifier(L.LightningModule):
    """An MLP; ``call_self=False``: ``training_step`` calls ``self.net`` instead of ``self(x)``."""

    def __init__(self, call_self: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10)
        )
        self.call_self = call_self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self(batch) if self.call_self else self.net(batch)
        return nn.functional.cross_entropy(out, targets(out))

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


class Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 4 * BATCH

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.randn(FEATURES, generator=torch.Generator().manual_seed(i))


def loader() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    return torch.utils.data.DataLoader(Batches(), batch_size=BATCH)


def trainer(callbacks: list[Any], max_epochs: int = 1, **kwargs: Any) -> L.Trainer:
    """A quiet CPU Trainer, as a user's script makes it."""
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **kwargs,
    )


# -- the same network and loss as a model file (the tutorial loop's ground truth) --------------------------
def build_model() -> nn.Module:
    return Classifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, FEATURES)


def loss_fn(output: torch.Tensor, inputs: Any) -> torch.Tensor:
    return nn.functional.cross_entropy(output, targets(output))


# -- the ground truth of a real fit() ------------------------------------------------------------------------
class Window(L.Callback):
    """Opens ``tests/groundtruth.py``'s measured window as the first training batch starts and closes it
    when the batch of the ``steps``-th optimizer step ends (no memadvise code involved)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.window: Any = None
        self.done = False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.window is None and not self.done:
            import groundtruth

            self.window = torch.autograd.profiler.record_function(groundtruth._WINDOW)
            self.window.__enter__()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.window is not None and trainer.global_step >= self.steps:
            self.window.__exit__(None, None, None)
            self.window, self.done = None, True


def measure_fit_peak(steps: int = 2, **module_kwargs: Any) -> Any:
    """The live-bytes peak of the first ``steps`` optimizer steps of a real ``fit()``, rebuilt from the
    profiler's allocator events by ``groundtruth.analyse`` (everything made since the module was built:
    parameters, batches, Lightning's own tensors)."""
    import gc

    import groundtruth
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer([Window(steps)]).fit(Classifier(**module_kwargs), loader())
    assert prof.profiler is not None
    return groundtruth.analyse(list(prof.profiler.kineto_results.events()))

"""A PyTorch Lightning callback that profiles the first optimizer steps of ``trainer.fit()``.

>>> from memadvise.integrations.lightning import MemadviseCallback   # doctest: +SKIP
>>> callback = MemadviseCallback(steps=2, output="profile.json")     # doctest: +SKIP
>>> Trainer(max_epochs=1, callbacks=[callback]).fit(module, loader)  # doctest: +SKIP
>>> callback.profile.peak_bytes                                      # doctest: +SKIP

The steps are watched with :func:`memadvise.track` from the first training epoch's start (before its
first batch is loaded, so that batch's memory is seen made and freed) to the end of the batch whose
optimizer step is the ``steps``-th (``training_step``, backward and ``optimizer.step()``
as Lightning runs them: automatic optimization's ``optimizer.step(closure)`` runs the forward and
backward passes inside the step, and zeroes the gradients just before the backward pass; gradient
accumulation and manual optimization are counted in optimizer steps too). Training then goes on
untouched, or stops there with ``stop=True``. The profile is the same
:class:`~memadvise.model.profile.Profile` as ``memadvise profile`` writes (``output``: saved as JSON).
Lightning's memory outside the watched steps (the sanity check's validation before them, checkpoints
after them) is not part of it; a validation run between two watched steps is.

The callback derives from ``lightning.pytorch.Callback``, or from ``pytorch_lightning.Callback`` when
only the older package is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memadvise.api import track
from memadvise.errors import UsageError
from memadvise.integrations._watch import WatchedSteps

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - exercised only with the older package name
    try:
        from pytorch_lightning import Callback  # type: ignore[assignment]
    except ImportError as _missing:
        raise UsageError(
            "memadvise.integrations.lightning needs PyTorch Lightning (pip install 'memadvise[lightning]')"
        ) from _missing


class MemadviseCallback(WatchedSteps, Callback):
    """Profile the first ``steps`` optimizer steps of ``Trainer.fit()`` (see the module doc)."""

    def __init__(self, steps: int = 2, output: str | Path | None = None, stop: bool = False) -> None:
        super().__init__()
        self._watch(steps, output, stop)
        self._first_step = 0

    def _start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = list(trainer.optimizers)
        optimizer = optimizers[0] if len(optimizers) == 1 else None  # several: any optimizer's step
        self._first_step = trainer.global_step
        self._track = track(pl_module, optimizer)
        self._track.__enter__()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        # Started before the epoch's first batch is loaded: its memory is then seen made and freed.
        if self._track is None and not self._done:
            self._start(trainer, pl_module)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._done:
            return
        if self._track is None:
            self._start(trainer, pl_module)
        # training_step need not call the module's own forward(): the batch starts the step
        self._track.batch_starts(batch)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._track is None or self._done:
            return
        if trainer.global_step - self._first_step < self.steps:  # global_step counts optimizer steps
            return
        self._finish()
        if self.stop:
            trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._track is not None and not self._done:
            self._finish()  # training ended before `steps` optimizer steps: profile what ran

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._track is not None and not self._done:
            watched, self._track, self._done = self._track, None, True
            watched.__exit__(type(exception), exception, exception.__traceback__)  # hooks off; no profile

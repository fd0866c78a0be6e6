"""A Hugging Face ``Trainer`` callback that profiles the first training steps of ``trainer.train()``.

>>> from memadvise.integrations.hf import MemadviseCallback          # doctest: +SKIP
>>> callback = MemadviseCallback(steps=2, output="profile.json")     # doctest: +SKIP
>>> Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()  # doctest: +SKIP
>>> callback.profile.peak_bytes                                      # doctest: +SKIP

The steps are watched with :func:`memadvise.track` from the first step's start to the end of step
``steps`` (forward, backward and ``optimizer.step()`` as the Trainer runs them, gradient accumulation
included); training then goes on untouched, or stops there with ``stop=True``. The profile is the same
:class:`~memadvise.model.profile.Profile` as ``memadvise profile`` writes (``output``: saved as JSON).
The Trainer's own memory outside the steps (data loading, evaluation, checkpoints) is not part of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memadvise.api import track
from memadvise.errors import UsageError
from memadvise.integrations._watch import WatchedSteps

try:
    from transformers import TrainerCallback
except ImportError as _missing:  # pragma: no cover - exercised only without transformers
    raise UsageError(
        "memadvise.integrations.hf needs transformers (pip install 'memadvise[llm]' or transformers)"
    ) from _missing


class MemadviseCallback(WatchedSteps, TrainerCallback):
    """Profile the first ``steps`` optimizer steps of ``Trainer.train()`` (see the module doc)."""

    def __init__(self, steps: int = 2, output: str | Path | None = None, stop: bool = False) -> None:
        self._watch(steps, output, stop)
        self._seen = 0

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self._track is not None or self._done:
            return
        if model is None:
            raise UsageError("MemadviseCallback: the Trainer passed no model to the callback")
        optimizer = kwargs.get("optimizer")
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        self._track = track(model, optimizer, batch_size=args.per_device_train_batch_size)
        self._track.__enter__()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._track is None or self._done:
            return
        self._seen += 1
        if self._seen < self.steps:
            return
        self._finish()
        if self.stop:
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._track is not None and not self._done:
            self._finish()  # training ended before `steps` steps: profile what ran

"""What the training-loop callbacks share: their settings, the watched steps' ending and the profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memadvise.errors import UsageError

MAX_STEPS = 1000


class WatchedSteps:
    """The first ``steps`` optimizer steps of a training loop, watched with :func:`memadvise.track`
    (``self._track`` while they run); the profile is saved to ``output`` when given."""

    def _watch(self, steps: int, output: str | Path | None, stop: bool) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise UsageError(f"MemadviseCallback(steps=...) must be a whole number from 1 to {MAX_STEPS}")
        self.steps = steps
        self.output = Path(output) if output is not None else None
        self.stop = stop
        self._track: Any = None
        self._profile: Any = None
        self._done = False

    def _finish(self) -> None:
        watched, self._track, self._done = self._track, None, True
        watched.__exit__(None, None, None)
        self._profile = watched.profile
        if self.output is not None:
            self._profile.save(self.output)

    @property
    def profile(self) -> Any:
        """The :class:`~memadvise.model.profile.Profile` of the watched steps (after they ran)."""
        if self._profile is None:
            raise UsageError("MemadviseCallback's profile is ready once its steps have run")
        return self._profile

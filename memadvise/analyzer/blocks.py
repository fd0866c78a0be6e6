"""A working copy of a profile's blocks that the what-if levers edit, and the replay that finds its peak.

Times are the program's event positions as floats, so a lever can place a new block between two
traced events (``position - 0.5``). Baseline blocks (parameters, buffers, inputs) have ``alloc = -1``;
blocks alive at the end have ``free = inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memadvise.model.profile import CATEGORIES, Category
from memadvise.model.program import Program

BEFORE = -1.0
CAT = {c: k for k, c in enumerate(CATEGORIES)}


@dataclass
class Blocks:
    """Parallel arrays, one row per block; ``module`` and ``op`` index the program's name tables."""

    alloc: np.ndarray
    free: np.ndarray
    size: np.ndarray
    category: np.ndarray
    module: np.ndarray
    op: np.ndarray
    dtype: np.ndarray

    @classmethod
    def of(cls, program: Program) -> Blocks:
        """A fresh, editable copy of the program's blocks (the conversion is cached per program)."""
        cached = _CACHE.get(id(program))
        if cached is None or cached[0] is not program:
            if len(_CACHE) >= 8:
                _CACHE.pop(next(iter(_CACHE)))
            cached = (program, cls._convert(program))
            _CACHE[id(program)] = cached
        return cached[1].take(np.ones(len(cached[1]), dtype=bool))

    @classmethod
    def _convert(cls, program: Program) -> Blocks:
        free = np.asarray(program.free, dtype=np.float64)
        free[free < 0] = np.inf
        return cls(
            alloc=np.asarray(program.alloc, dtype=np.float64),
            free=free,
            size=np.asarray(program.size, dtype=np.float64),
            category=np.asarray(program.category, dtype=np.int64),
            module=np.asarray(program.module, dtype=np.int64),
            op=np.asarray(program.op, dtype=np.int64),
            dtype=np.asarray(program.dtype, dtype=np.int64),
        )

    @classmethod
    def from_rows(cls, rows: list[tuple[float, float, float, int, int]]) -> Blocks:
        """New blocks from ``(alloc, free, size, category index, module index)`` rows."""
        a = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return cls(
            alloc=a[:, 0],
            free=a[:, 1],
            size=a[:, 2],
            category=a[:, 3].astype(np.int64),
            module=a[:, 4].astype(np.int64),
            op=np.zeros(len(a), dtype=np.int64),
            dtype=np.zeros(len(a), dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.size)

    def is_category(self, category: Category) -> np.ndarray:
        return self.category == CAT[category.value]

    def add(self, rows: Blocks) -> None:
        """Append ``rows`` (new blocks placed by a lever)."""
        for name in ("alloc", "free", "size", "category", "module", "op", "dtype"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(rows, name)]))

    def take(self, mask: np.ndarray) -> Blocks:
        """A copy of the rows where ``mask`` holds."""
        return Blocks(
            alloc=self.alloc[mask].copy(),
            free=self.free[mask].copy(),
            size=self.size[mask].copy(),
            category=self.category[mask].copy(),
            module=self.module[mask].copy(),
            op=self.op[mask].copy(),
            dtype=self.dtype[mask].copy(),
        )

    def drop(self, mask: np.ndarray) -> None:
        """Remove the rows where ``mask`` holds."""
        kept = self.take(~mask)
        self.__dict__.update(kept.__dict__)


_CACHE: dict[int, tuple[Program, Blocks]] = {}


@dataclass(frozen=True)
class Replay:
    """The peak of a block set: its bytes, when it happened, and the blocks alive then."""

    peak_bytes: int
    time: float
    alive: np.ndarray  # boolean mask over the blocks


def replay(blocks: Blocks) -> Replay:
    """Live bytes after every allocation and free, in time order; the highest level wins.

    At equal times allocations come before frees, so two blocks placed at the same moment count
    together (the cautious reading).
    """
    sizes = np.rint(blocks.size)
    times = np.concatenate([blocks.alloc, blocks.free])
    deltas = np.concatenate([sizes, -sizes])
    finite = np.isfinite(times)
    times, deltas = times[finite], deltas[finite]
    order = np.lexsort((deltas < 0, times))
    live = np.cumsum(deltas[order])
    if not len(live):
        return Replay(peak_bytes=0, time=BEFORE, alive=np.zeros(len(blocks), dtype=bool))
    k = int(np.argmax(live))
    t = float(times[order][k])
    # The peak follows the last allocation at time t; frees at t come after it.
    alive = (blocks.alloc <= t) & (blocks.free >= t)
    return Replay(peak_bytes=int(live[k]), time=t, alive=alive)

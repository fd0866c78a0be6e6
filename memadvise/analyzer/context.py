"""What every lever works on: the profile, its program, the editable blocks and the notes so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memadvise.analyzer.blocks import Blocks
from memadvise.model.profile import Phase, Profile
from memadvise.model.program import Program


@dataclass
class Context:
    profile: Profile
    program: Program
    blocks: Blocks
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def under(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Per entry of the program's module table: is it one of ``names`` or inside one of them?
        (Masks are cached per program and names: a plan asks for the same ones thousands of times.)"""
        key = (id(self.program), tuple(names))
        cached = _UNDER.get(key)
        if cached is not None and cached[0] is self.program:
            return cached[1].copy()
        prefixes = tuple(n + "." for n in names if n)
        mask = np.array(
            [
                m in names or m.startswith(prefixes) or ("" in names and not m.startswith("<"))
                for m in self.program.modules
            ],
            dtype=bool,
        )
        if len(_UNDER) >= 256:
            _UNDER.pop(next(iter(_UNDER)))
        _UNDER[key] = (self.program, mask)
        return mask.copy()

    def phase_span(self, phase: Phase, step: int) -> tuple[int, int] | None:
        """First and last event position (exclusive) of a phase of a step, over all its entries."""
        spans = [(a, b) for p, s, a, b in self.program.phases if p == phase.value and s == step]
        if not spans:
            return None
        return min(a for a, _ in spans), max(b for _, b in spans)

    def phase_at(self, time: float) -> tuple[str, int]:
        """Phase and step of a moment of the program (setup before the first phase)."""
        found = (Phase.SETUP.value, 0)
        for phase, step, start, end in self.program.phases:
            if start <= time < max(end, start + 1):
                return phase, step
            if start <= time:
                found = (Phase.SETUP.value, step)
        return found

    def module_at(self, time: float) -> str:
        """The innermost module whose forward call contains ``time`` (or the owner of a block there)."""
        best = ""
        best_len = None
        for module, _, start, end in self.program.forward_calls:
            if start <= time < end and (best_len is None or end - start <= best_len):
                best, best_len = self.program.modules[module], end - start
        return best

    def steps(self) -> list[int]:
        return sorted({s for _, s, _, _ in self.program.phases})


_UNDER: dict[tuple[int, tuple[str, ...]], tuple[Program, np.ndarray]] = {}

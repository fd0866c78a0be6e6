"""Every report names the same things the same way: the model itself is ``(model)``, steps count from 1 in
the terminal, the CSV and the HTML (the JSON keeps its stored values: ``""`` and steps from 0), and short
phases of the terminal timeline never run together."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pandas as pd
from fixed_width import render_text

from memadvise import Holder, Profile
from memadvise.model.profile import ROOT_LABEL
from memadvise.reporters.console import _phase_row, render_profile
from memadvise.reporters.html import render_html
from memadvise.reporters.tables import table_csv
from memadvise.reporters.timeline import PHASE_SHORT


def _rooted(toy: Profile) -> Profile:
    """The toy profile with the model itself holding the peak's largest block and owning the peak op."""
    holders = (
        Holder(module="", category="temporaries", bytes=toy.peak_holders[0].bytes),
        *toy.peak_holders[1:],
    )
    tl = toy.timeline
    return replace(
        toy, peak_module="", peak_holders=holders, timeline=replace(tl, module=["" for _ in tl.module])
    )


def test_the_root_has_one_name_in_every_report(toy: Profile) -> None:
    profile = _rooted(toy)
    text = render_text(render_profile(profile, top=5, tree=True), width=160)
    assert re.search(rf"^Peak .* in {re.escape(ROOT_LABEL)}$", text, re.MULTILINE)
    holders = text.split("Who holds the peak")[1].split("└")[0]
    assert f"│ {ROOT_LABEL} " in holders
    frame = pd.read_csv(io.StringIO(table_csv(profile, "timeline")), keep_default_na=False)
    assert set(frame["module"]) == {ROOT_LABEL}
    page = render_html(profile)
    assert f"<code>{ROOT_LABEL}</code>" in page
    for other in ("(root)", "&lt;model&gt;", "<model>"):
        assert other not in text and other not in page


def test_steps_count_from_one_in_terminal_csv_and_html(toy: Profile) -> None:
    stored = toy.peak_step  # counted from 0 in the profile (and its JSON)
    text = render_text(render_profile(toy), width=160)
    assert f"of step {stored + 1}," in text
    frame = pd.read_csv(io.StringIO(table_csv(toy, "timeline")))
    assert int(frame.loc[frame["total"].idxmax(), "step"]) == stored + 1
    assert sorted(set(frame["step"])) == list(range(1, toy.steps + 1))
    assert f"of step {stored + 1}" in render_html(toy)


def test_short_phases_do_not_run_together() -> None:
    runs = [
        ("forward", 2),
        ("backward", 3),
        ("optimizer", 1),
        ("forward", 4),
        ("backward", 1),
        ("optimizer", 6),
    ]
    phases = [phase for phase, width in runs for _ in range(width)]
    row = _phase_row(phases).plain
    assert len(row) == len(phases)
    start = 0
    for phase, width in runs:
        cell = row[start : start + width]
        name = cell.rstrip("─")
        assert name in ("", PHASE_SHORT[phase], PHASE_SHORT[phase][0]), (phase, cell)
        if start + width < len(row):
            assert cell.endswith("─"), f"{cell!r} runs into the next phase's name in {row!r}"
        start += width


def test_an_estimate_names_modules_not_numbers() -> None:
    from memadvise.analyzer.estimate import _named

    types = {"0": "Linear", "blocks.3": "Block", "encoder": "Encoder"}
    assert _named("0", types) == "0 (Linear)"  # a child of nn.Sequential is named by its type too
    assert _named("blocks.3", types) == "blocks.3 (Block)"
    assert _named("encoder", types) == "encoder"
    assert _named("", types) == ROOT_LABEL

"""Rendering rich output as plain text on a fixed-width console without colours (for golden files)."""

from __future__ import annotations

import io

from rich.console import Console

WIDTH = 100


def render_text(renderable: object, width: int = WIDTH) -> str:
    """Plain text of a rich renderable on a ``width``-column console without colours."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()

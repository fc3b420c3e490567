"""The workbench draws recorded text with its control characters made visible.

Everything Textual puts on the terminal goes through :meth:`textual.strip.Strip.render`, which
joins a line's segments with their styles. A run's data (a graph name from an imported file, a
model's answer, an error quoting user input) may hold escape sequences that the terminal would
obey — retitle the window, clear the screen. :func:`install` wraps that one method so that a
line holding a control character is drawn with visible stand-ins (workbench/printable.py) and
cut back to its width, and every other line exactly as before (they are the rule: a search of
each segment's text, then Textual's own rendering).
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from textual.strip import Strip

from workbench.printable import has_control, printable

_MARK = "_workbench_printable"


def install() -> None:
    """Wrap ``Strip.render`` once per process (see the module docstring)."""
    render = Strip.render
    if getattr(render, _MARK, False):
        return

    def printable_render(strip: Strip, console: Any) -> str:
        if any(segment.control is None and has_control(segment.text) for segment in strip):
            shown = [Segment(printable(segment.text), segment.style, segment.control)
                     if segment.control is None else segment for segment in strip]
            # A stand-in takes a cell where the control character took none: keep the width.
            strip = Strip(shown).crop(0, strip.cell_length)
        return render(strip, console)

    setattr(printable_render, _MARK, True)
    Strip.render = printable_render  # type: ignore[method-assign,assignment]

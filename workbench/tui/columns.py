"""Column priorities: which columns of a table survive a narrow terminal.

Each column has a priority (1 is kept longest) and a width; the lowest-priority columns are
dropped until the rest fit. Pure functions, so the choice is tested without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text


@dataclass(frozen=True)
class Column:
    """One column: ``key`` (the data's name), ``label`` (its header), its usual ``width`` in
    cells and its ``priority`` (1 stays longest)."""

    key: str
    label: str
    width: int
    priority: int


def fit_columns(columns: list[Column], width: int, *, gap: int = 2) -> list[Column]:
    """The columns to show in ``width`` cells (each takes ``gap`` more for padding), in their
    order: the lowest-priority ones (the rightmost first, among equals) are dropped until the
    rest fit. The priority-1 columns are always kept."""
    shown = list(columns)
    while sum(c.width + gap for c in shown) > width:
        droppable = [c for c in shown if c.priority > 1]
        if not droppable:
            break
        worst = max(droppable, key=lambda c: (c.priority, shown.index(c)))
        shown.remove(worst)
    return shown


RUNS_COLUMNS = [
    Column("run_id", "run", 17, 1),
    Column("graph", "graph", 9, 2),
    Column("status", "status", 10, 1),
    Column("started", "started", 14, 4),
    Column("ms", "ms", 6, 5),
    Column("steps", "steps", 5, 2),
    Column("tokens", "tokens", 6, 3),
    Column("cost", "cost $", 7, 5),
    Column("parent", "parent", 19, 3),
]
"""The runs table's columns: id and status stay; cost and duration go first."""


@dataclass(frozen=True)
class TimelineWidths:
    """How wide the timeline's node label and waterfall bar are drawn."""

    label: int
    bar: int


def timeline_widths(width: int) -> TimelineWidths:
    """The label and bar widths for a timeline ``width`` cells wide. The fixed part (step,
    mark, duration) takes 21 cells; tokens and errors come after the bar, so a narrow timeline
    shrinks the bar first, then drops it, then shortens the label, keeping room for them."""
    fixed, extras = 21, 12
    room = width - fixed - extras
    if room >= 22 + 16:
        return TimelineWidths(22, 16)
    if room >= 22 + 6:
        return TimelineWidths(22, room - 22)
    return TimelineWidths(max(10, min(22, room)), 0)


def cell_text(text: str, width: int, style: str = "") -> Text:
    """``text`` for a cell ``width`` cells wide: cut with an ellipsis when longer, since a table
    cuts without a mark and a cut name reads as the whole one."""
    out = Text(text, style=style, no_wrap=True)
    out.truncate(width, overflow="ellipsis")
    return out

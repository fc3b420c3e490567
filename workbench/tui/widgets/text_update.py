"""Updating a Static only when what it shows changes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def _same(a: object, b: object) -> bool:
    if isinstance(a, Text) and isinstance(b, Text):  # (Text's == leaves out the base style)
        return (a.plain, a.spans, a.style, a.justify, a.no_wrap) == (b.plain, b.spans, b.style, b.justify, b.no_wrap)
    return isinstance(a, str) and isinstance(b, str) and a == b


def update_text(static: Static, content: Text | str) -> None:
    """``static.update(content)`` unless it already shows the same text.

    Textual lays the whole screen out again after every update of a Static, same text or not
    (~10 ms in a test): the runs' error line is set (to nothing, usually) whenever the runs are
    read again, a run's heading whenever its timeline is, and most of those change nothing."""
    if not _same(static.content, content):
        static.update(content)

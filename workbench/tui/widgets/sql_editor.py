"""The SQL console's editor: a code editor that completes view and column names.

``tab`` after the start of a name completes it (``ru`` → ``runs``; ``steps.du`` →
``steps.duration_ms``); when several names fit, it completes what they share and pressing
``tab`` again cycles through them. With nothing to complete, ``tab`` indents as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from textual import events
from textual.message import Message
from textual.widgets import TextArea

_WORD_BEFORE = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)$")


def candidates(names: dict[str, list[str]], line_before: str) -> tuple[str, list[str]]:
    """The word being typed at the end of ``line_before`` and the names that complete it: the
    columns of ``view`` after ``view.``, else every view and column name (views first)."""
    match = _WORD_BEFORE.search(line_before)
    if not match:
        return "", []
    qualifier, word = match.group(1), match.group(2)
    lower = word.lower()
    if qualifier is not None and qualifier in names:
        pool = names[qualifier]
    else:
        pool = list(dict.fromkeys([*names, *(c for cols in names.values() for c in cols)]))
    return word, [n for n in pool if n.lower().startswith(lower) and n != word]


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    return first[:i]


@dataclass
class _Cycle:
    row: int
    start: int  # column where the completed word starts
    options: list[str]
    index: int


class SqlEditor(TextArea):
    """A SQL editor with view and column completion on ``tab``."""

    class CompletionShown(Message):
        """Several names fit the word being typed (shown in the console's status line)."""

        def __init__(self, options: list[str]) -> None:
            super().__init__()
            self.options = options

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names: dict[str, list[str]] = {}
        """View name → its column names (filled from the store's schema)."""
        self._cycle: _Cycle | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "tab" and not self.read_only and self.complete():
            event.stop()
            event.prevent_default()
            return
        if event.key != "tab":
            self._cycle = None
        await super()._on_key(event)

    def complete(self) -> bool:
        """Complete the name before the cursor; ``False`` when there is nothing to complete."""
        row, col = self.cursor_location
        if self.selection.start != self.selection.end:
            return False
        line = self.document.get_line(row)
        cycle = self._cycle
        if cycle and cycle.row == row and line[cycle.start:col] == cycle.options[cycle.index]:
            cycle.index = (cycle.index + 1) % len(cycle.options)
            self._put(row, cycle.start, col, cycle.options[cycle.index])
            return True
        self._cycle = None
        word, options = candidates(self.names, line[:col])
        if not options:
            return False
        start = col - len(word)
        if len(options) == 1:
            self._put(row, start, col, options[0])
            return True
        shared = _common_prefix(options)
        if len(shared) > len(word):
            self._put(row, start, col, shared)
            col = start + len(shared)
        else:
            # Nothing more is shared: tab again puts each option in turn.
            self._cycle = _Cycle(row, start, options, 0)
            self._put(row, start, col, options[0])
        self.post_message(self.CompletionShown(options))
        return True

    def _put(self, row: int, start: int, end: int, text: str) -> None:
        self.replace(text, (row, start), (row, end))
        self.cursor_location = (row, start + len(text))

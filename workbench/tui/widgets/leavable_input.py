"""A one-line box of the main screen that ``esc`` leaves, as it leaves the SQL editor."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import Input

from workbench.tui.keys import focus_now


class LeavableInput(Input):
    """An ``Input`` that ``esc`` leaves for the pane ``leave_to`` (a selector on its screen);
    ``hide_on_leave`` hides the box too (the timeline's search box shows only while used)."""

    BINDINGS = [Binding("escape", "leave", "Leave the box", show=False)]

    def __init__(self, *args: Any, leave_to: str, hide_on_leave: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leave_to = leave_to
        self.hide_on_leave = hide_on_leave

    def action_leave(self) -> None:
        if self.hide_on_leave:
            self.add_class("hidden")
        focus_now(self.screen.query_one(self.leave_to))

"""One rule for every dialog's keys, so none of them traps.

- ``tab`` / ``shift+tab`` move the focus (an editor never swallows them as indentation);
- ``esc`` leaves an editor first (the focus goes to the dialog's buttons), and closes the
  dialog only when pressed outside an editor;
- ``ctrl+a`` selects all of an editor's text, so typing replaces it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Button, TextArea

ResultT = TypeVar("ResultT")


class DialogEditor(TextArea):
    """A multi-line editor for dialogs: ``tab`` moves the focus, ``ctrl+a`` selects all."""

    BINDINGS = [Binding("ctrl+a", "select_all", "Select all", show=False)]

    def __init__(self, text: str = "", *, code: bool = False, **kwargs: Any) -> None:
        if code:
            kwargs.setdefault("show_line_numbers", True)
            kwargs.setdefault("soft_wrap", False)
        super().__init__(text, tab_behavior="focus", **kwargs)


def in_editor(widget: object) -> bool:
    """Whether ``widget`` is an editor (multi-line) that ``esc`` leaves before closing the dialog.
    A one-line box is not: ``esc`` there closes the dialog at once."""
    return isinstance(widget, TextArea)


class Dialog(ModalScreen[ResultT]):
    """A modal dialog following the rule above. Subclasses implement :meth:`action_cancel`
    (what closing means) and may name the widget ``esc`` leaves an editor for
    (:attr:`ESCAPE_TO`, by default the first button)."""

    ESCAPE_TO: str | None = None

    # priority: an editor would otherwise take escape first. tab/shift+tab are priority too: a
    # non-priority binding acts only once the key has bubbled up from the focused widget, so keys
    # typed right after it (a fast typist, a paste, tmux send-keys) went to the old field.
    BINDINGS = [
        Binding("escape", "leave_or_cancel", "Close", priority=True),
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
    ]

    def action_leave_or_cancel(self) -> None:
        """``esc``: out of the editor first; out of the dialog when not in one."""
        if in_editor(self.focused):
            target = self.query_one(self.ESCAPE_TO) if self.ESCAPE_TO else self.query(Button).first()
            target.focus()
            return
        self.action_cancel()

    def action_cancel(self) -> None:
        raise NotImplementedError

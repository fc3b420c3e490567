"""Set a conditional breakpoint: a Python expression over the state, checked after each step;
the run pauses where it becomes true (see workbench/breakcondition.py)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.widgets.input import Selection

from workbench.tui.keys import FittingFooter, focus_now


class ConditionScreen(ModalScreen[str | None]):
    """Dismisses with the expression ('' clears it), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str | None) -> None:
        super().__init__()
        self.current = current or ""

    def compose(self):  # type: ignore[no-untyped-def]
        yield FittingFooter()  # this dialog's keys (the main screen's are off while it is open)
        with Vertical(id="dialog", classes="dialog"):
            yield Label(Text("Pause where this becomes true after a step:", style="bold"))
            yield Label(Text("a Python expression over `state`, e.g. state['drafts'] >= 2", style="dim"))
            yield Input(self.current, placeholder="empty clears the condition", id="condition")
            yield Static("", id="condition-error", classes="error")

    def on_mount(self) -> None:
        box = self.query_one("#condition", Input)
        focus_now(box)
        # The current condition starts selected: typing replaces it, an arrow key keeps it to
        # edit. (After the first paint: setting the value moves the cursor to its end.)
        self.call_after_refresh(lambda: setattr(box, "selection", Selection(0, len(box.value))))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        expr = event.value.strip()
        if expr:
            try:
                compile(expr, "<break condition>", "eval")
            except SyntaxError as exc:
                self.query_one("#condition-error", Static).update(
                    Text(f"syntax error: {exc.msg} (column {exc.offset})", style="bold red"))
                return
        self.dismiss(expr)

    def action_cancel(self) -> None:
        self.dismiss(None)

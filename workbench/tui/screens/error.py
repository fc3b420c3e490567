"""A modal that shows a failure of background work. The app carries on."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text, self.message = title, message

    def compose(self):  # type: ignore[no-untyped-def]
        yield Footer()  # this dialog's keys (the main screen's are off while it is open)
        with Vertical(id="dialog", classes="dialog error-dialog"):
            yield Label(Text(self.title_text, style="bold red"))
            yield Static(self.message)
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

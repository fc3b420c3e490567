"""Answer a run that waits for a human: the payload, and an answer as text, JSON or a choice."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

NO_ANSWER = object()


def choices_of(payload: Any) -> list[Any]:
    """The options a payload offers (its ``options`` or ``choices`` list), if any."""
    if isinstance(payload, dict):
        for key in ("options", "choices"):
            value = payload.get(key)
            if isinstance(value, list) and value and all(isinstance(v, (str, int, float, bool)) for v in value):
                return value
    return []


class HumanInputScreen(ModalScreen[Any]):
    """Dismisses with the answer (any JSON value), or NO_ANSWER when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_id: str, node: str, payload: Any) -> None:
        super().__init__()
        self.run_id, self.node, self.payload = run_id, node, payload

    def compose(self):  # type: ignore[no-untyped-def]
        yield Footer()  # this dialog's keys (the main screen's are off while it is open)
        with Vertical(id="dialog", classes="dialog"):
            yield Label(Text(f"Run {self.run_id} is waiting for you at {self.node}", style="bold yellow"))
            pretty = json.dumps(self.payload, indent=2, ensure_ascii=False, default=str)
            yield Static(Syntax(pretty, "json", word_wrap=True, background_color="default"), id="payload")
            options = choices_of(self.payload)
            if options:
                yield Label("Choose:")
                yield OptionList(*[Option(str(o), id=str(i)) for i, o in enumerate(options)], id="choices")
            yield Label("Answer (text; tick JSON to send a JSON value):")
            yield Input(placeholder="your answer", id="answer")
            yield Checkbox("JSON", id="as-json")
            yield Static("", id="answer-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send (enter)", variant="primary", id="send")
                yield Button("Later (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def _submit(self) -> None:
        raw = self.query_one("#answer", Input).value
        error = self.query_one("#answer-error", Static)
        if self.query_one("#as-json", Checkbox).value:
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError as exc:
                error.update(Text(f"not valid JSON: {exc.msg} (column {exc.colno})", style="bold red"))
                return
        else:
            if not raw.strip():
                error.update(Text("type an answer (or choose an option)", style="bold red"))
                return
            value = raw
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        options = choices_of(self.payload)
        self.dismiss(options[int(event.option.id or 0)])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(NO_ANSWER)

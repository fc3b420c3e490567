"""Answer a run that waits for a human: the payload, and an answer as text, JSON or a choice.

A run whose parallel branches asked several questions lists them (with their interrupt ids):
the one chosen is answered, or closed without an answer (its task is dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.input import Selection
from textual.widgets.option_list import Option

from workbench.tui.keys import FittingFooter, focus_now

NO_ANSWER = object()


@dataclass(frozen=True)
class HumanReply:
    """What the dialog decided: answer ``interrupt_id`` with ``value``, or close it unanswered."""

    interrupt_id: str | None
    value: Any = None
    close: bool = False


def choices_of(payload: Any) -> list[Any]:
    """The options a payload offers (its ``options`` or ``choices`` list), if any."""
    if isinstance(payload, dict):
        for key in ("options", "choices"):
            value = payload.get(key)
            if isinstance(value, list) and value and all(isinstance(v, (str, int, float, bool)) for v in value):
                return value
    return []


class HumanInputScreen(ModalScreen[Any]):
    """Dismisses with a :class:`HumanReply`, or NO_ANSWER when cancelled.

    ``interrupts`` lists the run's open interrupts (``interrupt_id``, ``node``, ``payload``),
    oldest first; the first is shown, and another can be chosen when there are several.
    """

    # tab/shift+tab are priority bindings, as in every dialog (screens/dialog.py): otherwise they
    # act only once the key has bubbled up, and keys typed right after them (a space to tick JSON)
    # went to the answer box.
    BINDINGS = [Binding("escape", "cancel", "Later"), Binding("ctrl+n", "close_interrupt", "Close unanswered"),
                Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
                Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True)]

    def __init__(self, run_id: str, node: str, payload: Any, *, interrupt_id: str | None = None,
                 interrupts: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.interrupts = interrupts or [{"interrupt_id": interrupt_id, "node": node, "payload": payload}]
        self.current = 0

    @property
    def node(self) -> str:
        return str(self.interrupts[self.current]["node"])

    @property
    def payload(self) -> Any:
        return self.interrupts[self.current]["payload"]

    @property
    def interrupt_id(self) -> str | None:
        return self.interrupts[self.current].get("interrupt_id")

    def compose(self):  # type: ignore[no-untyped-def]
        yield FittingFooter()  # this dialog's keys (the main screen's are off while it is open)
        with VerticalScroll(id="dialog", classes="dialog"):  # scrolls in a short terminal
            yield Label(self._title(), id="title")
            if len(self.interrupts) > 1:
                yield Label(f"{len(self.interrupts)} questions are open; answer or close one:")
                yield OptionList(*[
                    Option(f"{i.get('interrupt_id')}  {i['node']}: {json.dumps(i['payload'], default=str)[:60]}",
                           id=f"which-{n}")
                    for n, i in enumerate(self.interrupts)
                ], id="which")
            yield Static(self._payload_view(), id="payload")
            options = choices_of(self.payload)
            if options:
                yield Label("Choose:")
                yield OptionList(*[Option(str(o), id=str(i)) for i, o in enumerate(options)], id="choices")
            yield Label("Answer (text; tick JSON to send a JSON value):")
            # The box and its JSON tick share a row, so the buttons fit an 80x24 terminal.
            with Horizontal(id="answer-row"):
                # select_on_focus off: coming back to the box after an error must not select
                # the typed answer (the next key would wipe it).
                yield Input(placeholder="your answer", id="answer", select_on_focus=False)
                yield Checkbox("JSON", id="as-json")
            yield Static("", id="answer-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send (enter)", variant="primary", id="send")
                yield Button("Close unanswered (^n)", id="close-interrupt")
                yield Button("Later (esc)", id="cancel")

    def _title(self) -> Text:
        ident = f" (interrupt {self.interrupt_id})" if self.interrupt_id else ""
        return Text(f"Run {self.run_id} is waiting for you at {self.node}{ident}", style="bold yellow")

    def _payload_view(self) -> Syntax:
        pretty = json.dumps(self.payload, indent=2, ensure_ascii=False, default=str)
        return Syntax(pretty, "json", word_wrap=True, background_color="default")

    def on_mount(self) -> None:
        focus_now(self.query_one("#answer", Input))

    def _submit(self) -> None:
        raw = self.query_one("#answer", Input).value
        error = self.query_one("#answer-error", Static)
        if self.query_one("#as-json", Checkbox).value:
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError as exc:
                error.update(Text(f"not valid JSON: {exc.msg} (column {exc.colno})", style="bold red"))
                box = self.query_one("#answer", Input)
                box.focus()
                box.selection = Selection.cursor(exc.pos)  # at the mistake; the text is kept
                return
        else:
            if not raw.strip():
                error.update(Text("type an answer (or choose an option)", style="bold red"))
                return
            value = raw
        self.dismiss(HumanReply(self.interrupt_id, value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    async def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """Moving in the list of open questions shows the one highlighted: what is sent answers
        the question shown (it stayed on the first until ``enter``). A typed answer is kept."""
        # Only the user's moves: a list just mounted (by the redraw below) announces its first row.
        if event.option_list.id != "which" or event.option.id is None or not event.option_list.has_focus:
            return
        event.stop()
        n = int(str(event.option.id).removeprefix("which-"))
        if n == self.current:
            return
        had_choices = bool(choices_of(self.payload))
        self.current = n
        options = choices_of(self.payload)
        if bool(options) == had_choices:  # the same parts: shown in place, the list keeps the focus
            self.query_one("#title", Label).update(self._title())
            self.query_one("#payload", Static).update(self._payload_view())
            if options:
                choices = self.query_one("#choices", OptionList)
                choices.clear_options()
                choices.add_options([Option(str(o), id=str(i)) for i, o in enumerate(options)])
            return
        typed = self.query_one("#answer", Input).value  # a choice list comes or goes: drawn again
        await self.recompose()
        self.query_one("#answer", Input).value = typed
        self.query_one("#which", OptionList).highlighted = n
        self.query_one("#answer", Input).focus()

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_list.id == "which":  # show another open question
            self.current = int(str(event.option.id).removeprefix("which-"))
            await self.recompose()
            self.query_one("#answer", Input).focus()
            return
        options = choices_of(self.payload)
        self.dismiss(HumanReply(self.interrupt_id, options[int(event.option.id or 0)]))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._submit()
        elif event.button.id == "close-interrupt":
            self.action_close_interrupt()
        else:
            self.action_cancel()

    def action_close_interrupt(self) -> None:
        """Close the shown question without an answer: the task that asked is dropped."""
        self.dismiss(HumanReply(self.interrupt_id, close=True))

    def action_cancel(self) -> None:
        self.dismiss(NO_ANSWER)

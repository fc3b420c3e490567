"""Fork a run at a step: edit the state before it (JSON, validated against the schema) and/or a
recorded model answer of that step, then run the fork live.

Each section has a key (``ctrl+s`` state, ``ctrl+l`` the model call, ``ctrl+t`` its answer, shown
in the section labels and the footer), and the keys follow the dialog rule of screens/dialog.py.

Why control keys: terminals send ``alt+DIGIT`` as ESC followed by the digit (xterm, tmux, most
Linux terminals), and Textual reads that pair as a character (ESC 3 is ``£``, for the option key
of macOS terminals), so ``alt+3`` typed ``£`` into the editor instead of moving. A control key is
one byte in every terminal. ``alt+1``..``alt+3`` stay as aliases for terminals that report them
as such (the kitty keyboard protocol: kitty, WezTerm, foot, Ghostty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label, Select, Static, TextArea

from workbench.errors import InvalidUpdateError
from workbench.graph import Graph
from workbench.history import StepView
from workbench.tui.key_order import after_typed_keys
from workbench.tui.keys import FittingFooter
from workbench.tui.screens.dialog import Dialog, DialogEditor

# The dialog's sections and the keys that focus them (none is taken by the editors: ctrl+a, e, k,
# u, w, d, x, c, v, z, y are; ctrl+r forks).
SECTIONS = {"1": "#fork-state", "2": "#fork-call", "3": "#fork-answer"}
SECTION_KEYS = {"1": "ctrl+s", "2": "ctrl+l", "3": "ctrl+t"}


@dataclass
class ForkRequest:
    """What the user asked for."""

    at_step: int | str  # a step, or an address inside a subgraph ("2/review#0.0/1")
    set_state: dict[str, Any] = field(default_factory=dict)
    llm_responses: dict[int, str] = field(default_factory=dict)


class ForkScreen(Dialog[ForkRequest | None]):
    """The state before the step in a JSON editor; one model answer of the step editable."""

    ESCAPE_TO = "#fork"
    BINDINGS = [
        Binding("ctrl+r", "submit", "Fork", priority=True),
        Binding(f"{SECTION_KEYS['1']},alt+1", "focus_section('1')", "State", priority=True),
        Binding(f"{SECTION_KEYS['2']},alt+2", "focus_section('2')", "Model call", priority=True),
        Binding(f"{SECTION_KEYS['3']},alt+3", "focus_section('3')", "Answer", priority=True),
    ]

    def __init__(self, run_id: str, view: StepView, graph: Graph) -> None:
        super().__init__()
        self.run_id, self.view, self.graph = run_id, view, graph
        self.calls = [c for c in view.calls if c["kind"] == "llm"]
        self._answer_for: int | None = None  # the call whose recorded answer the box was given

    def compose(self):  # type: ignore[no-untyped-def]
        yield FittingFooter()  # this dialog's keys (the main screen's are off while it is open)
        # Scrolls: in a short terminal the focused section (ctrl+s/l/t) is scrolled into view.
        with VerticalScroll(id="dialog", classes="dialog wide"):
            yield Label(Text(f"Fork {self.run_id} at step {self.view.step} ({', '.join(self.view.nodes)}) — "
                             "the fork shares steps before it and runs this step live with the current code",
                             style="bold"))
            yield Label(_section(SECTION_KEYS["1"], "State before the step (edit any key; ctrl+a selects all):"))
            yield DialogEditor(json.dumps(self.view.state_before, indent=2, ensure_ascii=False, default=str),
                               code=True, id="fork-state")
            if self.calls:
                yield Label(_section(SECTION_KEYS["2"], "Replace a recorded model answer of this step (optional):"))
                yield Select([(f"call {i} · {c['node']} · {c['model']}", i) for i, c in enumerate(self.calls, 1)],
                             id="fork-call", prompt="keep every answer")
                yield Label(_section(SECTION_KEYS["3"], "The answer the fork gets instead (ctrl+a selects all):"))
                yield DialogEditor("", id="fork-answer")
            yield Static("", id="fork-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Fork and run (ctrl+r)", variant="primary", id="fork")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#fork-state", TextArea).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, int):
            self._fill_answer(event.value)

    def _fill_answer(self, call: int) -> None:
        """Put call ``call``'s recorded answer in the answer box, once per call chosen: the
        select's Changed message arrives after ``ctrl+t`` has filled the box, maybe after the
        user has typed, and must not put the recorded answer back over the edit."""
        if self._answer_for == call:
            return
        self._answer_for = call
        answer = str((self.calls[call - 1]["response"] or {}).get("content", ""))
        box = self.query_one("#fork-answer", TextArea)
        if box.text != answer:
            box.text = answer

    def action_focus_section(self, key: str) -> None:
        """Focus a section. The answer box chooses the first call if none is chosen, and
        selects its recorded answer, so typing replaces it."""
        if key != "1" and not self.calls:
            self.notify("this step made no model call", severity="warning")
            return
        if key == "3":
            select = self.query_one("#fork-call", Select)
            if not isinstance(select.value, int):
                select.value = 1
            self._fill_answer(select.value if isinstance(select.value, int) else 1)
            self.query_one("#fork-answer", TextArea).select_all()
        self.query_one(SECTIONS[key]).focus()

    @after_typed_keys
    def action_submit(self) -> None:
        error = self.query_one("#fork-error", Static)
        try:
            edited = json.loads(self.query_one("#fork-state", TextArea).text)
        except json.JSONDecodeError as exc:
            error.update(Text(f"state is not valid JSON: {exc.msg} (line {exc.lineno})", style="bold red"))
            editor = self.query_one("#fork-state", TextArea)
            editor.focus()
            editor.move_cursor((exc.lineno - 1, exc.colno - 1))  # at the mistake, the text kept
            return
        if not isinstance(edited, dict):
            error.update(Text("state must be a JSON object", style="bold red"))
            return
        before = json.loads(json.dumps(self.view.state_before, default=str))
        changes = {k: v for k, v in edited.items() if before.get(k) != v}
        try:
            self.graph.schema.check_keys(changes, "state")
            for k, v in changes.items():
                self.graph.schema.check_type(k, v, "state")
                if self.graph.schema.rule(k).kind == "append" and not isinstance(v, list):
                    raise InvalidUpdateError(f"state key {k!r} holds a list, got {type(v).__name__}")
        except InvalidUpdateError as exc:
            error.update(Text(str(exc), style="bold red"))
            return
        request = ForkRequest(self.view.step, changes)
        if self.calls:
            choice = self.query_one("#fork-call", Select).value
            if isinstance(choice, int):
                request.llm_responses[choice] = self.query_one("#fork-answer", TextArea).text
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "fork":
            self.action_submit()
        else:
            self.action_cancel()


def _section(key: str, label: str) -> Text:
    """A section label with the key that focuses it."""
    text = Text()
    text.append(f"[{key}] ", style="bold cyan")
    text.append(label)
    return text

"""Modal viewers for recorded values: one value in full, two values side by side with their
differences highlighted, and a picker listing the values of a step or a run to open.

Values are shown whole — pretty JSON, strings with their real newlines — in scrollable panes.
Text can be selected with the mouse and copied (ctrl+c); ``esc`` closes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from workbench.diffview import full_side
from workbench.tui.keys import focus_now
from workbench.valuediff import json_changes, pretty


def _describe(value: Any) -> str:
    if isinstance(value, str):
        lines = value.count("\n") + 1
        return f"text, {len(value)} characters, {lines} line{'s' if lines != 1 else ''}"
    if isinstance(value, dict):
        return f"object, {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"list, {len(value)} item{'s' if len(value) != 1 else ''}"
    return "null" if value is None else type(value).__name__


def _highlighted(value: Any) -> Text:
    """A string as it is; anything else as pretty JSON, coloured (as Text, so it can be selected)."""
    if isinstance(value, str):
        return Text(value)
    from rich.syntax import Syntax

    text = Syntax("", "json", background_color="default").highlight(pretty(value))
    text.rstrip()
    return text


class ValueScreen(ModalScreen[None]):
    """One value in full."""

    CSS_PATH = "viewers.tcss"

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", tooltip="Close the viewer"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, title: str, value: Any) -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="viewer"):
            yield Static(Text.assemble((self.title_text, "bold"), ("  " + _describe(self.value), "dim")),
                         classes="viewer-title")
            with VerticalScroll(id="viewer-body", classes="viewer-pane") as pane:
                pane.can_focus = True
                yield Static(_highlighted(self.value), id="viewer-text")
        yield Footer()

    def on_mount(self) -> None:
        focus_now(self.query_one("#viewer-body"))

    def action_scroll(self, lines: int) -> None:
        self.query_one("#viewer-body", VerticalScroll).scroll_relative(y=lines, animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class DiffScreen(ModalScreen[None]):
    """Two values side by side, in full, each with what differs from the other highlighted."""

    CSS_PATH = "viewers.tcss"

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", tooltip="Close the viewer"),
        Binding("tab", "switch", "Other side", tooltip="Move between A and B"),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, title: str, a: Any, b: Any, label_a: str = "A", label_b: str = "B") -> None:
        super().__init__()
        self.title_text = title
        self.a, self.b = a, b
        self.labels = (label_a, label_b)

    def compose(self) -> ComposeResult:
        changes = json_changes(self.a, self.b, limit=1000)
        paths = [c.path for c in changes if c.path]
        summary = "same" if not changes else (
            f"{len(changes)} difference{'s' if len(changes) != 1 else ''}"
            + (": " + ", ".join(paths[:6]) + (" …" if len(paths) > 6 else "") if paths else ""))
        with Vertical(classes="viewer"):
            yield Static(Text.assemble((self.title_text, "bold"), ("  " + summary, "dim")), classes="viewer-title")
            with Horizontal(id="diff-sides"):
                for which, value, label in (("a", self.a, self.labels[0]), ("b", self.b, self.labels[1])):
                    with VerticalScroll(id=f"diff-{which}", classes="viewer-pane") as pane:
                        pane.can_focus = True
                        pane.border_title = f"{label} · {_describe(value)}"
                        yield Static(full_side(self.a, self.b, which), id=f"diff-{which}-text")
        yield Footer()

    def on_mount(self) -> None:
        focus_now(self.query_one("#diff-a"))

    def _pane(self) -> VerticalScroll:
        focused = self.focused
        return focused if isinstance(focused, VerticalScroll) else self.query_one("#diff-a", VerticalScroll)

    def action_switch(self) -> None:
        other = "#diff-b" if self._pane().id == "diff-a" else "#diff-a"
        self.query_one(other).focus()

    def action_scroll(self, lines: int) -> None:
        # Both sides move together: the same place in A and in B stays side by side.
        for pane in self.query(".viewer-pane").results(VerticalScroll):
            pane.scroll_relative(y=lines, animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ValuePicker(ModalScreen[None]):
    """A list of named values (a step's changed keys, updates, calls; a run's input and output):
    enter opens one in full — a pair ``(a, b)`` in the side-by-side diff viewer."""

    CSS_PATH = "viewers.tcss"

    BINDINGS = [Binding("escape,q", "dismiss", "Close", tooltip="Close the list")]

    def __init__(self, title: str, values: list[tuple[str, Any]], pairs: list[tuple[str, Any, Any]] | None = None,
                 labels: tuple[str, str] = ("before", "after")) -> None:
        super().__init__()
        self.title_text = title
        self.values = values
        self.pairs = pairs or []
        self.labels = labels

    def compose(self) -> ComposeResult:
        with Vertical(classes="viewer picker"):
            yield Static(Text.assemble((self.title_text, "bold"), ("  enter opens a value in full", "dim")),
                         classes="viewer-title")
            box = OptionList(id="picker-list")
            for i, (label, _a, _b) in enumerate(self.pairs):
                box.add_option(Option(Text.assemble((label, "bold magenta"),
                                                    (f"  {self.labels[0]} → {self.labels[1]}", "dim")),
                                      id=f"pair:{i}"))
            for i, (label, value) in enumerate(self.values):
                box.add_option(Option(Text.assemble((label, "bold"), (f"  {_describe(value)}", "dim")),
                                      id=f"value:{i}"))
            yield box
        yield Footer()

    def on_mount(self) -> None:
        focus_now(self.query_one("#picker-list"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind, _, index = (event.option.id or "").partition(":")
        if kind == "pair":
            label, a, b = self.pairs[int(index)]
            self.app.push_screen(DiffScreen(label, a, b, *self.labels))
        elif kind == "value":
            label, value = self.values[int(index)]
            self.app.push_screen(ValueScreen(label, value))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


def step_values(view: Any) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any]]]:
    """A step's values for the picker: its changed keys (before → after), then each task's input
    and update, each model and tool call's request and answer, interrupts, and the state."""
    pairs = [(f"state.{key}", before, after) for key, before, after in view.diff()]
    values: list[tuple[str, Any]] = []
    for task in view.tasks:
        where = f"{task['node']} (task {task['task']}, attempt {task['attempt']})"
        if task.get("arg") is not None:
            values.append((f"{where} · branch input", task["arg"]))
        if task["update"] is not None:
            values.append((f"{where} · update", task["update"]))
        if task.get("error"):
            values.append((f"{where} · error", task["error"] + ("\n\n" + task["traceback"]
                                                                if task.get("traceback") else "")))
    number = 0
    for call in view.calls:
        if call["kind"] == "llm":
            number += 1
            where = f"model call {number} · {call['node']}"
            values.append((f"{where} · messages", call["messages"]))
            values.append((f"{where} · answer", (call["response"] or {}).get("content")
                           if not call["error"] else call["error"]))
            values.append((f"{where} · raw response", call["response"]))
        else:
            where = f"tool {call['model']} · {call['node']}"
            values.append((f"{where} · arguments", call["messages"]))
            values.append((f"{where} · result", call["response"] if not call["error"] else call["error"]))
    for intr in view.interrupts:
        values.append((f"human input · {intr['node']} · asked", intr["payload"]))
        if intr.get("response") is not None:
            values.append((f"human input · {intr['node']} · answered", intr["response"]))
    state = view.state_after if view.state_after is not None else view.state_before
    values.append(("state after this step" if view.state_after is not None else "state before this step", state))
    return pairs, values

"""The form that starts a run: one field per input key of the graph's state schema, or raw JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static, TabbedContent, TabPane, TextArea

from workbench.errors import InvalidUpdateError
from workbench.graph import Graph
from workbench.tui.key_order import after_typed_keys
from workbench.tui.keys import FittingFooter, focus_now
from workbench.tui.screens.dialog import Dialog, DialogEditor

SIMPLE = {"str": str, "int": int, "float": float, "bool": bool}


class RunInputScreen(Dialog[dict[str, Any] | None]):
    """Returns the validated input dict, or None when cancelled (keys: screens/dialog.py)."""

    ESCAPE_TO = "#run"
    BINDINGS = [Binding("ctrl+r", "submit", "Run", priority=True)]

    def __init__(self, graph: Graph, previous: dict[str, Any] | None = None, title: str | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.previous = previous or {}
        self.title_text = title or f"Run {graph.name}"  # continuing a conversation says so

    def _fields(self) -> list[tuple[str, str]]:
        types = {row["key"]: row["type"] for row in self.graph.schema.describe()}
        return [(k, types.get(k, "json")) for k in self.graph.inputs]

    def compose(self):  # type: ignore[no-untyped-def]
        yield FittingFooter()  # this dialog's keys (the main screen's are off while it is open)
        with Vertical(id="dialog", classes="dialog"):
            yield Label(Text(self.title_text, style="bold"))
            with TabbedContent(id="input-tabs"):
                with TabPane("Form", id="tab-form"), VerticalScroll():
                    for key, typ in self._fields():
                        yield Label(f"{key} ({typ})")
                        value = self.previous.get(key)
                        shown = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
                        placeholder = "text" if typ == "str" else ("JSON" if typ not in SIMPLE else typ)
                        yield Input(shown, placeholder=placeholder, id=f"field-{key}")
                with TabPane("Raw JSON", id="tab-json"):
                    yield DialogEditor(json.dumps(self.previous or {}, indent=2), code=True, id="raw-json")
            yield Static("", id="input-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Run (ctrl+r)", variant="primary", id="run")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        fields = self.query(Input)
        if fields:
            focus_now(fields.first())
        else:
            self.query_one("#input-tabs", TabbedContent).active = "tab-json"
            focus_now(self.query_one("#raw-json", TextArea))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field runs (the form is usually one or two fields)."""
        event.stop()
        self.action_submit()

    def _collect(self) -> dict[str, Any]:
        tabs = self.query_one("#input-tabs", TabbedContent)
        if tabs.active == "tab-json":
            raw = self.query_one("#raw-json", TextArea).text.strip() or "{}"
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidUpdateError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
            if not isinstance(value, dict):
                raise InvalidUpdateError("the input must be a JSON object")
            return value
        out: dict[str, Any] = {}
        for key, typ in self._fields():
            raw = self.query_one(f"#field-{key}", Input).value
            if raw == "":
                continue
            if typ == "str":
                out[key] = raw
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise InvalidUpdateError(f"{key}: expected {typ}, got {raw!r}") from None
            out[key] = value
        return out

    @after_typed_keys
    def action_submit(self) -> None:
        error = self.query_one("#input-error", Static)
        try:
            value = self._collect()
            self.graph.schema.initial(value)  # validates keys and types
        except InvalidUpdateError as exc:
            error.update(Text(str(exc), style="bold red"))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_submit()
        else:
            self.action_cancel()

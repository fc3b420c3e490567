"""The inspector: everything recorded about the selected step — the before/after diff with the
changed keys highlighted, each node's update, errors with tracebacks, every model and tool call
(messages, answer, model, tokens, cost, latency, raw request), and the full state after it."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from workbench.history import StepView
from workbench.tui.widgets.text_update import update_text


def _json(value: Any) -> RenderableType:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return Syntax(text, "json", word_wrap=True, background_color="default")


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


def render_step(view: StepView, run_id: str, schema_keys: list[str], *, going: bool = False) -> RenderableType:
    """The inspector's content for one step (``going``: the run is being recorded right now)."""
    parts: list[RenderableType] = []
    owner = f"  (shared history, recorded by {view.owner})" if view.owner != run_id else ""
    head = Text(f"step {view.step}: {', '.join(view.nodes) or 'nothing planned'}", style="bold")
    head.append(owner, style="dim")
    parts.append(head)

    diff = view.diff()
    if view.state_after is None and going:
        parts.append(Text("This step is running: it has not committed yet.", style="yellow"))
    elif view.state_after is None:
        parts.append(Text("This step did not commit (the run failed, waited or stopped here).", style="yellow"))
    if diff:
        table = Table(title="changed keys", title_justify="left", expand=True, show_lines=False)
        # Ratios, not content widths: a long value must not squeeze the others to nothing in a
        # narrow pane (the key is cut with an ellipsis before the values lose their room).
        table.add_column("key", style="bold magenta", no_wrap=True, overflow="ellipsis", ratio=1, min_width=6)
        table.add_column("before", overflow="fold", ratio=2, min_width=8)
        table.add_column("after", overflow="fold", style="green", ratio=2, min_width=8)
        for key, before, after in diff:
            table.add_row(key, _short(before, 200), _short(after, 200))
        parts.append(table)
    elif view.state_after is not None:
        parts.append(Text("No state change.", style="dim"))
    for key, _op, value in view.edits_after:
        parts.append(Text(f"edited by the fork after this step: {key} = {_short(value)}", style="magenta"))

    for task in view.tasks:
        title = f"{task['node']} · task {task['task']} · attempt {task['attempt']} · {task['status']} · " \
                f"{task['duration_ms']:.1f} ms"
        body: list[RenderableType] = []
        if task.get("arg") is not None:
            body.append(Text("branch input (Send):", style="dim"))
            body.append(_json(task["arg"]))
        if task["update"] is not None:
            body.append(Text("update:", style="dim"))
            body.append(_json(task["update"]))
        if task["error"]:
            body.append(Text(task["error"], style="bold red"))
        if task.get("traceback"):
            body.append(Syntax(task["traceback"], "python", word_wrap=True, background_color="default"))
        border = {"completed": "green", "failed": "red", "interrupted": "yellow",
                  "cancelled": "bright_black", "closed": "bright_black"}.get(task["status"], "white")
        parts.append(Panel(Group(*body) if body else Text("(no update)", style="dim"), title=title,
                           title_align="left", border_style=border))

    number = 0
    for call in view.calls:
        if call["kind"] == "llm":
            number += 1
            resp = call["response"] or {}
            title = (f"model call {number} · {call['node']} · {call['model']} · "
                     f"{call['prompt_tokens'] or 0}+{call['completion_tokens'] or 0} tokens · "
                     f"${call['cost_usd'] or 0:.5f} · {call['latency_ms'] or 0:.0f} ms"
                     + (f" · {call['attempts']} attempts" if (call["attempts"] or 1) > 1 else ""))
            body = []
            for m in call["messages"] or []:
                body.append(Text(f"{m.get('role', '?')}:", style="bold cyan"))
                body.append(Text(str(m.get("content", ""))))
            body.append(Text("answer:", style="bold green"))
            body.append(Text(str(resp.get("content", "")) if not call["error"] else call["error"],
                             style="" if not call["error"] else "red"))
            body.append(Text("raw request:", style="dim"))
            body.append(_json({"model": call["model"], "messages": call["messages"], "params": call["params"],
                               "fingerprint": call["fingerprint"]}))
            body.append(Text("raw response:", style="dim"))
            body.append(_json(resp))
            parts.append(Panel(Group(*body), title=title, title_align="left", border_style="cyan"))
        else:
            title = f"tool {call['model']} · {call['node']} · {call['latency_ms'] or 0:.1f} ms"
            body = [Text("arguments:", style="dim"), _json(call["messages"]), Text("result:", style="dim"),
                    _json(call["response"]) if not call["error"] else Text(call["error"], style="red")]
            parts.append(Panel(Group(*body), title=title, title_align="left", border_style="blue"))

    for intr in view.interrupts:
        body = [Text("asked:", style="dim"), _json(intr["payload"])]
        if intr.get("status") == "closed":
            body.append(Text("closed without an answer: the task was dropped", style="dim"))
        elif intr["resumed_at"] is not None:
            body += [Text("answered:", style="dim"), _json(intr["response"])]
        else:
            body.append(Text("waiting for an answer — press i", style="yellow"))
        ident = f" · {intr['interrupt_id']}" if intr.get("interrupt_id") else ""
        parts.append(Panel(Group(*body), title=f"human input · {intr['node']}{ident}", title_align="left",
                           border_style="yellow"))

    state = view.state_after if view.state_after is not None else view.state_before
    ordered = {k: state[k] for k in schema_keys if k in state}
    ordered |= {k: v for k, v in state.items() if k not in schema_keys}
    parts.append(Text("state after this step:" if view.state_after is not None else "state before this step:",
                      style="bold"))
    parts.append(Pretty(ordered, expand_all=False))
    return Group(*parts)


class Inspector(VerticalScroll, can_focus=True):
    """Scrollable details of the selected step."""

    BORDER_TITLE = "Inspector"

    view: StepView | None = None
    """The step shown (``v`` opens its values in full)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.shown: tuple[str, int] | None = None
        """The (run id, step) on screen, None for a message."""
        # Held, not queried: a step can arrive before the (lazily mounted) tab has composed us.
        self.body = Static(Text("Select a step in the timeline.", style="dim"), id="inspector-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self.body

    def show_step(self, view: StepView, run_id: str, schema_keys: list[str], *, going: bool = False) -> None:
        self.view = view
        self.body.update(render_step(view, run_id, schema_keys, going=going))
        self.shown = (run_id, view.step)
        self.border_subtitle = ""
        self.remove_class("loading")
        self.scroll_home(animate=False)

    def show_message(self, text: str) -> None:
        self.view = None
        update_text(self.body, Text(text, style="dim"))
        self.shown = None
        self.border_subtitle = ""
        self.remove_class("loading")

    def mark_loading(self, run_id: str, step: int) -> None:
        """A step is being read: say so at once. Another step of the same run stays on screen,
        dimmed, until it arrives (no flicker while the cursor moves); anything else is cleared."""
        if self.shown is None or self.shown[0] != run_id:
            self.show_message(f"Loading step {step}…")
        else:
            self.border_subtitle = f"loading step {step}…"
            self.add_class("loading")

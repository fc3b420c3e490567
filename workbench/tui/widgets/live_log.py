"""What a live run is doing: step events as they happen and model tokens as they stream."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from workbench.context import Event
from workbench.tui.stepping import pause_words


class LiveLog(RichLog):
    """Progress of the run in flight (tokens are appended to the current line)."""

    BORDER_TITLE = "Live"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=True, markup=False, max_lines=5000, **kwargs)  # type: ignore[arg-type]
        self._tokens: list[str] = []
        # Empty (no run yet): a few rows only, so the graph above gets the room (app.tcss).
        self.add_class("-empty")

    def on_resize(self, event: Resize) -> None:
        # (Textual calls RichLog's own handler too: handlers run for each class that has one.)
        # Shrunk (a short terminal keeps one line of it: app.tcss), the log kept its scroll
        # position and showed the middle of the run; the end is what it is there for.
        if self.auto_scroll:
            self.call_after_refresh(self.scroll_end, animate=False)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self.remove_class("-empty")
        return super().write(*args, **kwargs)

    def clear(self) -> Any:
        self.add_class("-empty")
        return super().clear()

    def _flush_tokens(self) -> None:
        if self._tokens:
            self.write(Text("".join(self._tokens), style="cyan"))
            self._tokens = []

    def add_event(self, event: Event) -> None:
        kind, data = event.kind, event.data
        if kind == "token":
            self._tokens.append(str(data.get("data", "")))
            if len(self._tokens) > 40 or "\n" in self._tokens[-1]:
                self._flush_tokens()
            return
        self._flush_tokens()
        if kind == "run_started":
            self.write(Text(f"▶ run {event.run_id} ({data.get('graph')})", style="bold"))
            moved = data.get("rerouted")
            if moved:  # a fork whose state edit routed its first step elsewhere
                self.write(Text(f"  step {moved.get('where', (event.step or 0) + 1)} routed from the edited state: "
                                f"{', '.join(moved['to'])} (the parent ran {', '.join(moved['from'])})",
                                style="yellow"))
        elif kind == "run_resumed":
            self.write(Text(f"▶ resumed {event.run_id} at step {event.step}", style="bold"))
        elif kind == "step_started":
            self.write(Text(f"step {event.step}: {', '.join(data.get('nodes', []))}", style="dim"))
        elif kind == "task_finished":
            status = data.get("status")
            style = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(str(status), "")
            line = Text(f"  {event.node} {status} in {data.get('duration_ms', 0):.1f} ms", style=style)
            if data.get("error"):
                line.append(f" — {data['error']}", style="red")
            self.write(line)
        elif kind == "task_retrying":
            self.write(Text(f"  ↻ {event.node} retrying (attempt {data.get('attempt')}): {data.get('error')}",
                            style="yellow"))
        elif kind == "waiting":
            self.write(Text(f"⏸ waiting for human input at {event.node} — press i to answer", style="bold yellow"))
        elif kind == "paused":
            words = pause_words({**data, "node": event.node, "step": event.step})  # says step, stop or why
            if event.node:
                words += f" (step {event.step})"
            self.write(Text(f"⏸ {words} — s step, c continue", style="bold yellow"))
        elif kind == "run_finished":
            status = data.get("status")
            style = "bold green" if status == "completed" else "bold red"
            self.write(Text(f"■ run {status}" + (f": {data.get('error')}" if data.get("error") else ""),
                            style=style))
        elif kind == "output":
            self.write(Text(str(data.get("data")), style="magenta"))

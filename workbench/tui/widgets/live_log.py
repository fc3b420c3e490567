"""What a live run is doing: step events as they happen and model tokens as they stream."""

from __future__ import annotations

import time
from typing import Any

from rich._wrap import divide_line  # rich's own word wrap: where it breaks a line into rows
from rich.text import Text
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import RichLog

from workbench.context import Event
from workbench.tui.stepping import pause_words

FLUSH_EVERY_S = 0.1
"""Streamed tokens are drawn at most this often (each at once when they come slower than that)."""

TOKEN_STYLE = "cyan"


class LiveLog(RichLog):
    """Progress of the run in flight (tokens are appended to the current line).

    A streamed answer grows on one line, wrapped as any long line is; a newline in the answer, a
    token from another node or any other event ends that line. Only the answer's last row is
    drawn again as tokens arrive (rows before it are settled), so a long answer costs the same
    per token as a short one.
    """

    BORDER_TITLE = "Live"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=True, markup=False, max_lines=5000, **kwargs)  # type: ignore[arg-type]
        self._tokens: list[str] = []  # arrived, not drawn yet
        self._line = Text(style=TOKEN_STYLE)  # the line in progress, from the start of its last row
        self._line_rows = 0  # rows at the end of self.lines that draw self._line
        self._line_open = False  # whether tokens (drawn or not) make a line in progress
        self._line_node: str | None = None  # whose tokens they are
        self._last_flush = float("-inf")
        self._flush_timer: Timer | None = None
        # Empty (no run yet): a few rows only, so the graph above gets the room (app.tcss).
        self.add_class("-empty")

    def on_resize(self, event: Resize) -> None:
        # (Textual calls RichLog's own handler too: handlers run for each class that has one.)
        # Shrunk (a short terminal keeps one line of it: app.tcss), the log kept its scroll
        # position and showed the middle of the run; the end is what it is there for.
        if self.auto_scroll:
            self.call_after_refresh(self.scroll_end, animate=False)
        if self._line and not self._line_rows:
            # Tokens came while the log had no size (hidden): RichLog's handler, which runs after
            # this one, writes what it kept; the line in progress goes below that.
            self.call_after_refresh(self._draw_line)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self.remove_class("-empty")
        return super().write(*args, **kwargs)

    def clear(self) -> Any:
        self.add_class("-empty")
        self._stop_timer()
        self._tokens, self._line, self._line_rows = [], Text(style=TOKEN_STYLE), 0
        self._line_open, self._line_node = False, None
        return super().clear()

    # ------------------------------------------------------------------ streamed tokens

    def _add_token(self, event: Event) -> None:
        if self._line_open and event.node != self._line_node:
            self._end_line()  # another node's answer (parallel branches) starts its own line
        self._line_open, self._line_node = True, event.node
        self._tokens.append(str(event.data.get("data", "")))
        if self._flush_timer is not None:
            return  # a flush is due: this token is drawn with it
        wait = self._last_flush + FLUSH_EVERY_S - time.monotonic()
        if wait <= 0:
            self._flush_tokens()  # tokens coming slowly are shown as each arrives
        else:
            self._flush_timer = self.set_timer(wait, self._flush_tokens)

    def _stop_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None

    def _flush_tokens(self) -> None:
        """Draw the tokens that arrived since the last flush onto the line in progress."""
        self._stop_timer()
        self._last_flush = time.monotonic()
        if not self._tokens:
            return
        text = "".join(self._tokens).replace("\r\n", "\n")
        self._tokens = []
        *ended, rest = text.split("\n")
        for piece in ended:  # each newline in the answer ends a line
            self._line.append(piece)
            self._draw_line()
            self._finish_line(blank=True)
        if rest:
            self._line.append(rest)
            self._draw_line()

    def _draw_line(self) -> None:
        """Draw the line in progress again, in place of its last drawing (its last row).

        It edits RichLog's own rows (``lines``, ``_line_cache``, ``_start_line``): textual is
        pinned in pyproject.toml, and test_live_log.py checks the rows against rich's wrapping."""
        if self._line_rows:
            del self.lines[-self._line_rows:]
            self._line_rows = 0
            self._line_cache.clear()  # (RichLog caches rows by position: these are drawn anew)
        if not self._line or not self._size_known:
            return  # (no size yet: on_resize draws it once there is one)
        # The width a long line wraps at (RichLog's own choice for one): given, so it is known here.
        width = max(self.scrollable_content_region.width, self.min_width)
        before = self._start_line + len(self.lines)
        self.write(self._line, width=width)
        self._line_rows = self._start_line + len(self.lines) - before
        self._settle_rows(width)
        self.refresh()

    def _settle_rows(self, width: int) -> None:
        """Keep all but the last row of the line in progress as they are: text that arrives later
        only ever changes the last row (rich wraps greedily), so only that is drawn again."""
        if self._line_rows < 2:
            return
        breaks = divide_line(self._line.plain, width, fold=True)
        if len(breaks) == self._line_rows - 1:  # (otherwise keep drawing the whole line: still right)
            self._line = self._line[breaks[-1]:]
            self._line_rows = 1

    def _finish_line(self, *, blank: bool = False) -> None:
        """The line in progress is done: its rows stay. ``blank``: an empty line is shown too (a
        newline in the answer)."""
        if not self._line_rows and (self._line or blank):
            self.write(self._line)  # never drawn: a blank line, or no size yet (RichLog keeps it till then)
        self._line, self._line_rows = Text(style=TOKEN_STYLE), 0

    def _end_line(self) -> None:
        """End the streamed answer's line: the next thing written starts a line of its own."""
        self._flush_tokens()
        self._finish_line()
        self._line_open, self._line_node = False, None

    # ------------------------------------------------------------------ events

    def add_event(self, event: Event) -> None:
        """Show one event of the run in flight: a token on the line in progress, anything else on
        lines of its own (which end the streamed line)."""
        if event.kind == "token":
            self._add_token(event)
            return
        lines = event_lines(event)
        if lines:  # (an event shown as nothing, e.g. step_committed, leaves the answer's line open)
            self._end_line()
        for line in lines:
            self.write(line)


def event_lines(event: Event) -> list[Text]:
    """The Live log's lines for an event other than a token (none for one it does not show)."""
    kind, data = event.kind, event.data
    out: list[Text] = []
    if kind == "run_started":
        out.append(Text(f"▶ run {event.run_id} ({data.get('graph')})", style="bold"))
        moved = data.get("rerouted")
        if moved:  # a fork whose state edit routed its first step elsewhere
            out.append(Text(f"  step {moved.get('where', (event.step or 0) + 1)} routed from the edited state: "
                            f"{', '.join(moved['to'])} (the parent ran {', '.join(moved['from'])})",
                            style="yellow"))
    elif kind == "run_resumed":
        out.append(Text(f"▶ resumed {event.run_id} at step {event.step}", style="bold"))
    elif kind == "step_started":
        out.append(Text(f"step {event.step}: {', '.join(data.get('nodes', []))}", style="dim"))
    elif kind == "task_finished":
        status = data.get("status")
        style = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(str(status), "")
        line = Text(f"  {event.node} {status} in {data.get('duration_ms', 0):.1f} ms", style=style)
        if data.get("error"):
            line.append(f" — {data['error']}", style="red")
        out.append(line)
    elif kind == "task_retrying":
        out.append(Text(f"  ↻ {event.node} retrying (attempt {data.get('attempt')}): {data.get('error')}",
                        style="yellow"))
    elif kind == "waiting":
        out.append(Text(f"⏸ waiting for human input at {event.node} — press i to answer", style="bold yellow"))
    elif kind == "paused":
        words = pause_words({**data, "node": event.node, "step": event.step})  # says step, stop or why
        if event.node:
            words += f" (step {event.step})"
        out.append(Text(f"⏸ {words} — s step, c continue", style="bold yellow"))
    elif kind == "run_finished":
        status = data.get("status")
        style = "bold green" if status == "completed" else "bold red"
        out.append(Text(f"■ run {status}" + (f": {data.get('error')}" if data.get("error") else ""),
                        style=style))
    elif kind == "output":
        out.append(Text(str(data.get("data")), style="magenta"))
    return out

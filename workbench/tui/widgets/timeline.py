"""The timeline of a run: one line per superstep with a duration waterfall.

Rendered line by line (Textual's line API), so a run of tens of thousands of steps opens and
scrolls at once: only the visible lines are ever drawn. A live run's new steps are appended
(:meth:`Timeline.apply`), never the whole list rebuilt. A subgraph's inner steps are indented
under the step that called them and fold away (enter, or ← →). j/k move, e jumps to the next
error, n to the next search match; the highlighted step is posted as StepHighlighted (with the
subgraph's run id for an inner step).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from workbench.history import TimelineRow
from workbench.tui.columns import timeline_widths
from workbench.tui.messages import StepHighlighted

STATUS_MARK = {"completed": ("✓", "green"), "failed": ("✗", "bold red"), "interrupted": ("⏸", "yellow"),
               "retried": ("↻", "yellow"), "pending": ("…", "cyan")}
BAR_WIDTH = 16
LABEL_WIDTH = 22


def _duration(ms: float) -> str:
    """A duration in 10 columns: ms below 10 s, then seconds, minutes, hours."""
    if ms < 10_000:
        return f"{ms:>8.1f}ms"
    if ms < 600_000:
        return f"{ms / 1000:>9.1f}s"
    if ms < 36_000_000:
        return f"{ms / 60_000:>9.1f}m"
    return f"{ms / 3_600_000:>9.1f}h"


class Timeline(ScrollView, can_focus=True):
    """Steps of one run; the cursor selects the step the inspector shows."""

    BINDINGS = [
        Binding("down,j", "cursor(1)", "Next step", show=False),
        Binding("up,k", "cursor(-1)", "Previous step", show=False),
        Binding("pagedown", "cursor(20)", show=False),
        Binding("pageup", "cursor(-20)", show=False),
        Binding("home,g", "jump(0)", show=False),
        Binding("end,G", "jump(-1)", show=False),
        Binding("e", "next_error", "Next error", tooltip="Jump to the next failed or retried step"),
        Binding("n", "next_match", "Next match", show=False),
        Binding("space", "play", "Play", tooltip="Play the run back: step through it on its own (space stops)"),
        Binding("enter", "toggle_fold", "Fold", show=False,
                tooltip="Fold or unfold a subgraph's inner steps under this step"),
        Binding("left", "fold(True)", show=False),
        Binding("right", "fold(False)", show=False),
    ]

    cursor: reactive[int] = reactive(0)
    """Index of the highlighted row."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.run_id: str | None = None
        self.rows: list[TimelineRow] = []
        """Every row, inner steps included (folded or not)."""
        self.shown: list[int] = []
        """Indexes into ``rows`` of the lines shown (folded inner steps left out)."""
        self.folded: set[tuple[str, int]] = set()
        """Steps whose inner steps are folded away, as (recording run id or "", step)."""
        self.executed: set[str] = set()
        """The nodes the run's own (top-level) steps ran: the path the graph view lights."""
        self.search: str = ""
        self.placeholder = "No run selected: pick one in Runs (2), or press r to run a graph."
        self._total_ms = 1.0
        self._player: Timer | None = None

    def show_rows(self, run_id: str, rows: list[TimelineRow], *, keep_cursor: bool = False,
                  follow: bool = False) -> None:
        """Show a run's steps: the cursor on the same step as before (``keep_cursor``), on the
        newest step (``follow``, for a run in progress or just stopped: unless the user moved the
        cursor and nothing new came), else on the first."""
        self.apply(run_id, 0, rows, keep_cursor=keep_cursor, follow=follow)

    def apply(self, run_id: str, keep: int, rows: list[TimelineRow], *, keep_cursor: bool = False,
              follow: bool = False) -> None:
        """Keep the first ``keep`` rows and append ``rows`` (a live run's refresh: the work is
        the size of the tail, not of the run). ``keep=0`` replaces everything."""
        current = self.current
        # Following a run moves the cursor to its newest step when there is a new step, or when
        # it was there; a step the user moved to stays selected when a refresh brings nothing
        # new (the late read after a run paused took the cursor back from the step the user was
        # about to fork).
        at_end = run_id != self.run_id or not self.shown or self.cursor >= len(self.shown) - 1
        before = len(self.rows) if run_id == self.run_id else 0
        key = _key(current) if keep_cursor and current is not None else None
        at = self.shown[self.cursor] if key is not None else -1  # the cursor's row, if it stays
        if keep == 0 or run_id != self.run_id:
            keep = 0
            self.rows, self.shown, self.executed = [], [], set()
            self._total_ms = 1.0
            if run_id != self.run_id:
                self.folded = set()
        self.run_id = run_id
        del self.rows[keep:]
        cut = bisect_left(self.shown, keep)
        del self.shown[cut:]
        self.rows += rows
        self._show_from(keep)
        for r in rows:
            self._total_ms = max(self._total_ms, r.start_ms + r.duration_ms)
            if r.depth == 0 and r.status != "pending":
                self.executed.update(r.nodes)
        self.virtual_size = Size(self._width(), len(self.shown))
        if follow and (at_end or key is None or len(self.rows) > before):
            index = len(self.shown) - 1
        elif key is not None and 0 <= at < keep:
            index = self.cursor  # above the part read again: the same line
        elif key is not None:  # in the part read again: find it there (a few rows)
            index = next((cut + i for i, v in enumerate(self.shown[cut:]) if _key(self.rows[v]) == key),
                         len(self.shown) - 1)
        else:
            index = 0
        self.cursor = max(0, index)
        if self.shown and (self.shown[self.cursor] >= keep or not keep_cursor):
            self._announce()  # a new line, or the same step read again: the inspector reloads it
        self.refresh()

    def show_loading(self, run_id: str | None, text: str) -> None:
        """Empty the timeline at once while a run is read (nothing of the previous run stays);
        ``run_id`` None: no run is shown (``text`` says why)."""
        self.stop_playing()
        self.run_id, self.rows, self.shown, self.executed = run_id, [], [], set()
        self.folded = set()
        self.placeholder = text
        self.virtual_size = Size(self._width(), 0)
        self.cursor = 0
        self.refresh()

    def _show_from(self, start: int) -> None:
        """Add to ``visible`` the rows from ``start`` on, leaving out those under a folded step
        (``start`` is always a top-level row: nothing above it hides it)."""
        i, n = start, len(self.rows)
        while i < n:
            row = self.rows[i]
            self.shown.append(i)
            i += 1 + (row.inner if row.inner and _key(row) in self.folded else 0)

    def _width(self) -> int:
        return 6 + 2 + LABEL_WIDTH + 1 + 11 + BAR_WIDTH + 2 + 100

    @property
    def current(self) -> TimelineRow | None:
        return self.rows[self.shown[self.cursor]] if 0 <= self.cursor < len(self.shown) else None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= len(self.shown):
            if not self.shown and y == 0:
                return Strip([Segment(self.placeholder, Style(dim=True))]).crop_extend(0, width, None)
            return Strip.blank(width)
        row = self.rows[self.shown[index]]
        # A narrow timeline shrinks the waterfall, then the label, so tokens and errors show.
        fit = timeline_widths(width)
        label_width, bar_width = fit.label, fit.bar
        mark, color = STATUS_MARK.get(row.status, ("·", "white"))
        text = Text(no_wrap=True)
        if row.depth:
            text.append(f"{'·' + str(row.step):>5} ", style="dim")
        else:
            text.append(f"{row.step:>5} ", style="dim" if row.shared else "")
        text.append(f"{mark} ", style=color)
        fold = ("▸ " if _key(row) in self.folded else "▾ ") if row.inner else ""
        label = "  " * row.depth + fold + row.label
        label = label if len(label) <= label_width else label[: label_width - 1] + "…"
        text.append(f"{label:<{label_width}} ", style="bold" if len(row.nodes) > 1 else "")
        text.append(_duration(row.duration_ms) + " ")
        if bar_width:
            start = int(bar_width * row.start_ms / self._total_ms)
            length = max(1, round(bar_width * row.duration_ms / self._total_ms))
            start = min(start, bar_width - 1)
            length = min(length, bar_width - start)
            text.append(" " * start)
            text.append("█" * length, style=color)
            text.append(" " * (bar_width - start - length) + "  ")
        extras = []
        if row.inner and _key(row) in self.folded:
            extras.append((f"+{row.inner} inner ", "dim"))
        if row.attempts > 1:
            extras.append((f"{row.attempts} attempts ", "yellow"))
        if row.tokens:
            extras.append((f"{row.tokens} tok ", "cyan"))
        if row.shared:
            extras.append(("shared ", "dim"))
        if row.error:
            extras.append((row.error[:80], "red"))
        for t, s in extras:
            text.append(t, style=s)
        if self.search and self.search.lower() in row.label.lower() + " " + (row.error or "").lower():
            text.stylize("underline")
        if index == self.cursor:
            text.stylize("reverse" if self.has_focus else "on grey23")
        strip = Strip(text.render(self.app.console)).crop_extend(scroll_x, scroll_x + width, None)
        return strip

    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to_cursor()
        self.refresh()

    def on_resize(self) -> None:
        # A pane made smaller (the terminal resized, the layout gone narrow) left the cursor's
        # line out of view until the next key moved it: keep it in view.
        self.call_after_refresh(self.scroll_to_cursor)

    def scroll_to_cursor(self) -> None:
        top = self.scroll_offset.y
        # The rows a scroll bar leaves (the horizontal one takes the last: the cursor went under it).
        height = max(1, self.scrollable_content_region.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def _announce(self) -> None:
        row = self.current
        if row is not None and self.run_id is not None:
            self.post_message(StepHighlighted(row.run_id or self.run_id, row.step))

    def action_cursor(self, delta: int) -> None:
        if not self.shown:
            return
        new = max(0, min(len(self.shown) - 1, self.cursor + delta))
        if new != self.cursor:
            self.cursor = new
            self._announce()

    def action_jump(self, index: int) -> None:
        if self.shown:
            self.cursor = index % len(self.shown)
            self._announce()

    def action_toggle_fold(self) -> None:
        row = self.current
        if row is not None and row.inner:
            self.action_fold(_key(row) not in self.folded)

    def action_fold(self, fold: bool) -> None:
        """Fold (or unfold) the inner steps under the highlighted step; on an inner step, fold
        the step that called it. Where there is nothing to fold, scroll left (or right)."""
        if not self.shown:
            return
        at = self.shown[self.cursor]
        if fold and not self.rows[at].inner and self.rows[at].depth:
            # Fold from inside: the nearest row above that holds this one.
            at = next((i for i in range(at - 1, -1, -1)
                       if self.rows[i].depth < self.rows[at].depth and i + self.rows[i].inner >= at), at)
        row = self.rows[at]
        if not row.inner:  # nothing to fold here: the keys scroll sideways, as in any scroll view
            (self.scroll_left if fold else self.scroll_right)(animate=False)
            return
        if (_key(row) in self.folded) == fold:
            return
        (self.folded.add if fold else self.folded.discard)(_key(row))
        self.shown = []
        self._show_from(0)
        self.virtual_size = Size(self._width(), len(self.shown))
        self.cursor = bisect_left(self.shown, at)
        self._announce()
        self.refresh()

    def _find(self, predicate: Callable[[TimelineRow], object]) -> bool:
        """Move to the next line after the cursor for which ``predicate`` holds (round to the
        cursor's own); the bell and False when there is none."""
        n = len(self.shown)
        for offset in range(1, n + 1):
            i = (self.cursor + offset) % n
            if predicate(self.rows[self.shown[i]]):
                self.cursor = i
                self._announce()
                return True
        self.app.bell()
        return False

    def action_next_error(self) -> None:
        self._find(lambda r: r.status in ("failed", "retried") or r.error)

    def action_next_match(self) -> None:
        if not self.search:
            return
        needle = self.search.lower()

        def matches(r: TimelineRow) -> bool:
            return needle in r.label.lower() + " " + (r.error or "").lower()

        if not self._find(matches):  # (the bell alone, and the box gone, said nothing of why)
            folded = any(matches(r) for r in self.rows)
            self.notify(f"no step matches {self.search!r}" + (" (inside folded steps some do: → unfolds)"
                                                               if folded else ""), severity="warning")

    def action_play(self) -> None:
        """Play back: move to the next step every 0.7 s (the inspector and graph follow)."""
        if self._player is not None:
            self.stop_playing()
            return
        if not self.shown:
            return
        if self.cursor >= len(self.shown) - 1:
            self.cursor = 0
            self._announce()
        self._player = self.set_interval(0.7, self._advance)
        self.notify("playing back — space stops")

    def _advance(self) -> None:
        if self.cursor >= len(self.shown) - 1:
            self.stop_playing()
            return
        self.action_cursor(1)

    def stop_playing(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None

    def set_search(self, text: str) -> None:
        self.search = text
        self.refresh()
        self.action_next_match()

    def on_click(self, event: object) -> None:
        y = getattr(event, "y", None)
        if y is not None and self.shown:
            index = self.scroll_offset.y + int(y)
            if 0 <= index < len(self.shown):
                self.cursor = index
                self._announce()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


def _key(row: TimelineRow) -> tuple[str, int]:
    """A row's identity across refreshes: the run that recorded it and its step."""
    return (row.run_id, row.step)

"""The main screen's keys, where each tab puts the focus, a footer that fits its width, and
moving the focus before the next key arrives.

One rule for every tab key: it works from every tab and leaves the focus inside the tab it
shows. (A focus left in a hidden tab pulls its tab back to the front: that was how ``4``
did nothing from the Graph and Runs tabs.)
"""

from __future__ import annotations

from collections.abc import Iterator
from difflib import SequenceMatcher
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.compose import compose
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

TABS = ("tab-graph", "tab-runs", "tab-timeline", "tab-compare", "tab-sql")
"""The tabs in key order: ``1`` shows the first."""

TAB_FOCUS = {"tab-graph": "#graph-view", "tab-runs": "#runs-table", "tab-timeline": "#timeline",
             "tab-compare": "#compare-table", "tab-sql": "#sql-editor"}
"""The widget each tab focuses when shown."""

APP_BINDINGS: list[Binding | tuple[str, str] | tuple[str, str, str]] = [
    Binding("1", "tab('tab-graph')", "Graph", show=False),
    Binding("2", "tab('tab-runs')", "Runs", show=False),
    Binding("3", "tab('tab-timeline')", "Timeline", show=False),
    Binding("4", "tab('tab-compare')", "Compare", show=False),
    Binding("5", "tab('tab-sql')", "SQL", show=False),
    Binding("r", "run_graph", "Run", tooltip="Run the selected graph"),
    Binding("s", "step", "Step", tooltip="Run one superstep of the paused run"),
    Binding("c", "continue_run", "Continue", tooltip="Continue the paused run"),
    Binding("x", "stop_run", "Stop", tooltip="Pause the live run after its current step"),
    Binding("i", "answer", "Answer", tooltip="Answer the run waiting for human input"),
    Binding("w", "condition", "Break if…", tooltip="Pause when an expression over the state becomes true"),
    Binding("t", "continue_conversation", "Continue with input", show=False,
            tooltip="Continue the selected run's conversation with new input (a new run, its next turn)"),
    Binding("f", "fork", "Fork", tooltip="Fork the run at the selected step, with edits"),
    Binding("R", "rerun", "Re-run", tooltip="Re-run from the selected step with the current code"),
    Binding("m", "mark", "Mark", tooltip="Mark this run for comparison (m on the marked run unmarks it)"),
    Binding("p", "replay", "Replay", tooltip="Replay the open run with today's code and recorded answers"),
    Binding("G", "focus_graphs", "Graphs", show=False, tooltip="Move to the graph list"),
    Binding("right_square_bracket", "cycle_graph(1)", "Next graph", show=False,
            tooltip="Show the next graph of the project"),
    Binding("left_square_bracket", "cycle_graph(-1)", "Previous graph", show=False,
            tooltip="Show the previous graph of the project"),
    Binding("d", "compare", "Compare",
            tooltip="Compare with the marked run (the mark is then cleared), or a fork with its parent"),
    Binding("v", "view_value", "View value", show=False, tooltip="Open the value under the cursor in full"),
    Binding("slash", "search", "Search", tooltip="Search runs, or steps in the timeline"),
    Binding("z", "zoom", "Zoom", tooltip="Give the focused pane the whole screen (z again restores)"),
    Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False, tooltip="Show or hide the graph list"),
    Binding("L", "toggle_live", "Live panel", show=False, tooltip="Show or hide the Live log under the graph"),
    Binding("question_mark", "help", "Help"),
    Binding("q", "quit", "Quit"),
]

MAIN_ACTIONS = {b.action.split("(")[0] for b in APP_BINDINGS if isinstance(b, Binding)}
"""Actions of the main screen: off while a dialog is open."""

# Which keys a narrow footer keeps, most important first. Keys not listed (a pane's own keys
# come after these) are shown while room is left.
FOOTER_PRIORITY = ("quit", "help", "run_graph", "step", "continue_run", "fork", "compare", "zoom",
                   "answer", "search", "stop_run", "submit", "cancel", "focus_section")


def _priority(action: str) -> int:
    name = action.split("(")[0].rsplit(".", 1)[-1]
    return FOOTER_PRIORITY.index(name) if name in FOOTER_PRIORITY else len(FOOTER_PRIORITY)


class FittingFooter(Footer):
    """The footer, showing as many keys as fit its width: the important ones first (quit, help,
    run, step, continue, fork, compare…), in their usual order. Nothing is cut mid-key; ``?``
    lists every key."""

    _shown: tuple[Any, ...] | None = None
    """What the keys on screen were made from (see :meth:`recompose`)."""

    def _what_to_show(self) -> tuple[Any, ...] | None:
        if not self._bindings_ready or not self.is_attached:
            return None
        shown = tuple((b.key, b.key_display, b.description, b.action, b.group, enabled, tooltip)
                      for (_, b, enabled, tooltip) in self.screen.active_bindings.values() if b.show)
        return (self.app.size.width, self.compact, self.show_command_palette, shown)

    def compose(self) -> ComposeResult:
        self._shown = self._what_to_show()
        keys: list[Widget] = list(super().compose())
        for key in fit_keys(keys, self.app.size.width, compact=self.compact):
            if isinstance(key, FooterKey) and not key.has_class("-command-palette"):
                # Born with the footer's style: a key mounted compact and bound to a non-compact
                # footer (or the reverse) restyled itself twice on every rebuild. (The palette
                # key is not bound to the footer's style: left as Textual makes it.)
                key.set_reactive(FooterKey.compact, self.compact)
                key.set_class(self.compact, "-compact", update=False)
            yield key

    async def recompose(self) -> None:
        """Rebuild the keys only when what they show changed. Textual's footer rebuilds every key
        widget on each change of focus; most changes leave the same keys, and building ~20 key
        widgets (each matched against the stylesheet) was a tenth of the app's work in a session
        of key presses."""
        if self._under_a_footer():
            return
        shown = self._what_to_show()
        if shown is not None and shown == self._shown:
            return
        await self._rebuild()

    async def _rebuild(self) -> None:
        """Textual's recompose, keeping the key widgets that did not change.

        Most rebuilds follow the focus from one pane to another: two or three keys come or go
        and the other ~15 stay as they were. Mounting those again (each matched against the
        stylesheet, rendered again, sized in a second layout of the screen) was most of a
        rebuild's work. The keys on screen end up the same widgets, in the same order, as a
        full rebuild would make."""
        if not self.is_attached or self._pruning:
            return
        old = list(self.query_children("*").exclude(".-textual-system"))
        new = compose(self)
        async with self.batch():
            if not old or not all(isinstance(w, FooterKey) for w in old + new):
                # The first build, or grouped keys (a group's label among them): all again.
                await self.query_children("*").exclude(".-textual-system").remove()
                if self.is_attached:
                    await self.mount_all(new)
                return
            same = SequenceMatcher(None, [_looks(w) for w in old], [_looks(w) for w in new], autojunk=False)
            kept: set[int] = set()
            for tag, i1, i2, _j1, _j2 in same.get_opcodes():
                if tag == "equal":
                    kept.update(range(i1, i2))
            gone = [w for i, w in enumerate(old) if i not in kept]
            if gone:
                await self.remove_children(gone)
            for tag, _i1, i2, j1, j2 in same.get_opcodes():
                if tag in ("insert", "replace") and self.is_attached:
                    # Before the next key that stays (at the end when none does).
                    before = next((old[i] for i in range(i2, len(old)) if i in kept), None)
                    if before is None:
                        await self.mount_all(new[j1:j2])
                    else:
                        await self.mount_all(new[j1:j2], before=before)

    def _under_a_footer(self) -> bool:
        """Whether a dialog with its own footer is open over this footer's screen.

        Opening a dialog turns the main screen's keys off and closing it turns them on again:
        each rebuilt this footer (two rebuilds per dialog, each ~15 key widgets and two layouts
        of the screen) though the dialog's footer hides it. Left as it was, it matches its keys
        again once its screen is back on top (the keys' refresh then finds nothing to do).
        A dialog without a footer (the command palette) shows this one: that one is rebuilt."""
        if not self.is_attached:  # (a dialog's footer, closing)
            return False
        top = self.app.screen
        return top is not self.screen and bool(top.query(Footer))

    def on_resize(self) -> None:
        self.call_after_refresh(self.recompose)


def _looks(key: Any) -> tuple[Any, ...]:
    """What a footer key shows and does: two keys alike in this are interchangeable."""
    return (key.key, key.key_display, key.description, key.action, key._disabled, key.tooltip,
            frozenset(key.classes), key.compact)


def _key_width(widget: Any, compact: bool) -> int:
    """Cells a footer key takes: its key and description, with the footer's spacing (a group
    label or the palette key counts as nothing; there is room for them at the end)."""
    if isinstance(widget, FooterKey) or hasattr(widget, "key_display"):
        pad = 1 if compact else 3
        return len(widget.key_display) + len(widget.description) + pad
    return 0


def fit_keys(keys: list[Any], width: int, *, compact: bool = False) -> Iterator[Any]:
    """The footer keys that fit in ``width`` columns, chosen by priority, in their own order."""
    total = sum(_key_width(k, compact) for k in keys)
    if total <= width:
        yield from keys
        return
    ranked = sorted(range(len(keys)), key=lambda i: (_priority(getattr(keys[i], "action", "")), i))
    kept: set[int] = set()
    used = 0
    for i in ranked:
        w = _key_width(keys[i], compact)
        if used + w <= width:
            kept.add(i)
            used += w
    yield from (k for i, k in enumerate(keys) if i in kept)


def focus_now(widget: Widget) -> None:
    """Focus ``widget`` before the next key is handled.

    ``Widget.focus`` queues the change behind messages already waiting, keys included: in a burst
    of keys (a fast typist, a paste, ``tmux send-keys``), ``G`` then ``Down`` sent the ``Down`` to
    the pane that had the focus before ``G``. The screen's own ``set_focus`` changes it at once.
    """
    widget.screen.set_focus(widget)
    if widget.screen.focused is not widget:  # not focusable at this moment: the usual way
        widget.focus()

"""The open run: its timeline, kept live as it grows, and the inspector on the highlighted step.

The part of the workbench app that opens a run, follows it while it records (its own runs and
other processes' alike) and keeps the inspector true to the cursor. The reads go through the
coalescing loaders (loaders.py); this class only decides what to read and applies what arrives:

- Opening a run empties the timeline and the inspector at once ("loading run …"): nothing of
  the previous run stays on screen while the new one is read.
- A run that records a step appends to the timeline (a TimelineFeed reads only the new tail).
- A result that is not the newest asked for (another run opened, the cursor moved on) is dropped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App
from textual.css.query import NoMatches
from textual.widgets import Static

from workbench.graph_layout import path_edges
from workbench.store.reader import shown_status
from workbench.tui.loaders import StepLoader, TimelineLoader
from workbench.tui.messages import RunGone, StepHighlighted, StepLoaded, StoreChanged, TimelineLoaded
from workbench.tui.run_heading import committed_steps, run_heading
from workbench.tui.widgets.graph_view import GraphView
from workbench.tui.widgets.inspector import Inspector
from workbench.tui.widgets.text_update import update_text
from workbench.tui.widgets.timeline import Timeline

if TYPE_CHECKING:
    from workbench.registry import GraphRegistry
    from workbench.store.shared import SharedStore


class RunViewApp(App[None]):
    """The open-run half of the workbench app (WorkbenchApp derives from it)."""

    shared: SharedStore
    registry: GraphRegistry
    selected_graph: str | None
    live: dict[str, Any] | None
    mark: str | None
    load_runs: Callable[[], Any]  # the app's worker that re-reads the runs list

    def _init_run_view(self) -> None:
        self.open_run: dict[str, Any] | None = None  # the run shown in the timeline
        self.selected_step: int | None = None  # the highlighted step of the open run itself
        self.selected_inner: tuple[str, int] | None = None  # (subgraph run, step) when an inner step is
        self._schema_keys: list[str] = []
        self._open_steps = 0  # the open run's step count, as its heading shows it
        self._follow: str | None = None  # a run whose timeline follows its newest step
        self._runs_loaded_at = 0.0  # when other processes' commits last reloaded the runs list
        self._runs_timer_set = False
        self.timeline_loader = TimelineLoader(self)  # type: ignore[arg-type]
        self.step_loader = StepLoader(self)  # type: ignore[arg-type]
        # The step views read so far, by (run id, step): what the fork dialog starts from.
        self._views = self.step_loader.views

    def load_timeline(self, run_id: str) -> None:
        """Read a run's timeline from the start."""
        self.timeline_loader.open(run_id)

    def _open_run(self, run_id: str) -> None:
        """Show a run: empty the timeline, its heading and the inspector now, read it in the
        background."""
        self.step_loader.cancel()
        self.step_loader.forget(run_id)
        try:
            self.query_one("#timeline", Timeline).show_loading(run_id, f"Loading run {run_id}…")
            self.query_one("#inspector", Inspector).show_message(f"Loading run {run_id}…")
            # (The heading named the run left behind, next to "Loading run …".)
            update_text(self.query_one("#timeline-head", Static), Text(f"Loading run {run_id}…", style="dim"))
        except NoMatches:  # the app is closing
            return
        self.selected_step = None
        self.selected_inner = None
        self.load_timeline(run_id)

    def _refresh_run(self, run_id: str) -> None:
        """Show what is new in a run that is recording (opening it first if another is shown)."""
        if self.timeline_loader.run_id == run_id:  # being read, or shown: read on from there
            self.timeline_loader.refresh(run_id)
        else:
            self._open_run(run_id)

    RUNS_RELOAD_S = 1.0
    """The least time between two reloads of the runs list caused by other processes' commits
    (a run recording steps commits several times a second: each reload would take the store
    from the recorder for nothing new but a step count)."""

    def on_store_changed(self, message: StoreChanged) -> None:
        self._reload_runs_soon()
        run = self.open_run
        if run is not None and self.timeline_loader.run_id != run["run_id"]:
            return  # another run is being opened (a fork just started): open_run is the old one
        own = self.live is not None and run is not None and self.live.get("run_id") == run.get("run_id")
        if run is not None and not own and (run["status"] not in ("completed", "failed")
                                            or self._follow == run["run_id"]):
            self._follow = run["run_id"]  # another process is recording it: keep to its newest step
            self._refresh_run(run["run_id"])

    def _reload_runs_soon(self) -> None:
        now = time.monotonic()
        if self._runs_timer_set:
            return  # one is already due
        wait = self._runs_loaded_at + self.RUNS_RELOAD_S - now
        if wait <= 0:
            self._runs_loaded_at = now
            self.load_runs()
            return
        self._runs_timer_set = True

        def due() -> None:
            self._runs_timer_set = False
            self._runs_loaded_at = time.monotonic()
            self.load_runs()

        self.set_timer(wait, due)

    def refresh_heading(self) -> None:
        """Draw the open run's heading again (its graph was reloaded: the "code changed since
        this run" note follows the code now loaded)."""
        run = self.open_run
        if run is None or self.timeline_loader.run_id != run["run_id"]:
            return  # (another run is being opened: its heading comes with it)
        graph = self.registry.get(run["graph"])
        self._schema_keys = graph.schema.keys if graph else []
        try:
            update_text(self.query_one("#timeline-head", Static), run_heading(run, self._open_steps, graph))
        except NoMatches:  # not mounted yet, or closing
            pass

    def on_timeline_loaded(self, message: TimelineLoaded) -> None:
        if message.seq != self.timeline_loader.seq:
            return  # superseded by a newer open
        try:
            timeline = self.query_one("#timeline", Timeline)
            head_widget = self.query_one("#timeline-head", Static)
        except NoMatches:  # the app is closing: a late answer from a worker
            return
        run = message.run
        same = self.open_run is not None and self.open_run["run_id"] == run["run_id"]
        self.open_run = run
        graph = self.registry.get(run["graph"])
        self._schema_keys = graph.schema.keys if graph else []
        follow = self._follow == run["run_id"]
        if follow and self.live is None and run["status"] in ("completed", "failed", "waiting", "paused"):
            self._follow = None  # the run stopped: this was its last update
        if message.keep:
            # The steps read again may have changed (a step in flight gained tasks): the
            # inspector reads them afresh.
            self.step_loader.forget(run["run_id"], message.since)
        timeline.apply(run["run_id"], message.keep, message.rows, keep_cursor=same, follow=follow)
        self._open_steps = committed_steps(run, timeline.rows)
        update_text(head_widget, run_heading(run, self._open_steps, graph))
        if not message.total:
            self.query_one("#inspector", Inspector).show_message("This run has no steps yet.")
        self._highlight_path()

    def on_run_gone(self, message: RunGone) -> None:
        """A run shown was deleted by another process: say so, and stop showing it."""
        rid = message.run_id
        if self.mark == rid:
            self.mark = None
            self.notify(f"the marked run {rid} was deleted: nothing is marked now", severity="warning")
        if self.timeline_loader.run_id != rid:
            return  # (another run was opened meanwhile, or it was cleared already)
        self.timeline_loader.close()
        self.step_loader.cancel()
        self.step_loader.forget(rid)
        self.open_run = None
        self.selected_step = None
        self.selected_inner = None
        if self._follow == rid:
            self._follow = None
        try:
            self.query_one("#timeline", Timeline).show_loading(None, f"Run {rid} was deleted. Pick a run in Runs (2).")
            self.query_one("#inspector", Inspector).show_message(f"Run {rid} was deleted.")
            update_text(self.query_one("#timeline-head", Static), Text("No run open.", style="dim"))
        except NoMatches:  # the app is closing
            return
        self._highlight_path()
        self.notify(f"run {rid} was deleted (by another process): it is no longer shown", severity="warning")

    def _highlight_path(self) -> None:
        try:
            view = self.query_one("#graph-view", GraphView)
            timeline = self.query_one("#timeline", Timeline)
        except NoMatches:  # the app is closing: a late message (a step highlighted as it went)
            return
        if self.open_run and self.open_run["graph"] == self.selected_graph and timeline.rows:
            row = timeline.current
            ran = [n for r in timeline.rows if r.depth == 0 and r.status != "pending" for n in r.nodes]
            current = set(row.nodes) if row and not row.depth else set()
            paused = (self.open_run.get("config") or {}).get("paused") or {}
            if self.open_run["status"] == "paused" and paused.get("node") and row is timeline.rows[-1]:
                current = {paused["node"]}  # a path such as review/approve lights the inner node
            steps = [r.nodes for r in timeline.rows if r.depth == 0]  # the pending step too: where it stands
            graph = self.registry.get(self.open_run["graph"])
            joins = [(j.sources, j.target) for j in graph.joins] if graph is not None else []
            taken = path_edges(steps, finished=self.open_run["status"] == "completed", joins=joins)
            view.mark_run(set(ran), current, visits=Counter(ran), run_id=self.open_run["run_id"], taken=taken)
        else:
            view.mark_run(set(), set())

    def on_step_highlighted(self, message: StepHighlighted) -> None:
        run = self.open_run
        own = run is not None and message.run_id == run["run_id"]
        self.selected_step = message.step if own else None
        self.selected_inner = None if own else (message.run_id, message.step)
        view = self.step_loader.request(message.run_id, message.step, self._schema_keys)
        try:
            inspector = self.query_one("#inspector", Inspector)
        except NoMatches:
            return
        if view is not None:
            inspector.show_step(view, message.run_id, self._schema_keys, going=self._run_going())
        else:
            inspector.mark_loading(message.run_id, message.step)
        self._highlight_path()

    def _run_going(self) -> bool:
        """Whether the open run is being recorded right now (its last step is still running)."""
        return self.open_run is not None and shown_status(self.open_run) == "running"

    def on_step_loaded(self, message: StepLoaded) -> None:
        if message.gen != self.step_loader.gen:
            return  # the cursor (or the run) moved on meanwhile
        try:
            inspector = self.query_one("#inspector", Inspector)
        except NoMatches:  # the app is closing: a late answer from a worker
            return
        inspector.show_step(message.view, message.run_id, message.schema_keys, going=self._run_going())

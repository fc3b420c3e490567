"""Starting and steering runs from the workbench, kept out of app.py.

:class:`RunControl` is mixed into :class:`~workbench.tui.app.WorkbenchApp`: the run form (``r``),
step (``s``), continue (``c``), the next turn of a conversation (``t``), stop (``x``), the break
condition (``w``) and answering a waiting run (``i``). Every run starts through :meth:`_start`,
which hands it to the app's ``execute`` worker with the graph's breakpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App
from textual.widgets import TabbedContent

from workbench.runtime.subgraph import open_interrupts
from workbench.store.shared import SharedStore
from workbench.tui.lifecycle import prewarm_llm
from workbench.tui.loaders import TimelineLoader
from workbench.tui.messages import WorkFailed
from workbench.tui.screens.condition import ConditionScreen
from workbench.tui.screens.human_input import NO_ANSWER, HumanInputScreen
from workbench.tui.screens.run_input import RunInputScreen
from workbench.tui.stepping import make_break_when
from workbench.tui.widgets.live_log import LiveLog


class RunControl(App[None]):
    """Run, step, continue, stop, break-if and answer (a base of the workbench app)."""

    # Provided by WorkbenchApp (and RunViewApp).
    shared: SharedStore
    registry: Any
    selected_graph: str | None
    open_run: dict[str, Any] | None
    timeline_loader: TimelineLoader
    live: dict[str, Any] | None
    ended: dict[str, Any] | None
    breaks: dict[str, dict[str, set[str]]]
    condition: str | None
    stop_flag: threading.Event
    step_mode: bool
    runs: list[dict[str, Any]]
    last_inputs: dict[str, dict[str, Any]]
    execute: Callable[..., Any]
    _guard: Callable[[str, Callable[[], object]], None]
    _tabs: Callable[[], TabbedContent]
    action_tab: Callable[[str], None]
    _current_run_id: Callable[[], str | None]

    @work(thread=True, exclusive=True, group="interrupt")
    def find_interrupt(self, run_id: str | None) -> None:
        """Open the answer dialog for a waiting run (the open one, else the newest waiting)."""
        def job() -> None:
            with self.shared.lease() as store:
                rid = run_id
                if rid is None or store.get_run(rid)["status"] != "waiting":
                    rows = store._query("SELECT run_id FROM runs WHERE status = 'waiting' ORDER BY started_at DESC "
                                       "LIMIT 1")
                    rid = rows[0][0] if rows else None
                if rid is None:
                    self.call_from_thread(self.notify, "no run is waiting for input")
                    return
                run = store.get_run(rid)
                open_ones = open_interrupts(store, rid)  # its subgraphs' questions too
            if not open_ones:
                self.call_from_thread(self.notify, f"run {rid} has no open question")
                return
            self.call_from_thread(self._ask_human, rid, run["graph"], open_ones)

        self._guard("Human input", job)

    def _break_when(self, initial_state: Any) -> Callable[[Any], bool | str]:
        """Step (s), stop (x) and the break condition (w) for the run about to start
        (stepping.py); the step flag is used up by it."""
        self.stop_flag.clear()
        step_mode, self.step_mode = self.step_mode, False
        return make_break_when(
            self.condition, step_mode=step_mode, stop_flag=self.stop_flag, initial_state=initial_state,
            on_error=lambda exc: self.post_message(WorkFailed("Break condition", f"{type(exc).__name__}: {exc}")))

    def _graph_breaks(self, graph: str) -> dict[str, set[str]]:
        return self.breaks.setdefault(graph, {"before": set(), "after": set()})

    def _start(self, kind: str, graph: str, **kwargs: Any) -> None:
        if self.live is not None:
            if self.live.get("stopped"):  # it reported its pause: start once its thread returns
                self.live["then"] = (kind, graph, kwargs)
                return
            self.notify("a run is in progress: stop it (x) or wait for it", severity="warning")
            return
        prewarm_llm()  # (if the idle timer has not yet)
        breaks = self._graph_breaks(graph)
        self.live = live = {"run_id": kwargs.get("run_id"), "graph": graph}
        self.query_one("#live-log", LiveLog).clear()
        self.execute(kind, graph, live, break_before=sorted(breaks["before"]), break_after=sorted(breaks["after"]),
                     **kwargs)

    def _ask_human(self, run_id: str, graph: str, open_ones: list[dict[str, Any]]) -> None:
        def answered(reply: Any) -> None:
            if reply is NO_ANSWER:
                return
            if reply.close:
                self._start("resume", graph, run_id=run_id, close=[reply.interrupt_id])
            else:
                self._start("resume", graph, run_id=run_id, value=reply.value, interrupt=reply.interrupt_id)

        first = open_ones[0]
        self.push_screen(HumanInputScreen(run_id, first["node"], first["payload"], interrupts=open_ones), answered)

    def action_run_graph(self) -> None:
        name = self.selected_graph
        graph = self.registry.get(name) if name else None
        if graph is None or name is None:
            self.notify("no graph selected (or it failed to load)", severity="warning")
            return

        def start(value: dict[str, Any] | None) -> None:
            if value is None:
                self.step_mode = False  # cancelled: the next run must not start in step mode
                return
            self.last_inputs[name] = value
            self._show_new_run()
            self._start("run", name, input=value)

        prewarm_llm()  # while the form is filled in
        self.push_screen(RunInputScreen(graph, self.last_inputs.get(name)), start)

    def _show_new_run(self) -> None:
        """A run started from a form is shown on the Graph tab (its nodes light up as they run)
        with the focus on the drawing, once the form has gone and given the focus back: left to
        that, it went to the pane the form was opened from (the Timeline, hidden now; or from the
        Runs table to the lineage tree beside it), and keys did nothing."""
        self.call_after_refresh(self.action_tab, "tab-graph")

    def _paused_run(self) -> dict[str, Any] | None:
        """The open run if it is paused; or the run being shown that has just paused and is not
        read back yet (a short run can pause before its first read returns): c and s work as
        soon as the Live log says "paused"."""
        shown = self.timeline_loader.run_id
        run = self.open_run
        if run is not None and run["status"] == "paused" and shown in (None, run["run_id"]):
            return run
        for recent in (self.live, self.ended):
            if recent and recent.get("paused") and recent.get("run_id") == shown:
                return recent
        return None

    def action_step(self) -> None:
        run = self._paused_run()
        if run is None:
            if self.live is None:
                self.step_mode = True
                self.action_run_graph()
            return
        self.step_mode = True
        self._start("resume", run["graph"], run_id=run["run_id"])

    def action_continue_run(self) -> None:
        run = self._paused_run()
        if run is None:
            self.notify("the open run is not paused" if self.open_run else
                        "no run is open: open a paused run (Runs → enter), then c continues it", severity="warning")
            return
        self._start("resume", run["graph"], run_id=run["run_id"])

    def action_continue_conversation(self) -> None:
        """The next turn of the selected run's conversation: a form for the new input, then a
        new run from the run's last state merged with it (a run that had not completed is
        superseded)."""
        rid = self._current_run_id()
        run = next((r for r in self.runs if r["run_id"] == rid), None)
        if run is None and self.open_run is not None and self.open_run["run_id"] == rid:
            run = self.open_run
        if rid is None or run is None:
            self.notify("select a run first (Runs → a row, or open one)", severity="warning")
            return
        graph_name = str(run["graph"])
        graph = self.registry.get(graph_name)
        if graph is None:
            self.notify(f"graph {graph_name!r} is not loaded", severity="error")
            return
        if run["status"] == "superseded":
            self.notify(f"run {rid} was already continued; continue its newest turn instead", severity="warning")
            return

        def start(value: dict[str, Any] | None) -> None:
            if value is None:
                return
            self._show_new_run()
            self._start("continue", graph_name, run_id=rid, input=value)

        self.push_screen(RunInputScreen(graph, None, title=f"Continue run {rid} with new input"), start)

    def action_stop_run(self) -> None:
        if self.live is None:
            self.notify("no run in progress", severity="warning")
            return
        self.stop_flag.set()
        self.notify("stopping after the current step…")

    def action_answer(self) -> None:
        self.find_interrupt(self._current_run_id())

    def action_condition(self) -> None:
        def done(expr: str | None) -> None:
            if expr is None:
                return
            self.condition = expr or None
            self.notify(f"break when: {expr}" if expr else "break condition cleared")

        self.push_screen(ConditionScreen(self.condition), done)

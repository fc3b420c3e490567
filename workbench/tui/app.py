"""The workbench TUI: design, run, step through, inspect, replay and fork workflow graphs.

All store and model work runs in thread workers that post messages back (messages.py); the UI
thread only draws. The trace store is shared with every other process (store/store.py): a CLI
run, a service or a test may record into it while the workbench is open, and a watcher worker
notices their commits (a cheap change token) and refreshes the runs and the open timeline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.screen import ModalScreen, Screen
from textual.widgets import Header, Input, Static, TabbedContent, TabPane

from workbench.context import Event
from workbench.errors import WorkbenchError
from workbench.graph import display_path
from workbench.runtime.subgraph import open_interrupts
from workbench.store.shared import SharedStore
from workbench.store.store import default_db_path
from workbench.tui.background import Background
from workbench.tui.data_views import DataViews
from workbench.tui.keys import APP_BINDINGS, MAIN_ACTIONS, TAB_FOCUS, FittingFooter
from workbench.tui.lifecycle import (
    IDLE_WORK_AFTER_S,
    install_daemon_executor,
    prewarm_llm,
    resume_gc,
)
from workbench.tui.messages import (
    BreakpointToggled,
    GraphReloaded,
    GraphSelected,
    GraphsLoaded,
    RunChosen,
    RunEnded,
    RunEventReceived,
    RunsLoaded,
    WorkFailed,
)
from workbench.tui.panes import PaneLayout
from workbench.tui.run_view import RunViewApp
from workbench.tui.runs_filter import runs_filter_sql
from workbench.tui.screens.condition import ConditionScreen
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.fork_editor import ForkRequest, ForkScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.human_input import NO_ANSWER, HumanInputScreen
from workbench.tui.screens.run_input import RunInputScreen
from workbench.tui.stepping import make_break_when, pause_words, start_state
from workbench.tui.widgets.compare_view import CompareView
from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.graph_view import GraphView
from workbench.tui.widgets.inspector import Inspector
from workbench.tui.widgets.lineage_tree import LineageTree
from workbench.tui.widgets.live_log import LiveLog
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.sql_console import SqlConsole
from workbench.tui.widgets.timeline import Timeline


class WorkbenchApp(DataViews, RunViewApp, Background):
    """The workbench. ``db``: trace store path; ``graphs``: graphs directory; ``watch``: hot reload."""

    CSS_PATH = "app.tcss"
    TITLE = "workbench"
    SUB_TITLE = "design · run · debug · replay · fork"
    BINDINGS = APP_BINDINGS  # keys.py: every key, and the rule that tab keys work from every tab

    def __init__(self, db: str | None = None, graphs: str | None = None, *, watch: bool = True,
                 exit_on_store_error: bool = False) -> None:
        super().__init__()
        from workbench.registry import GraphRegistry

        self.db_path = db or default_db_path()
        self.shared = SharedStore(self.db_path)
        self.exit_on_store_error = exit_on_store_error
        self.store_error: Exception | None = None
        """Why the store could not be opened, when that closed the app (exit_on_store_error)."""
        self.registry = GraphRegistry(graphs)
        self.watch_files = watch
        self.selected_graph: str | None = None
        self._init_run_view()  # open_run, selected_step, the timeline and step loaders (run_view.py)
        self.live: dict[str, Any] | None = None  # {"run_id", "graph"} while a run executes
        self.ended: dict[str, Any] | None = None  # the run that returned last: run_id, graph, paused
        self.breaks: dict[str, dict[str, set[str]]] = {}
        self.condition: str | None = None
        self.stop_flag = threading.Event()
        self.step_mode = False
        self.mark: str | None = None
        self.runs: list[dict[str, Any]] = []
        self.runs_filter = ""
        self.last_inputs: dict[str, dict[str, Any]] = {}
        self._quit_armed = False
        self.layout_state = PaneLayout(self)  # sidebar, Live panel, zoom, narrow mode (panes.py)

    # ----------------------------------------------------------------- layout

    def compose(self):  # type: ignore[no-untyped-def]
        yield Header()
        with Horizontal(id="body"):
            graphs = GraphList(id="graphs")
            graphs.border_title = "Graphs"
            yield graphs
            with TabbedContent(initial="tab-graph", id="tabs"):
                with TabPane("1 Graph", id="tab-graph"), Vertical():
                    yield GraphView(id="graph-view")
                    log = LiveLog(id="live-log")
                    log.border_title = "Live"
                    yield log
                # The hidden tabs' widgets are mounted just after the first frame (Lazy): the
                # screen shows sooner, and they are there before anyone can switch to them.
                # (Not the runs tab: the runs list, read at start, lands in it, and its columns
                # fit the width it had then.)
                with TabPane("2 Runs", id="tab-runs"), Vertical():
                    with Horizontal(id="runs-bar"):
                        yield Input(placeholder="filter: SQL WHERE over runs, e.g. status = 'failed'",
                                    id="runs-filter")
                        yield Input(placeholder="/ search text", id="runs-search")
                    yield Static("", id="runs-error", classes="error")
                    with Horizontal():
                        yield RunsTable(id="runs-table")
                        yield LineageTree(id="lineage")
                with TabPane("3 Timeline", id="tab-timeline"), Lazy(Horizontal()):
                    with Vertical(id="timeline-pane"):
                        yield Static(Text("No run open.", style="dim"), id="timeline-head")
                        yield Input(placeholder="search steps (enter), n for next", id="timeline-search",
                                    classes="hidden")
                        yield Timeline(id="timeline")
                    yield Inspector(id="inspector")
                with TabPane("4 Compare", id="tab-compare"):
                    yield Lazy(CompareView(id="compare"))
                with TabPane("5 SQL", id="tab-sql"):
                    yield Lazy(SqlConsole(os.path.join(os.path.dirname(self.db_path) or ".", "queries.json"),
                                          id="sql"))
        yield FittingFooter()

    def on_mount(self) -> None:
        install_daemon_executor()  # thread workers never hold up quitting (lifecycle.py)
        self.sub_title = f"{self.db_path} · graphs in {self.registry.directory}/"
        self.query_one("#graph-view", GraphView).focus()
        self.layout_state.resized(self.size.width)  # a narrow terminal starts in the narrow layout

    def on_ready(self) -> None:
        """The first frame is on screen: now the loads, which import graph files and open the
        store (on threads, they would have competed with drawing it)."""
        resume_gc()
        if self.exit_on_store_error:
            self.open_store()
        self.load_graphs()
        self.load_runs()
        if self.watch_files:
            self.watch_graphs()
        self.watch_store()
        # What no screen needs yet waits until the first keys are likely done (lifecycle.py).
        self.set_timer(IDLE_WORK_AFTER_S, self._idle_work)

    # ----------------------------------------------------------------- workers

    def _guard(self, title: str, fn: Callable[[], object]) -> None:
        """Run worker code; any failure becomes a WorkFailed message, never a crash."""
        try:
            fn()
        except WorkbenchError as exc:
            self.post_message(WorkFailed(title, str(exc)))
        except Exception as exc:
            self.post_message(WorkFailed(title, f"{type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, group="graphs")
    def load_graphs(self) -> None:
        self._guard("Loading graphs", lambda: self.post_message(GraphsLoaded(self.registry.load_all())))

    @work(thread=True, exclusive=True, group="runs")
    def load_runs(self) -> None:
        def job() -> None:
            from workbench.sqlquery import run_read_only

            where = self.runs_filter.strip()
            with self.shared.lease() as store:
                runs = store.list_runs(1000)
                if where:
                    try:
                        ids = {r[0] for r in run_read_only(store, runs_filter_sql(where)).rows}
                    except WorkbenchError as exc:
                        self.post_message(RunsLoaded(runs, error=str(exc)))
                        return
                    runs = [r for r in runs if r["run_id"] in ids]
            self.post_message(RunsLoaded(runs))

        self._guard("Reading runs", job)

    @work(thread=True, exclusive=True, group="run")
    def execute(self, kind: str, graph_name: str, **kwargs: Any) -> None:
        """Start, resume or fork a run; progress arrives as RunEventReceived messages."""
        from workbench.runtime import Runner

        def job() -> None:
            graph = self.registry.get(graph_name)
            if graph is None:
                raise WorkbenchError(f"graph {graph_name!r} is not loaded (see the graph list for errors)")
            with self.shared.lease() as store:
                def listen(event: Event) -> None:
                    self.post_message(RunEventReceived(event))

                runner = Runner(graph, store, listener=listen)
                break_when = self._break_when(start_state(store, graph, kind, kwargs))
                if kind == "run":
                    result = runner.run(kwargs["input"], break_before=kwargs["break_before"],
                                        break_after=kwargs["break_after"], break_when=break_when)
                elif kind == "continue":
                    result = runner.continue_run(kwargs["run_id"], kwargs["input"], break_when=break_when,
                                                 break_before=kwargs["break_before"],
                                                 break_after=kwargs["break_after"])
                elif kind == "resume":
                    result = runner.resume(kwargs["run_id"], kwargs.get("value", _NO_VALUE()),
                                           break_when=break_when, break_before=kwargs["break_before"],
                                           break_after=kwargs["break_after"], interrupt=kwargs.get("interrupt"),
                                           close=kwargs.get("close", ()))
                else:
                    req: ForkRequest = kwargs["request"]
                    result = runner.fork(kwargs["run_id"], req.at_step, set_state=req.set_state,
                                         llm_responses=req.llm_responses, break_when=break_when,
                                         break_before=kwargs["break_before"], break_after=kwargs["break_after"])
            self.post_message(RunEnded(result, graph_name))

        mine = self.live
        try:
            self._guard("Run", job)
        finally:
            # Only this run's: a run started from on_run_ended (c pressed at once) is not ours.
            if self.live is mine:
                self.live = None

    @work(thread=True, exclusive=True, group="sql")
    def export_sql(self, sql: str, fmt: str) -> None:
        import time as _time

        from workbench.sqlquery import export_parquet, run_read_only

        def job() -> None:
            folder = os.path.join(os.path.dirname(self.db_path) or ".", "exports")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"query-{_time.strftime('%Y%m%d-%H%M%S')}.{fmt}")
            with self.shared.lease() as store:
                if fmt == "csv":
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(run_read_only(store, sql).to_csv())
                else:
                    export_parquet(store, sql, path)
            self.call_from_thread(self.notify, f"exported to {path}")

        self._guard("Export", job)

    @work(thread=True, exclusive=True, group="compare")
    def load_comparison(self, a: str, b: str) -> None:
        def job() -> None:
            from workbench.compare import compare_runs

            with self.shared.lease() as store, store.reading():
                cmp = compare_runs(store, a, b)
            self.call_from_thread(self.query_one("#compare", CompareView).show_comparison, cmp)

        self._guard("Compare", job)

    @work(thread=True, exclusive=True, group="interrupt")
    def find_interrupt(self, run_id: str | None) -> None:
        """Open the answer dialog for a waiting run (the open one, else the newest waiting)."""
        def job() -> None:
            with self.shared.lease() as store:
                rid = run_id
                if rid is None or store.get_run(rid)["status"] != "waiting":
                    rows = store.query("SELECT run_id FROM runs WHERE status = 'waiting' ORDER BY started_at DESC "
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

    # ----------------------------------------------------------------- helpers

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

    def _tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    def _current_run_id(self) -> str | None:
        if self._tabs().active == "tab-runs":
            rid = self.query_one("#runs-table", RunsTable).selected_run_id
            if rid:
                return rid
        return self.open_run["run_id"] if self.open_run else None

    def _start(self, kind: str, graph: str, **kwargs: Any) -> None:
        if self.live is not None:
            if self.live.get("stopped"):  # it reported its pause: start once its thread returns
                self.live["then"] = (kind, graph, kwargs)
                return
            self.notify("a run is in progress: stop it (x) or wait for it", severity="warning")
            return
        prewarm_llm()  # (if the idle timer has not yet)
        breaks = self._graph_breaks(graph)
        self.live = {"run_id": kwargs.get("run_id"), "graph": graph}
        self.query_one("#live-log", LiveLog).clear()
        self.execute(kind, graph, break_before=sorted(breaks["before"]), break_after=sorted(breaks["after"]),
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

    # ----------------------------------------------------------------- message handlers

    def on_graphs_loaded(self, message: GraphsLoaded) -> None:
        names = self.registry.names()
        if self.selected_graph not in names:
            self.selected_graph = names[0] if names else None
        self.query_one("#graphs", GraphList).show(self.registry, self.selected_graph)
        self._show_graph()
        for r in message.results:
            if r.error:
                self.notify(r.error, title="graph file has an error", severity="error", timeout=8)

    def on_graph_reloaded(self, message: GraphReloaded) -> None:
        r = message.result
        self.query_one("#graphs", GraphList).show(self.registry, self.selected_graph)
        if r.error:
            self.notify(f"{r.error}\nthe last good version stays loaded", title="reload failed",
                        severity="error", timeout=8)
        else:
            changed = {g: n for g, n in r.changed.items() if n}
            # changed = differs from the version loaded at start (registry.py), not from the last save
            detail = "; ".join(f"{g}: {', '.join(sorted(n))}" for g, n in changed.items()) \
                or "no node differs from the version loaded at start"
            self.notify(f"reloaded {display_path(r.file)} — {detail}", title="graph reloaded")
        if self.selected_graph is None and self.registry.names():
            self.selected_graph = self.registry.names()[0]
        self._show_graph()

    def _show_graph(self) -> None:
        view = self.query_one("#graph-view", GraphView)
        name = self.selected_graph
        entry = self.registry.entries.get(name) if name else None
        error = None
        if entry is not None:
            error = self.registry.errors.get(entry.file)
        view.breaks = self._graph_breaks(name) if name else {"before": set(), "after": set()}
        view.show_graph(entry.graph if entry else None, changed=entry.changed_nodes if entry else None, error=error)
        graphs = self.query_one("#graphs", GraphList)
        names = self.registry.names()
        if name in names and graphs.highlighted != names.index(name):
            graphs.highlighted = names.index(name)
        self._highlight_path()

    def on_graph_selected(self, message: GraphSelected) -> None:
        if message.name != self.selected_graph:
            self.selected_graph = message.name
            self._show_graph()

    def on_breakpoint_toggled(self, message: BreakpointToggled) -> None:
        if self.selected_graph:
            marks = self._graph_breaks(self.selected_graph)[message.when]
            state = "set" if message.node in marks else "cleared"
            self.notify(f"breakpoint {message.when} {message.node} {state}")

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if not self.query("#runs-table"):
            return  # the app is closing: a late answer from a worker
        before = {r["run_id"]: r["status"] for r in self.runs}
        if before:
            for r in message.runs:
                if r["status"] == "waiting" and before.get(r["run_id"]) != "waiting" \
                        and not (self.live and self.live.get("run_id") == r["run_id"]):
                    self.notify(f"run {r['run_id']} ({r['graph']}) is waiting for human input — i answers it")
        self.runs = message.runs
        error = self.query_one("#runs-error", Static)
        error.update(Text(message.error, style="bold red") if message.error else "")
        self.query_one("#runs-table", RunsTable).show_runs(message.runs)
        self.query_one("#lineage", LineageTree).show_runs(message.runs)

    def on_run_chosen(self, message: RunChosen) -> None:
        self._open_run(message.run_id)
        self._tabs().active = "tab-timeline"
        self.query_one("#timeline", Timeline).focus()

    def on_run_event_received(self, message: RunEventReceived) -> None:
        event: Event = message.event
        self.query_one("#live-log", LiveLog).add_event(event)
        if event.kind == "run_started" and self.live is not None:
            self.live["run_id"] = event.run_id
            self._follow = event.run_id
            self._open_run(event.run_id)
        elif event.kind == "run_resumed" and self.live is not None:
            self._follow = event.run_id
        elif event.kind in ("step_committed", "waiting", "paused", "task_finished") and self.live is not None:
            if event.kind in ("waiting", "paused") and event.run_id == self.live.get("run_id"):
                self.live["stopped"] = True  # c, s, f pressed from now on wait for RunEnded
                self.live["paused"] = event.kind == "paused"
            rid = self.live.get("run_id")
            if rid and event.kind != "task_finished":
                self._refresh_run(rid)  # appends the new step: constant work per step
            if event.kind == "task_finished" and event.node:
                self.query_one("#graph-view", GraphView).mark_run(
                    self.query_one("#graph-view", GraphView).executed | {event.node}, {event.node})

    def on_run_ended(self, message: RunEnded) -> None:
        result = message.result
        then = (self.live or {}).get("then")
        self.ended = {"run_id": result.run_id, "graph": (self.live or {}).get("graph"),
                      "paused": result.status == "paused"}
        self.live = None
        self._follow = result.run_id  # show where it stopped
        self._refresh_run(result.run_id)
        self.load_runs()
        if result.status == "waiting":
            self.find_interrupt(result.run_id)
        elif result.status == "paused":
            self.notify(f"run {pause_words(result.paused)} — s steps, c continues", title="paused")
        elif result.status == "failed":
            self.notify(result.error or "failed", title=f"run {result.run_id} failed", severity="error", timeout=8)
        else:
            self.notify(f"run {result.run_id} completed", title="done")
        if then is not None:  # a continue or fork asked for while this run was returning
            kind, graph, kwargs = then
            self._start(kind, graph, **kwargs)

    def on_work_failed(self, message: WorkFailed) -> None:
        self.notify(message.error, title=message.title, severity="error", timeout=10)

    @on(Input.Submitted, "#runs-filter")
    def _filter_runs(self, event: Input.Submitted) -> None:
        self.runs_filter = event.value
        self.load_runs()

    @on(Input.Changed, "#runs-search")
    def _search_runs(self, event: Input.Changed) -> None:
        self.query_one("#runs-table", RunsTable).set_search(event.value)

    @on(Input.Submitted, "#timeline-search")
    def _search_steps(self, event: Input.Submitted) -> None:
        timeline = self.query_one("#timeline", Timeline)
        timeline.set_search(event.value)
        event.input.add_class("hidden")
        timeline.focus()

    @on(SqlConsole.ExportRequested)
    def _export(self, message: SqlConsole.ExportRequested) -> None:
        self.export_sql(message.sql, message.fmt)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-runs":
            self.load_runs()
        elif event.pane.id == "tab-sql":
            self._highlight_sql()

    # ----------------------------------------------------------------- actions

    def action_tab(self, tab: str) -> None:
        """Show a tab and move the focus into it (a focus left in the hidden tab would pull
        that tab back to the front)."""
        self.layout_state.unzoom()
        if tab == "tab-sql":
            self._highlight_sql()  # before it is drawn (TabActivated comes a moment later)
        self._tabs().active = tab
        self._focus_in(tab)

    def _focus_in(self, tab: str, retry: bool = True) -> None:
        targets = self.query(TAB_FOCUS[tab])
        if targets:
            targets.first().focus()
        elif retry:  # a key typed ahead, before the tab's lazy mount: focus once it is there
            self.call_after_refresh(self._focus_in, tab, False)

    def action_zoom(self) -> None:
        """Give the focused pane the whole screen, or restore the layout."""
        pane = self.layout_state.toggle_zoom(self.focused)
        if pane is None and self.layout_state.zoomed is None and self.focused is None:
            self.notify("nothing to zoom: focus a pane first", severity="warning")

    def action_toggle_sidebar(self) -> None:
        shown = self.layout_state.toggle_sidebar()
        if not shown and self.focused is not None and self.focused.id == "graphs":
            self.action_tab(self._tabs().active)

    def action_toggle_live(self) -> None:
        self.layout_state.toggle_live()

    def on_resize(self, event: events.Resize) -> None:
        self.layout_state.resized(event.size.width)

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
            self._tabs().active = "tab-graph"
            self._start("run", name, input=value)

        prewarm_llm()  # while the form is filled in
        self.push_screen(RunInputScreen(graph, self.last_inputs.get(name)), start)

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
            self.notify("the open run is not paused", severity="warning")
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
            self._tabs().active = "tab-graph"
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

    def action_fork(self, rerun: bool = False) -> None:
        run, step = self.open_run, self.selected_step
        if run is not None and self.selected_inner is not None:
            self._fork_inner(run, *self.selected_inner, rerun=rerun)
            return
        if run is None or step is None:
            self.notify("open a run and select a step first (Runs → enter)", severity="warning")
            return
        graph = self.registry.get(run["graph"])
        if graph is None:
            self.notify(f"graph {run['graph']!r} is not loaded", severity="error")
            return
        if rerun:
            self._start("fork", run["graph"], run_id=run["run_id"], request=ForkRequest(step))
            return
        view = self._views.get((run["run_id"], step))
        if view is None:
            self.notify("the step is still loading; try again", severity="warning")
            return

        def done(request: ForkRequest | None) -> None:
            if request is not None and self.open_run is not None:
                self._start("fork", run["graph"], run_id=run["run_id"], request=request)

        self.push_screen(ForkScreen(run["run_id"], view, graph), done)

    @work(thread=True, exclusive=True, group="fork-inner")
    def _fork_inner(self, run: dict[str, Any], child_run_id: str, step: int, rerun: bool) -> None:
        """Fork at a step inside a subgraph: its address from the root run (``2/review#0.0/1``)
        and the subgraph's graph (to check the edits) are read here, off the UI thread."""
        from workbench.runtime.addresses import address_for
        from workbench.runtime.subgraph import find_graph

        def job() -> None:
            with self.shared.lease() as store:
                address = address_for(store, child_run_id, step)
                recorded = store.get_run(child_run_id)["graph"]
            root = self.registry.get(run["graph"])
            inner = find_graph(root, recorded) if root is not None else None
            if inner is None:
                raise WorkbenchError(f"graph {run['graph']!r} no longer holds subgraph {recorded!r}: "
                                     f"fork from the CLI with workbench fork {run['run_id']} --at {address}")
            self.call_from_thread(self._open_fork_dialog, run, address, inner, child_run_id, step, rerun)

        self._guard("Fork", job)

    def _open_fork_dialog(self, run: dict[str, Any], address: str, inner: Any, child_run_id: str, step: int,
                          rerun: bool) -> None:
        if rerun:
            self._start("fork", run["graph"], run_id=run["run_id"], request=ForkRequest(address))
            return
        view = self._views.get((child_run_id, step))
        if view is None:
            self.notify("the step is still loading; try again", severity="warning")
            return

        def done(request: ForkRequest | None) -> None:
            if request is not None and self.open_run is not None:
                request.at_step = address  # the edits apply to the inner step
                self._start("fork", run["graph"], run_id=run["run_id"], request=request)

        self.push_screen(ForkScreen(f"{run['run_id']} at {address}", view, inner), done)

    def action_rerun(self) -> None:
        self.action_fork(rerun=True)

    def action_mark(self) -> None:
        rid = self._current_run_id()
        if rid is None:
            self.notify("no run to mark: select one in Runs (2) or open one", severity="warning")
            return
        self.mark = rid
        self.notify(f"marked {rid} for comparison: open or select another run and press d")

    def action_compare(self) -> None:
        current = self._current_run_id()
        if current is None:
            self.notify("open a run first", severity="warning")
            return
        other = self.mark if self.mark and self.mark != current else None
        if other is None:
            run = self.open_run if self.open_run and self.open_run["run_id"] == current else \
                next((r for r in self.runs if r["run_id"] == current), None)
            other = run.get("parent_run_id") if run else None
        if other is None:
            if self.mark == current:
                self.notify(f"{current} is the marked run itself: open or select another run, then press d "
                            "(or d on a fork compares it with its parent)", severity="warning")
            else:
                self.notify("mark a run with m first (or open a fork to compare it with its parent)",
                            severity="warning")
            return
        self.load_comparison(other, current)
        self.action_tab("tab-compare")

    def action_search(self) -> None:
        tab = self._tabs().active
        if tab == "tab-runs":
            self.query_one("#runs-search", Input).focus()
        elif tab == "tab-timeline":
            box = self.query_one("#timeline-search", Input)
            box.remove_class("hidden")
            box.focus()

    async def action_quit(self) -> None:
        """Quit; with a run in progress, only on a second press (the run stays resumable)."""
        if self.live is not None and not self._quit_armed:
            self._quit_armed = True
            self.notify("a run is in progress: press q again to quit (workbench resume RUN_ID continues it)",
                        title="quit?", severity="warning")
            self.set_timer(5, self._disarm_quit)
            return
        await super().action_quit()

    def _disarm_quit(self) -> None:
        self._quit_armed = False

    def action_replay(self) -> None:
        run = self.open_run
        if run is None:
            self.notify("open a run first (Runs → enter)", severity="warning")
            return
        self.replay_check(run["run_id"], run["graph"])

    @work(thread=True, exclusive=True, group="replay")
    def replay_check(self, run_id: str, graph_name: str) -> None:
        def job() -> None:
            from workbench.replay import replay_run

            graph = self.registry.get(graph_name)
            if graph is None:
                raise WorkbenchError(f"graph {graph_name!r} is not loaded")
            with self.shared.lease() as store:
                report = replay_run(store, run_id, graph)
            if report.identical:
                changed = f" (code changed in {', '.join(report.changed_nodes)})" if report.changed_nodes else ""
                self.call_from_thread(self.notify, f"run {run_id} replays identically: {report.steps} steps, "
                                      f"no live calls{changed}", title="replay")
            else:
                self.call_from_thread(self.show_error, f"replay of {run_id} diverged", str(report.divergence))

        self._guard("Replay", job)

    def action_cycle_graph(self, delta: int) -> None:
        names = self.registry.names()
        if not names:
            return
        index = names.index(self.selected_graph) if self.selected_graph in names else -delta
        self.selected_graph = names[(index + delta) % len(names)]
        self._show_graph()

    def action_focus_graphs(self) -> None:
        self.query_one("#graphs", GraphList).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.description and not binding.action.startswith("tab"):
                yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                    lambda a=binding.action: self.run_action(a))
        for i, (label, tab) in enumerate((("Graph", "tab-graph"), ("Runs", "tab-runs"), ("Timeline", "tab-timeline"),
                                          ("Compare", "tab-compare"), ("SQL console", "tab-sql")), start=1):
            yield SystemCommand(f"Show {label}", f"Switch to the {label} tab (key {i})",
                                lambda t=tab: self.action_tab(t))
        # The panes' own actions, reachable from anywhere.
        for widget_id, cls in (("#graph-view", GraphView), ("#timeline", Timeline), ("#sql", SqlConsole),
                               ("#runs-table", RunsTable)):
            for binding in cls.BINDINGS:
                if isinstance(binding, Binding) and binding.show and binding.description:
                    yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                        lambda w=widget_id, a=binding.action: self._widget_action(w, a))
        yield SystemCommand("Reload graphs", "Re-import every graph file", self.load_graphs)
        yield SystemCommand("Refresh runs", "Re-read the run history", self.load_runs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a dialog is open, the main screen's keys are off (and out of its footer)."""
        if isinstance(self.screen, ModalScreen) and action not in ("quit", "command_palette"):
            return action not in MAIN_ACTIONS
        return True

    def _widget_action(self, widget_id: str, action: str) -> None:
        """Run a pane's action from the command palette (showing its tab first)."""
        tab = {"#graph-view": "tab-graph", "#timeline": "tab-timeline", "#sql": "tab-sql",
               "#runs-table": "tab-runs"}[widget_id]
        self._tabs().active = tab
        widget = self.query_one(widget_id)
        self.call_later(widget.run_action, action)

    def show_error(self, title: str, message: str) -> None:
        self.push_screen(ErrorScreen(title, message))


def _NO_VALUE() -> Any:
    from workbench.runtime import NO_VALUE

    return NO_VALUE


def run_tui(db: str | None = None, graphs: str | None = None, watch: bool = True) -> None:
    """Open the workbench in this terminal. A store that cannot be opened closes it again, and
    its error is raised here."""
    app = WorkbenchApp(db, graphs, watch=watch, exit_on_store_error=True)
    app.run()
    if app.store_error is not None:
        raise app.store_error

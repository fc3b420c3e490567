"""The workbench TUI: design, run, step through, inspect, replay and fork workflow graphs.

All store and model work runs in thread workers that post messages back (messages.py); the UI
thread only draws. The trace store is shared with every other process (store/store.py): a CLI
run, a service or a test may record into it while the workbench is open, and a watcher worker
notices their commits (a cheap change token) and refreshes the runs and the open timeline.
"""

from __future__ import annotations

import contextlib
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
from textual.widgets import Header, Input, Static, TabbedContent, TabPane, TextArea

from workbench.context import Event
from workbench.errors import WorkbenchError
from workbench.graph import display_path
from workbench.store.shared import SharedStore
from workbench.store.store import default_db_path
from workbench.tui.background import Background
from workbench.tui.data_views import DataViews
from workbench.tui.history_actions import HistoryActions
from workbench.tui.key_order import KeyOrder
from workbench.tui.keys import APP_BINDINGS, MAIN_ACTIONS, TAB_FOCUS, FittingFooter, focus_now
from workbench.tui.lifecycle import (
    IDLE_WORK_AFTER_S,
    hear_terminal_resizes,
    install_daemon_executor,
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
    WorkFailed,
)
from workbench.tui.panes import PaneLayout
from workbench.tui.run_control import RunControl
from workbench.tui.run_view import RunViewApp
from workbench.tui.runs_list import RunsList
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.fork_editor import ForkRequest
from workbench.tui.screens.help import HelpScreen
from workbench.tui.stepping import pause_words, start_state
from workbench.tui.widgets.compare_view import CompareView
from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.graph_view import GraphView
from workbench.tui.widgets.inspector import Inspector
from workbench.tui.widgets.leavable_input import LeavableInput
from workbench.tui.widgets.lineage_tree import LineageTree
from workbench.tui.widgets.live_log import LiveLog
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.sql_console import SqlConsole
from workbench.tui.widgets.timeline import Timeline


class WorkbenchApp(RunControl, HistoryActions, DataViews, RunsList, RunViewApp, Background, KeyOrder):
    """The workbench. ``db``: trace store path; ``graphs``: graphs directory; ``watch``: hot reload."""

    CSS_PATH = "app.tcss"
    TITLE = "workbench"
    SUB_TITLE = "design · run · debug · replay · fork"
    BINDINGS = APP_BINDINGS  # keys.py: every key, and the rule that tab keys work from every tab

    def __init__(self, db: str | None = None, graphs: str | None = None, *, watch: bool = True,
                 exit_on_store_error: bool = False) -> None:
        super().__init__()
        from workbench.registry import GraphRegistry
        from workbench.tui.printable_strips import install

        install()  # recorded text never drives the terminal (tui/printable_strips.py)

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
        self._init_runs_list()  # runs, the filter and search, what was read (runs_list.py)
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
                        yield LeavableInput(placeholder="filter: SQL WHERE over runs, e.g. status = 'failed'",
                                            id="runs-filter", leave_to="#runs-table")
                        yield LeavableInput(placeholder="/ search text", id="runs-search", leave_to="#runs-table")
                    yield Static("", id="runs-error", classes="error")
                    with Horizontal():
                        yield RunsTable(id="runs-table")
                        yield LineageTree(id="lineage")
                with TabPane("3 Timeline", id="tab-timeline"), Lazy(Horizontal()):
                    with Vertical(id="timeline-pane"):
                        yield Static(Text("No run open.", style="dim"), id="timeline-head")
                        yield LeavableInput(placeholder="search steps (enter), n for next", id="timeline-search",
                                            classes="hidden", leave_to="#timeline", hide_on_leave=True)
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
        self.watch(self._tabs(), "active", self._tab_activating, init=False)  # data_views.py
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

    @work(thread=True, exclusive=True, group="run")
    def execute(self, kind: str, graph_name: str, live: dict[str, Any], **kwargs: Any) -> None:
        """Start, resume or fork a run; progress arrives as RunEventReceived messages, and the end
        (``live``: the app's record of this run) as one RunEnded message, whatever happens."""
        from workbench.runtime import Runner
        from workbench.runtime.option_names import as_flags

        outcome: list[Any] = []

        def job() -> None:
            graph = self.registry.get(graph_name)
            if graph is None:
                raise WorkbenchError(f"graph {graph_name!r} is not loaded (see the graph list for errors)")
            # Errors name the CLI's flags (--set, --at...), which the dialogs' help uses too.
            with self.shared.lease() as store, as_flags():
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
            outcome.append(result)

        try:
            self._guard("Run", job)  # (a failure is posted first, as WorkFailed)
        finally:
            self.post_message(RunEnded(outcome[0] if outcome else None, graph_name, live))

    @work(thread=True, exclusive=True, group="sql")
    def export_sql(self, sql: str, fmt: str) -> None:
        import time as _time

        from workbench.sqlquery import csv_sink, export_parquet, new_export_path, run_read_only

        def job() -> None:
            folder = os.path.join(os.path.dirname(self.db_path) or ".", "exports")
            path = new_export_path(folder, fmt, _time.strftime("%Y%m%d-%H%M%S"))
            try:
                with self.shared.lease() as store:
                    if fmt == "csv":
                        with open(path, "w", encoding="utf-8") as fh:
                            run_read_only(store, sql, sink=csv_sink(fh.write))
                    else:
                        export_parquet(store, sql, path)
            except BaseException:  # a query that failed leaves no empty file behind
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            self.call_from_thread(self.notify, f"exported to {path}")

        self._guard("Export", job)

    # ----------------------------------------------------------------- helpers

    def _tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    def _current_run_id(self) -> str | None:
        if self._tabs().active == "tab-runs":
            rid = self.query_one("#runs-table", RunsTable).selected_run_id
            if rid:
                return rid
        return self.open_run["run_id"] if self.open_run else None

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
        if self.selected_graph is not None and self.registry.get(self.selected_graph) is None:
            self.selected_graph = None  # its file went away
        self.query_one("#graphs", GraphList).show(self.registry, self.selected_graph)
        if r.error:
            self.notify(f"{r.error}\nthe last good version stays loaded", title="reload failed",
                        severity="error", timeout=8)
        elif r.removed:
            listed = f": {', '.join(r.graphs)} no longer listed" if r.graphs else ""
            self.notify(f"{display_path(r.file)} was removed{listed}", title="graph file removed")
        elif r.added and not any(r.changed.get(g) for g in r.graphs if g not in r.added):
            self.notify(f"loaded {display_path(r.file)}: {', '.join(r.added)}", title="graph added")
        else:
            changed = {g: n for g, n in r.changed.items() if n}
            # changed = differs from the version loaded at start (registry.py), not from the last save
            detail = "; ".join(f"{g}: {', '.join(sorted(n))}" for g, n in changed.items()) \
                or "no node differs from the version loaded at start"
            self.notify(f"reloaded {display_path(r.file)} — {detail}", title="graph reloaded")
        if self.selected_graph is None and self.registry.names():
            self.selected_graph = self.registry.names()[0]
        self._show_graph()
        if self.open_run is not None and self.open_run["graph"] in {*r.graphs, *r.changed}:
            self.refresh_heading()

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
        if name in names:
            graphs.point_at(names.index(name))
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

    def on_run_chosen(self, message: RunChosen) -> None:
        self._open_run(message.run_id)
        self._tabs().active = "tab-timeline"
        focus_now(self.query_one("#timeline", Timeline))

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
        if message.live is not self.live:  # (never expected: self.live changes only here and in _start)
            return
        result = message.result
        then = self.live.get("then") if self.live else None
        self.live = None
        if result is None:  # the work failed before the run had a result (WorkFailed said why)
            if then is not None:
                kind, graph, kwargs = then
                self._start(kind, graph, **kwargs)
            return
        self.ended = {"run_id": result.run_id, "graph": message.graph, "paused": result.status == "paused"}
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

    @on(Input.Submitted, "#timeline-search")
    def _search_steps(self, event: Input.Submitted) -> None:
        self.query_one("#timeline", Timeline).set_search(event.value)
        if isinstance(event.input, LeavableInput):
            event.input.action_leave()  # hidden again, the timeline focused

    @on(SqlConsole.ExportRequested)
    def _export(self, message: SqlConsole.ExportRequested) -> None:
        self.export_sql(message.sql, message.fmt)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # (the footer's "/ Search" follows the tab: check_action)
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
            focus_now(targets.first())
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
        self.layout_state.resized(event.size.width, event.size.height)  # (self.size is the old one yet)

    def action_search(self) -> None:
        tab = self._tabs().active
        if tab == "tab-runs":
            focus_now(self.query_one("#runs-search", Input))
        elif tab == "tab-timeline":
            box = self.query_one("#timeline-search", Input)
            box.remove_class("hidden")
            focus_now(box)

    async def action_quit(self) -> None:
        """Quit; with a run in progress, only on a second press (the run stays resumable)."""
        if self.live is not None and not self._quit_armed:
            self._quit_armed = True
            rid = self.live.get("run_id") or "RUN_ID"  # (known once the run has started)
            self.notify(f"a run is in progress: press q again to quit (workbench resume {rid} continues it)",
                        title="quit?", severity="warning")
            self.set_timer(5, self._disarm_quit)
            return
        self.cancel_sql()  # a running query would keep the process (and the store) until it ends
        await super().action_quit()

    def _disarm_quit(self) -> None:
        self._quit_armed = False

    def action_cycle_graph(self, delta: int) -> None:
        names = self.registry.names()
        if not names:
            return
        index = names.index(self.selected_graph) if self.selected_graph in names else -delta
        self.selected_graph = names[(index + delta) % len(names)]
        self._show_graph()

    def action_focus_graphs(self) -> None:
        focus_now(self.query_one("#graphs", GraphList))

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
        """While a dialog is open, the main screen's keys are off (and out of its footer); ``/``
        is in the footer only where it searches."""
        if isinstance(self.screen, ModalScreen) and action not in ("quit", "command_palette"):
            return action not in MAIN_ACTIONS
        if action == "search":
            return self._search_works()
        return True

    def _search_works(self) -> bool:
        """Whether ``/`` searches here: on the Runs and Timeline tabs, outside a text box (in
        one it types a slash; on the other tabs it did nothing, though the footer offered it)."""
        if isinstance(self.focused, (Input, TextArea)):
            return False
        tabs = self.query("#tabs").results(TabbedContent)
        return any(t.active in ("tab-runs", "tab-timeline") for t in tabs)

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
    hear_terminal_resizes()
    app = WorkbenchApp(db, graphs, watch=watch, exit_on_store_error=True)
    app.run()
    if app.store_error is not None:
        raise app.store_error

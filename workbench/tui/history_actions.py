"""Working with recorded runs from the workbench, kept out of app.py.

:class:`HistoryActions` is mixed into :class:`~workbench.tui.app.WorkbenchApp`: fork (``f``) and
re-run (``R``) at the selected step — also at a step inside a subgraph, by its address from the
root run —, mark (``m``) and compare (``d``), and replay with recorded answers (``p``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App

from workbench.errors import WorkbenchError
from workbench.history import StepView
from workbench.store.shared import SharedStore
from workbench.tui.screens.fork_editor import ForkRequest, ForkScreen
from workbench.tui.widgets.compare_view import CompareView


class HistoryActions(App[None]):
    """Fork, re-run, mark, compare and replay (a base of the workbench app)."""

    # Provided by WorkbenchApp (and RunViewApp, RunControl).
    shared: SharedStore
    registry: Any
    open_run: dict[str, Any] | None
    selected_step: int | None
    selected_inner: tuple[str, int] | None
    _views: dict[tuple[str, int], StepView]
    mark: str | None
    runs: list[dict[str, Any]]
    _start: Callable[..., None]
    _guard: Callable[[str, Callable[[], object]], None]
    _current_run_id: Callable[[], str | None]
    action_tab: Callable[[str], None]
    show_error: Callable[[str, str], None]

    @work(thread=True, exclusive=True, group="compare")
    def load_comparison(self, a: str, b: str) -> None:
        def job() -> None:
            from workbench.compare import compare_runs

            with self.shared.lease() as store, store.reading():
                cmp = compare_runs(store, a, b)
            self.call_from_thread(self.query_one("#compare", CompareView).show_comparison, cmp)

        self._guard("Compare", job)

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
        """Mark a run for comparison; ``m`` on the marked run unmarks it."""
        rid = self._current_run_id()
        if rid is None:
            self.notify("no run to mark: select one in Runs (2) or open one", severity="warning")
            return
        if self.mark == rid:
            self.mark = None
            self.notify(f"unmarked {rid}: d on a fork compares it with its parent again")
            return
        self.mark = rid
        self.notify(f"marked {rid} for comparison: open or select another run and press d (m again unmarks it)")

    def action_compare(self) -> None:
        """Compare the current run with the marked one (the mark is used up: it never outlives
        the comparison it was made for), else a fork with its parent."""
        current = self._current_run_id()
        if current is None:
            self.notify("open a run first", severity="warning")
            return
        other = self.mark if self.mark and self.mark != current else None
        if other is not None:
            self.mark = None
            self.notify(f"comparing the marked run {other} with {current}; the mark is cleared")
        else:
            run = self.open_run if self.open_run and self.open_run["run_id"] == current else \
                next((r for r in self.runs if r["run_id"] == current), None)
            other = run.get("parent_run_id") if run else None
        if other is None:
            if self.mark == current:
                self.notify(f"{current} is the marked run itself: open or select another run, then press d "
                            "(m unmarks it; d on a fork compares it with its parent)", severity="warning")
            else:
                self.notify("mark a run with m first (or open a fork to compare it with its parent)",
                            severity="warning")
            return
        self.load_comparison(other, current)
        self.action_tab("tab-compare")

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

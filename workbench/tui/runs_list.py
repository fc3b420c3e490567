"""The Runs tab's list, kept out of app.py: reading the run history with the filter and the search
applied in SQL before the row limit, saying when only the newest runs are listed, and noticing
that the open (or marked) run was deleted by another process.

:class:`RunsList` is mixed into :class:`~workbench.tui.app.WorkbenchApp`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.timer import Timer
from textual.widgets import Input, Static

from workbench.errors import RunNotFoundError, WorkbenchError
from workbench.tui.messages import RunGone, RunsLoaded
from workbench.tui.runs_filter import check_filter, rows_of, runs_query
from workbench.tui.widgets.lineage_tree import LineageTree
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.text_update import update_text


class RunsList(App[None]):
    """The run history of the Runs tab (a base of the workbench app)."""

    # Provided by WorkbenchApp (and RunViewApp).
    shared: Any
    live: dict[str, Any] | None
    open_run: dict[str, Any] | None
    mark: str | None
    _guard: Callable[[str, Callable[[], object]], None]

    RUNS_LIMIT = 1000
    """The most runs the table lists: the newest that pass the filter and the search."""

    SEARCH_RELOAD_S = 0.2
    """How long the search box waits for the next key before reading the store again (only when
    the runs read so far cannot answer the search on their own)."""

    def _init_runs_list(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.runs_filter = ""
        self.runs_search = ""
        self._runs_shown: tuple[Any, ...] | None = None  # the last RunsLoaded shown
        # What the runs read so far answer: (filter, search) read, and whether every run that
        # passed them was read (no error, no limit reached).
        self._runs_read: tuple[str, str, bool] = ("", "", False)
        self._search_timer: Timer | None = None
        # Reads are numbered as they start: one that started earlier but answered later (a
        # reload for the store watcher, overtaken by the search's) never replaces a newer answer.
        self._runs_reads = itertools.count(1)
        self._runs_read_shown = 0

    def _runs_query(self) -> tuple[str, str]:
        return self.runs_filter.strip(), self.runs_search.strip().lower()

    @work(thread=True, exclusive=True, group="runs")
    def load_runs(self) -> None:
        # What to read, as it stands now (the UI thread drops an answer to a query since changed).
        query, seq = self._runs_query(), next(self._runs_reads)
        watched = {str(rid) for rid in (self.open_run["run_id"] if self.open_run else None, self.mark) if rid}

        def job() -> None:
            where, search = query
            error = None
            with self.shared.lease() as store:
                try:
                    runs, matching = self._read_runs(store, where, search)
                except WorkbenchError as exc:  # a mistake in the filter: every run, unfiltered
                    error = str(exc)
                    runs, matching = self._read_runs(store, "", "")
                listed = {r["run_id"] for r in runs}
                gone: list[str] = []
                for rid in watched - listed:
                    try:
                        store.check_run(rid)
                    except RunNotFoundError:
                        gone.append(rid)
            self.post_message(RunsLoaded(runs, error=error, matching=matching, query=query, seq=seq))
            for rid in gone:
                self.post_message(RunGone(rid))

        self._guard("Reading runs", job)

    def _read_runs(self, store: Any, where: str, search: str) -> tuple[list[dict[str, Any]], int]:
        """The newest runs that pass ``where`` and contain ``search`` (at most RUNS_LIMIT), and
        how many do in all. The filter is a user's text: it runs as the SQL console's queries
        do, read-only (sqlquery.py)."""
        from workbench.sqlquery import run_read_only

        if not where and not search:
            runs = store.list_runs(self.RUNS_LIMIT + 1)
            matching = len(runs)
            if matching > self.RUNS_LIMIT:
                matching = int(store.query("SELECT count(*) FROM runs")[0][0])
            return runs[: self.RUNS_LIMIT], matching
        check_filter(where)
        result = run_read_only(store, runs_query(where, search), self.RUNS_LIMIT)
        return rows_of(result.columns, result.rows)

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if not self.query("#runs-table"):
            return  # the app is closing: a late answer from a worker
        where, search = self._runs_query()
        if message.query[0] != where or message.query[1] not in search or message.seq < self._runs_read_shown:
            return  # read for a filter or search since changed, or overtaken by a newer read
        self._runs_read_shown = message.seq
        self._runs_read = (*message.query, message.error is None and message.matching <= len(message.runs))
        shown = (message.runs, message.error, message.matching)
        if shown == self._runs_shown:
            return  # (a tab switch or the store watcher re-read the same runs: nothing to redraw)
        self._runs_shown = shown
        before = {r["run_id"]: r["status"] for r in self.runs}
        if before:
            for r in message.runs:
                if r["status"] == "waiting" and before.get(r["run_id"]) != "waiting" \
                        and not (self.live and self.live.get("run_id") == r["run_id"]):
                    self.notify(f"run {r['run_id']} ({r['graph']}) is waiting for human input — i answers it")
        self.runs = message.runs
        update_text(self.query_one("#runs-error", Static), self._runs_note(message))
        self.query_one("#runs-table", RunsTable).show_runs(message.runs)
        self.query_one("#lineage", LineageTree).show_runs(message.runs)

    def _runs_note(self, message: RunsLoaded) -> Text | str:
        """The line under the boxes: the filter's error, and whether older runs are left out."""
        note = Text()
        if message.error:
            note.append(message.error, style="bold red")
        if message.matching > len(message.runs):
            which = "runs" if message.error or message.query == ("", "") else "runs that match"
            note.append(("\n" if note else "") + f"showing the newest {len(message.runs):,} of "
                        f"{message.matching:,} {which}: older ones are not listed (narrow the filter "
                        "or the search to find them)", style="yellow")
        return note if note else ""

    @on(Input.Submitted, "#runs-filter")
    def _filter_runs(self, event: Input.Submitted) -> None:
        self.runs_filter = event.value
        self.load_runs()

    @on(Input.Changed, "#runs-search")
    def _search_runs(self, event: Input.Changed) -> None:
        self.runs_search = event.value
        self.query_one("#runs-table", RunsTable).set_search(event.value)  # at once, on the runs read
        where, search = self._runs_query()
        read_where, read_search, complete = self._runs_read
        if complete and read_where == where and read_search in search:
            return  # every run that can match was read: narrowing them on screen is the answer
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(self.SEARCH_RELOAD_S, self.load_runs)

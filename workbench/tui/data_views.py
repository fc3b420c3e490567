"""The app's SQL console workers and the value viewers' entry points, kept out of app.py.

:class:`DataViews` is mixed into :class:`~workbench.tui.app.WorkbenchApp`: it runs the console's
queries (with the row limit pushed down) and loads the schema browser in thread workers, and
``v`` ("view value") opens whatever value is under the cursor in full — a step's values from the
timeline or inspector, a run's input and output from the runs table, a comparison row's two
values, a SQL result cell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App
from textual.widgets import TabbedContent

from workbench.errors import WorkbenchError
from workbench.tui.widgets.compare_view import CompareView
from workbench.tui.widgets.inspector import Inspector
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.sql_console import SqlConsole


class DataViews(App[None]):
    """SQL console workers and the ``v`` (view value) action (a base of the workbench app)."""

    # Provided by WorkbenchApp.
    shared: Any
    _guard: Callable[[str, Callable[[], object]], None]
    _sql_cancel: threading.Event | None = None  # the running console query's stop signal
    _tabs: Callable[[], TabbedContent]

    # ----------------------------------------------------------------- SQL console

    def on_sql_console_query_submitted(self, message: SqlConsole.QuerySubmitted) -> None:
        self.cancel_sql()  # a new query replaces the one running
        self._sql_cancel = threading.Event()  # made here, so a cancel pressed at once finds it
        self.run_sql(message.sql, message.limit, self._sql_cancel)

    def on_sql_console_cancel_requested(self, message: SqlConsole.CancelRequested) -> None:
        self.cancel_sql()

    def cancel_sql(self) -> None:
        """Stop the console's running query, if any (it holds the store while it runs)."""
        if self._sql_cancel is not None:
            self._sql_cancel.set()

    def on_sql_console_schema_requested(self, message: SqlConsole.SchemaRequested) -> None:
        self.load_sql_schema()

    def _tab_activating(self, active: str) -> None:
        """Watches the tabs' ``active``: runs as a tab is chosen (key, click, palette), before
        the screen is laid out and drawn again."""
        if active == "tab-sql":
            for console in self.query("#sql").results(SqlConsole):  # (none yet while mounting lazily)
                console.about_to_show()

    @work(thread=True, exclusive=True, group="sql")
    def run_sql(self, sql: str, limit: int | None = None, cancel: threading.Event | None = None) -> None:
        from workbench.sqlquery import run_read_only

        console = self.query_one("#sql", SqlConsole)
        try:
            with self.shared.lease() as store:
                result = run_read_only(store, sql, limit, cancel=cancel)
        except WorkbenchError as exc:
            self.call_from_thread(console.show_error, str(exc))
            return
        except Exception as exc:
            self.call_from_thread(console.show_error, f"{type(exc).__name__}: {exc}")
            return
        self.call_from_thread(console.show_result, sql, result)

    @work(thread=True, exclusive=True, group="sql-schema")
    def load_sql_schema(self) -> None:
        def job() -> None:
            from workbench.sqlquery import schema

            with self.shared.lease() as store:
                views = schema(store)
            self.call_from_thread(self.query_one("#sql", SqlConsole).show_schema, views)

        self._guard("Schema", job)

    # ----------------------------------------------------------------- value viewers

    def action_view_value(self) -> None:
        """Open the value under the cursor in full (what that is depends on the tab)."""
        from workbench.tui.screens.value_viewer import ValuePicker, step_values

        tab = self._tabs().active
        if tab == "tab-timeline":
            view = getattr(self.query_one("#inspector", Inspector), "view", None)
            if view is None:
                self.notify("select a step first", severity="warning")
                return
            pairs, values = step_values(view)
            self.push_screen(ValuePicker(f"step {view.step}: {', '.join(view.nodes)}", values, pairs))
        elif tab == "tab-runs":
            rid = self.query_one("#runs-table", RunsTable).selected_run_id
            if rid:
                self.load_run_values(rid)
        elif tab == "tab-compare":
            self.query_one("#compare", CompareView).action_open_diff()
        elif tab == "tab-sql":
            console = self.query_one("#sql", SqlConsole)
            if not console.open_cursor_cell():
                self.notify("run a query, then pick a cell (enter opens it)", severity="warning")
        else:
            self.notify("v opens a value in full from Runs, Timeline, Compare or SQL", severity="warning")

    @work(thread=True, exclusive=True, group="values")
    def load_run_values(self, run_id: str) -> None:
        def job() -> None:
            from workbench.tui.screens.value_viewer import ValuePicker

            with self.shared.lease() as store:
                run = store.get_run(run_id)
            values: list[tuple[str, Any]] = [("input", run["input"]), ("output (final state)", run["output"])]
            if run.get("error"):
                values.append(("error", run["error"]))
            values.append(("config", run.get("config")))
            self.call_from_thread(self.push_screen, ValuePicker(f"run {run_id} · {run['graph']}", values))

        self._guard("Reading the run", job)

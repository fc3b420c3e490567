"""The SQL console: a schema browser of the store's views, an editor with SQL highlighting and
name completion, results in a table (the first rows only: the limit is pushed into the query),
a viewer for any cell, errors inline, saved queries, CSV/Parquet export. Read-only: writes are
refused before they reach the store."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from workbench.sqlquery import QueryResult, plain_value
from workbench.tui.key_order import after_typed_keys
from workbench.tui.widgets.schema_browser import SchemaBrowser
from workbench.tui.widgets.sql_editor import SqlEditor

EXAMPLES = [
    ("runs by status", "SELECT graph, status, count(*) AS runs FROM runs GROUP BY ALL ORDER BY runs DESC"),
    ("which node fails most", "SELECT node, count(*) AS failures FROM steps WHERE status = 'failed'\n"
                              "GROUP BY node ORDER BY failures DESC"),
    ("tokens and cost per run", "SELECT root_run_id AS run_id, sum(prompt_tokens + completion_tokens) AS tokens,\n"
                                "       sum(cost_usd) AS cost FROM llm_calls GROUP BY 1 ORDER BY tokens DESC"),
    ("slowest steps", "SELECT run_id, step, node, duration_ms FROM steps ORDER BY duration_ms DESC LIMIT 20"),
    ("state after a step", "SELECT state FROM state_at((SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1), 3)"),
]
PAGE_ROWS = 1_000  # rows asked for at first, and how many more each "fetch more" asks for


class SqlConsole(Vertical):
    """Editor above, results below, saved queries on the side."""

    # priority: the editor would otherwise take these keys (ctrl+e is its "end of line", escape
    # its "focus next").
    BINDINGS = [
        Binding("ctrl+r", "run_query", "Run SQL", tooltip="Run the query in the editor", priority=True),
        Binding("ctrl+s", "save_query", "Save query", tooltip="Save the editor's query to traces/queries.json",
                priority=True),
        Binding("ctrl+e", "export('csv')", "Export CSV", tooltip="Write the results to traces/exports/*.csv",
                priority=True),
        Binding("ctrl+o", "export('parquet')", "Export Parquet",
                tooltip="Write the results to traces/exports/*.parquet", priority=True),
        Binding("ctrl+n", "new_query", "New query", tooltip="Clear the editor", priority=True),
        Binding("ctrl+f", "fetch_more", "More rows", tooltip=f"Run the query again for {PAGE_ROWS} more rows",
                priority=True),
        Binding("ctrl+g", "focus_schema", "Schema", tooltip="Move to the schema browser (enter inserts a name)",
                priority=True),
        Binding("escape", "leave_editor", "Leave editor",
                tooltip="Move focus to the results (then 1-5 switch tabs)", priority=True),
        # Named by the status line while a query runs (the only time it does anything).
        Binding("ctrl+x", "cancel_query", "Cancel query", show=False, priority=True),
    ]

    class QuerySubmitted(Message):
        """The user ran a query: its first ``limit`` rows are wanted."""

        def __init__(self, sql: str, limit: int = PAGE_ROWS) -> None:
            super().__init__()
            self.sql = sql
            self.limit = limit

    class CancelRequested(Message):
        """The user asked to stop the query that is running."""

    class SchemaRequested(Message):
        """The console wants the store's views and columns (for the browser and completion)."""

    class ExportRequested(Message):
        """The user asked to export the last query's results."""

        def __init__(self, sql: str, fmt: str) -> None:
            super().__init__()
            self.sql = sql
            self.fmt = fmt

    def __init__(self, queries_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queries_file = queries_file
        self.last_sql: str | None = None
        self.limit = PAGE_ROWS
        self.result: QueryResult | None = None
        self.stale = False
        """The results on screen are not the last query's: it failed, or it is still running."""
        self.querying = False
        """A query asked for has not answered yet."""
        self._unshown_schema: dict[str, list[tuple[str, str]]] | None = None
        """Views read while the console was hidden: the browser is filled when it is shown."""

    def compose(self):  # type: ignore[no-untyped-def]
        with Horizontal(id="sql-body"):
            browser = SchemaBrowser(id="sql-schema")
            browser.border_title = "Views (enter inserts)"
            yield browser
            with Vertical(id="sql-main"):
                with Horizontal(id="sql-top"):
                    # Highlighting comes later (highlight()): tree-sitter's SQL query takes a
                    # tenth of a second or more to prepare, and the first frame need not wait.
                    editor = SqlEditor.code_editor(EXAMPLES[1][1], id="sql-editor")
                    editor.border_title = "SQL (ctrl+r runs · tab completes)"
                    yield editor
                    saved = OptionList(id="sql-saved")
                    saved.border_title = "Saved queries"
                    yield saved
                yield Static(Text("Read-only SQL over every run: views runs, steps, llm_calls, tool_calls, "
                                  "interrupts, state_changes, events; state_at(run_id, step).", style="dim"),
                             id="sql-status")
                results: DataTable[Any] = DataTable(id="sql-results", zebra_stripes=True)
                yield results

    def on_mount(self) -> None:
        self._load_saved()
        self.post_message(self.SchemaRequested())

    def highlight(self) -> None:
        """Turn on SQL highlighting (once; the app does it when the tab is first shown, or
        when it has nothing else to do)."""
        editor = self.query_one("#sql-editor", SqlEditor)
        if editor.language is None:
            selection = editor.selection  # a new language means a new document: cursor at 0,0
            editor.language = "sql"
            editor.selection = selection

    # ----------------------------------------------------------------- schema and completion

    def show_schema(self, views: dict[str, list[tuple[str, str]]]) -> None:
        """The store's views and columns: into the editor's completion, and into the browser
        now if the console is on screen, else when it is shown (:meth:`about_to_show`)."""
        self.query_one("#sql-editor", SqlEditor).names = {v: [c for c, _ in cols] for v, cols in views.items()}
        self._unshown_schema = views
        if all(node.display for node in self.ancestors_with_self if isinstance(node, Widget)):
            self.about_to_show()

    def about_to_show(self) -> None:
        """The console is being shown: fill the browser with the views read meanwhile.

        The app calls this as the SQL tab becomes active, before the screen is laid out again, so
        the tab never shows without its schema. (Filling it at start, hidden, added ~80 tree
        nodes, each asking for a layout of the whole screen: a full layout at every start, for a
        tab most sessions never open.)"""
        views, self._unshown_schema = self._unshown_schema, None
        if views is not None:
            self.query_one("#sql-schema", SchemaBrowser).show_schema(views)

    def on_schema_browser_name_chosen(self, event: SchemaBrowser.NameChosen) -> None:
        event.stop()
        editor = self.query_one("#sql-editor", SqlEditor)
        editor.insert(event.name)
        editor.focus()

    def on_sql_editor_completion_shown(self, event: SqlEditor.CompletionShown) -> None:
        event.stop()
        shown = ", ".join(event.options[:12]) + (" …" if len(event.options) > 12 else "")
        self.set_status(Text(f"tab again for the next: {shown}", style="dim"))

    def action_focus_schema(self) -> None:
        self.query_one("#sql-schema", SchemaBrowser).focus()

    # ----------------------------------------------------------------- saved queries

    def saved_queries(self) -> list[dict[str, str]]:
        try:
            with open(self.queries_file, encoding="utf-8") as fh:
                data = json.load(fh)
            return [q for q in data if isinstance(q, dict) and isinstance(q.get("sql"), str)]
        except (OSError, ValueError):
            return []

    def _load_saved(self) -> None:
        box = self.query_one("#sql-saved", OptionList)
        box.clear_options()
        for i, q in enumerate(self.saved_queries()):
            box.add_option(Option(Text(q.get("name") or q["sql"][:30], style="bold"), id=f"saved:{i}"))
        for i, (name, _sql) in enumerate(EXAMPLES):
            box.add_option(Option(Text(f"example: {name}", style="dim"), id=f"example:{i}"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind, _, index = (event.option.id or "").partition(":")
        sql = None
        if kind == "saved":
            queries = self.saved_queries()
            sql = queries[int(index)]["sql"] if int(index) < len(queries) else None
        elif kind == "example":
            sql = EXAMPLES[int(index)][1]
        if sql:
            editor = self.query_one("#sql-editor", TextArea)
            editor.text = sql
            editor.focus()

    @after_typed_keys
    def action_save_query(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text.strip()
        if not sql:
            return
        queries = self.saved_queries()
        first_line = sql.splitlines()[0][:40]
        queries.append({"name": first_line, "sql": sql})
        os.makedirs(os.path.dirname(self.queries_file) or ".", exist_ok=True)
        with open(self.queries_file, "w", encoding="utf-8") as fh:
            json.dump(queries, fh, indent=2)
        self._load_saved()
        self.notify(f"saved to {self.queries_file}")

    # ----------------------------------------------------------------- running

    @after_typed_keys
    def action_run_query(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text.strip()
        if sql:
            self.limit = PAGE_ROWS
            self.stale = self.querying = True
            self.set_status(Text("running… (ctrl+x cancels)", style="dim"))
            self.post_message(self.QuerySubmitted(sql, self.limit))

    def action_cancel_query(self) -> None:
        self.post_message(self.CancelRequested())

    def action_fetch_more(self) -> None:
        """Run the last query again for more rows (the limit grows by a page)."""
        if self._refuse_stale("fetched"):
            return
        if not self.last_sql or self.result is None or not self.result.truncated:
            self.set_status(Text("no more rows to fetch: run a query first", style="yellow")
                            if self.result is None else Text("every row is shown already", style="dim"))
            return
        self.limit += PAGE_ROWS
        self.stale = self.querying = True
        self.set_status(Text(f"fetching the first {self.limit:,} rows…", style="dim"))
        self.post_message(self.QuerySubmitted(self.last_sql, self.limit))

    @after_typed_keys
    def action_export(self, fmt: str) -> None:
        if not self.last_sql:
            self.set_status(Text("run a query first, then export its results", style="yellow"))
            return
        if self._refuse_stale("exported"):
            return
        self.post_message(self.ExportRequested(self.last_sql, fmt))

    def _refuse_stale(self, done: str) -> bool:
        """Refuse to act on the results on screen when they are not the last query's (the
        export after a failed query wrote the previous query's rows, saying only where)."""
        if not self.stale:
            return False
        if self.querying:
            self.notify(f"a query is running: nothing {done} yet (try again once its results are shown)",
                        severity="warning")
        else:
            self.notify(f"the last query failed: nothing {done} (the results on screen are an earlier "
                        "query's; run one that works first)", severity="warning")
        return True

    @after_typed_keys
    def action_new_query(self) -> None:
        editor = self.query_one("#sql-editor", TextArea)
        editor.text = ""
        editor.focus()

    def action_leave_editor(self) -> None:
        self.query_one("#sql-results", DataTable).focus()

    def set_status(self, text: Text) -> None:
        self.query_one("#sql-status", Static).update(text)

    def show_result(self, sql: str, result: QueryResult) -> None:
        self.last_sql = sql
        self.result = result
        self.stale = self.querying = False
        table = self.query_one("#sql-results", DataTable)
        table.clear(columns=True)
        cells = [[_cell(v) for v in row] for row in result.rows]
        for i, name in enumerate(result.columns):
            # Size each column to its content (up to a limit), looking at the first rows.
            width = max([len(name), *(len(r[i]) for r in cells[:200])])
            table.add_column(name, width=min(width, 60))
        for row_cells in cells:
            table.add_row(*row_cells)
        count = f"{len(result.rows):,} row(s)"
        if result.truncated:
            count = f"first {len(result.rows):,} rows (more: ctrl+f)"
        self.set_status(Text(f"{count} in {result.elapsed_ms:.1f} ms · enter on a cell opens it", style="green"))

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """Enter (or a click) on a result cell opens its value in full."""
        if event.data_table.id != "sql-results" or self.result is None:
            return
        event.stop()
        self.open_cell(event.coordinate.row, event.coordinate.column)

    def open_cursor_cell(self) -> bool:
        """Open the result cell under the table's cursor; ``False`` when there is none."""
        table = self.query_one("#sql-results", DataTable)
        return table.row_count > 0 and self.open_cell(table.cursor_coordinate.row, table.cursor_coordinate.column)

    def open_cell(self, row: int, col: int) -> bool:
        """Open one result cell's value in full (JSON decoded and pretty-printed)."""
        if self.result is None or row >= len(self.result.rows) or col >= len(self.result.columns):
            return False
        from workbench.tui.screens.value_viewer import ValueScreen

        name = self.result.columns[col]
        value = self.result.rows[row][col]
        if name in self.result.json_columns and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        elif not isinstance(value, (str, int, float, bool, list, dict, type(None))):
            value = str(value)  # timestamps, intervals, …
        self.app.push_screen(ValueScreen(f"{name} · row {row + 1}", value))
        return True

    def show_error(self, message: str) -> None:
        self.stale, self.querying = True, False
        text = Text(message, style="bold red")
        table = self.query_one("#sql-results", DataTable)
        if table.row_count or table.columns:
            # The table keeps the last results (or a result's headers, when it had no rows), for
            # a look while the query is mended: say whose.
            text.append("  (the results below are the previous query's)", style="dim")
        self.set_status(text)


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    text = str(plain_value(value)).replace("\n", "⏎ ")  # a BLOB or INTERVAL as DuckDB writes it
    return text if len(text) <= 120 else text[:119] + "…"

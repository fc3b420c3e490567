"""The SQL console: an editor with SQL highlighting, results in a table, errors inline, saved
queries, CSV/Parquet export. Read-only: writes are refused before they reach the store."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from workbench.sqlquery import QueryResult

EXAMPLES = [
    ("runs by status", "SELECT graph, status, count(*) AS runs FROM runs GROUP BY ALL ORDER BY runs DESC"),
    ("which node fails most", "SELECT node, count(*) AS failures FROM steps WHERE status = 'failed'\n"
                              "GROUP BY node ORDER BY failures DESC"),
    ("tokens and cost per run", "SELECT run_id, sum(prompt_tokens + completion_tokens) AS tokens,\n"
                                "       sum(cost_usd) AS cost FROM llm_calls GROUP BY run_id ORDER BY tokens DESC"),
    ("slowest steps", "SELECT run_id, step, node, duration_ms FROM steps ORDER BY duration_ms DESC LIMIT 20"),
    ("state after a step", "SELECT state FROM state_at((SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1), 3)"),
]
MAX_ROWS = 10_000


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
        Binding("escape", "leave_editor", "Leave editor",
                tooltip="Move focus to the results (then 1-5 switch tabs)", priority=True),
    ]

    class QuerySubmitted(Message):
        """The user ran a query."""

        def __init__(self, sql: str) -> None:
            super().__init__()
            self.sql = sql

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

    def compose(self):  # type: ignore[no-untyped-def]
        with Horizontal(id="sql-top"):
            editor = TextArea.code_editor(EXAMPLES[1][1], language="sql", id="sql-editor")
            editor.border_title = "SQL (ctrl+r runs)"
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

    def action_run_query(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text.strip()
        if sql:
            self.set_status(Text("running…", style="dim"))
            self.post_message(self.QuerySubmitted(sql))

    def action_export(self, fmt: str) -> None:
        if not self.last_sql:
            self.set_status(Text("run a query first, then export its results", style="yellow"))
            return
        self.post_message(self.ExportRequested(self.last_sql, fmt))

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
        table = self.query_one("#sql-results", DataTable)
        table.clear(columns=True)
        cells = [[_cell(v) for v in row] for row in result.rows[:MAX_ROWS]]
        for i, name in enumerate(result.columns):
            # Size each column to its content (up to a limit), looking at the first rows.
            width = max([len(name), *(len(r[i]) for r in cells[:200])])
            table.add_column(name, width=min(width, 60))
        for row_cells in cells:
            table.add_row(*row_cells)
        more = f" (showing the first {MAX_ROWS})" if len(result.rows) > MAX_ROWS else ""
        self.set_status(Text(f"{len(result.rows)} row(s) in {result.elapsed_ms:.1f} ms{more}", style="green"))

    def show_error(self, message: str) -> None:
        self.set_status(Text(message, style="bold red"))


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    text = str(value).replace("\n", "⏎ ")
    return text if len(text) <= 120 else text[:119] + "…"

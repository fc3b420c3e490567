"""The run history: status, graph, start, duration, steps, tokens, cost — filterable. In a
narrow pane the low-priority columns are left out (columns.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from workbench.store.reader import shown_status
from workbench.tui.columns import RUNS_COLUMNS, Column, fit_columns
from workbench.tui.messages import RunChosen

STATUS_STYLE = {"completed": "green", "failed": "red", "waiting": "yellow", "paused": "yellow",
                "running": "cyan", "interrupted": "magenta", "superseded": "dim"}


def _parent(run: dict[str, Any]) -> str:
    """``ID@STEP`` for a fork, ``ID+`` for the next turn of a conversation (a continuation)."""
    if not run["parent_run_id"]:
        return ""
    if run.get("relation") == "continuation":
        return f"{run['parent_run_id']}+"
    return f"{run['parent_run_id']}@{run['fork_step'] + 1}"


class RunsTable(DataTable[Any]):
    """Recent runs, newest first. Enter opens a run's timeline."""

    BINDINGS = [
        Binding("enter", "open_run", "Open run", tooltip="Show this run's timeline"),
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.runs: list[dict[str, Any]] = []
        self.search = ""
        self.shown: list[Column] = []

    def on_mount(self) -> None:
        self._set_columns(RUNS_COLUMNS)

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> bool:
        """Choose the columns for the table's width and the widths its rows need (a column of
        short values takes little room); True if they changed."""
        cells = [self._cells(r) for r in self.runs[:200]]
        need = [replace(c, width=max([len(c.label)] + [len(str(row[c.key])) for row in cells]))
                for c in RUNS_COLUMNS]
        fit = fit_columns(need, self.size.width - 2)  # less the scroll bar
        keys = [c.key for c in fit]
        if keys == [c.key for c in self.shown]:
            return False
        self._set_columns([c for c in RUNS_COLUMNS if c.key in keys])
        self._fill(None)
        return True

    def _set_columns(self, columns: list[Column]) -> None:
        self.clear(columns=True)
        self.shown = list(columns)
        for c in columns:
            self.add_column(c.label, key=c.key)

    def show_runs(self, runs: list[dict[str, Any]], keep: str | None = None) -> None:
        self.runs = runs
        if not self.size.width or not self._fit():
            self._fill(keep)

    def set_search(self, text: str) -> None:
        self.search = text.strip().lower()
        self._fill(None)

    def _fill(self, keep: str | None) -> None:
        current = keep or self.selected_run_id
        self.clear()
        for r in self.runs:
            hay = " ".join(str(r.get(k) or "") for k in ("run_id", "graph", "status", "error", "parent_run_id"))
            if self.search and self.search not in hay.lower():
                continue
            cells = self._cells(r)
            self.add_row(*(cells[c.key] for c in self.shown), key=r["run_id"])
        if current is not None:
            try:
                self.move_cursor(row=self.get_row_index(current))
            except Exception:  # the run is filtered out: stay at the top
                pass

    @staticmethod
    def _cells(r: dict[str, Any]) -> dict[str, Any]:
        shown = shown_status(r)  # interrupted: its process stopped; resuming continues it
        return {
            "run_id": r["run_id"], "graph": r["graph"], "status": Text(shown, style=STATUS_STYLE.get(shown, "")),
            "started": str(r["started_at"])[5:19], "ms": str(r["duration_ms"]), "steps": str(r["steps"]),
            "tokens": str(r["tokens"]), "cost": f"{r['cost_usd']:.4f}", "parent": _parent(r),
        }

    @property
    def selected_run_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key is not None and key.value is not None else None

    def action_open_run(self) -> None:
        rid = self.selected_run_id
        if rid:
            self.post_message(RunChosen(rid))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(RunChosen(str(event.row_key.value)))

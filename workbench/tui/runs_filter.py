"""The Runs tab's query: the run history with the tab's filter and search applied in SQL, before
the row limit (applied after it, they only ever looked at the newest rows: a failed run older than
the newest thousand was never found).

The filter is a SQL ``WHERE`` fragment over the ``runs`` view, which may also use the names the
table's headers show (``steps``, ``ms``, ``started``, ``tokens``, ``cost``, ``run``, ``parent``)
as well as the view's own columns (``last_step``, ``run_id``…). The search is plain text matched
in the run id, graph, status, error and parent, as the table's search box narrows the rows shown.

Only the store's documented views are read (``runs``, ``supersteps``, ``llm_calls``), through the
read-only path every user query takes (``sqlquery.run_read_only``); the rows have the columns and
values of ``TraceStore.list_runs``.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InputError

ROW_COLUMNS = ("run_id", "graph", "status", "started_at", "ended_at", "duration_ms", "steps", "parent_run_id",
               "fork_step", "tokens", "cost_usd", "error", "relation")
"""The columns of a runs-list row (those of ``TraceStore.list_runs``)."""

MATCHING = "wb_matching"
"""The extra column giving how many runs pass the filter and search (before the limit)."""

# The values the table shows, as list_runs computes them (steps: the committed steps; while a run
# is recording, the steps before the one planned), over the documented views.
_SHOWN = """
SELECT r.*,
       date_diff('millisecond', r.started_at, coalesce(r.ended_at, r.started_at)) AS duration_ms,
       coalesce(CASE WHEN r.status <> 'running' THEN r.last_step END, s.planned - 1, 0) AS steps,
       coalesce(l.tokens, 0) AS tokens, coalesce(l.cost, 0) AS cost_usd
FROM runs r
LEFT JOIN (SELECT run_id, max(step) AS planned FROM supersteps GROUP BY run_id) s USING (run_id)
LEFT JOIN (SELECT root_run_id AS run_id,
                  sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
                  sum(coalesce(cost_usd, 0)) AS cost
           FROM llm_calls GROUP BY root_run_id) l USING (run_id)
"""

HEADER_COLUMNS = {
    "run": "run_id",
    "started": "started_at",
    "ms": "duration_ms",
    "cost": "cost_usd",
    "parent": "parent_run_id",
}
"""Header names that are not already columns of the query (``steps`` and ``tokens`` are)."""


def runs_query(where: str = "", search: str = "") -> str:
    """The query giving the runs that pass ``where`` and contain ``search``, newest first, with
    the :data:`ROW_COLUMNS` and the :data:`MATCHING` count. The header names are columns of a
    wrapping query, so a filter may say ``steps > 5`` as the table's header reads."""
    aliases = ", ".join(f"{sql} AS {name}" for name, sql in HEADER_COLUMNS.items())
    conditions = []
    if where.strip():
        # On lines of their own: a "-- comment" at the end of the filter ends with its line.
        conditions.append(f"(\n{where.strip()}\n)")
    needle = search.strip().lower().replace("\x00", "")
    if needle:
        hay = "lower(concat_ws(' ', run_id, graph, status, coalesce(error, ''), coalesce(parent_run_id, '')))"
        conditions.append(f"contains({hay}, '{needle.replace(chr(39), chr(39) * 2)}')")
    clause = f"WHERE {' AND '.join(conditions)}\n" if conditions else ""
    return (f"SELECT {', '.join(ROW_COLUMNS)}, count(*) OVER () AS {MATCHING}\n"
            f"FROM (SELECT *, {aliases} FROM ({_SHOWN}) AS shown) AS r\n"
            f"{clause}ORDER BY started_at DESC, run_id DESC")


def check_filter(where: str) -> None:
    """Refuse a filter that is not one read-only condition: a write named as the SQL console
    names it (``true; DELETE …``: read-only), more than one statement (``true; SELECT 1``: the
    rows would not be runs) said so. Checked as written, before it is put in the query."""
    from workbench.sqlquery import check_read_only

    if where.strip() and len(check_read_only(f"SELECT run_id FROM runs WHERE {where}")) != 1:
        raise InputError("the filter is one SQL condition over runs (no ';'), e.g. status = 'failed'")


def rows_of(columns: list[str], rows: list[tuple[Any, ...]]) -> tuple[list[dict[str, Any]], int]:
    """The runs-list rows of a :func:`runs_query` result, and how many runs matched in all."""
    if list(columns) != [*ROW_COLUMNS, MATCHING]:
        raise InputError("the filter is one SQL condition over runs, e.g. status = 'failed'")
    runs = [dict(zip(ROW_COLUMNS, row[:-1], strict=True)) for row in rows]
    return runs, int(rows[0][-1]) if rows else 0

"""The Runs tab's filter: a SQL ``WHERE`` fragment over the ``runs`` view, which may also use the
names the table's headers show (``steps``, ``ms``, ``started``, ``tokens``, ``cost``, ``run``,
``parent``) as well as the view's own columns (``last_step``, ``run_id``…)."""

from __future__ import annotations

# Header name -> SQL over the runs view (r) giving the same value the table shows.
HEADER_COLUMNS = {
    "run": "r.run_id",
    "steps": "coalesce(r.last_step, 0)",
    "started": "r.started_at",
    "ms": "date_diff('millisecond', r.started_at, coalesce(r.ended_at, r.started_at))",
    "tokens": "(SELECT coalesce(sum(coalesce(c.prompt_tokens, 0) + coalesce(c.completion_tokens, 0)), 0) "
              "FROM llm_calls c WHERE c.root_run_id = r.run_id)",
    "cost": "(SELECT coalesce(sum(c.cost_usd), 0) FROM llm_calls c WHERE c.root_run_id = r.run_id)",
    "parent": "r.parent_run_id",
}


def runs_filter_sql(where: str) -> str:
    """The query giving the run ids that pass ``where``. The header names are columns of a
    wrapping query, so a filter may say ``steps > 5`` as the table's header reads."""
    aliases = ", ".join(f"{sql} AS {name}" for name, sql in HEADER_COLUMNS.items())
    return f"SELECT run_id FROM (SELECT r.*, {aliases} FROM runs r) WHERE {where}"

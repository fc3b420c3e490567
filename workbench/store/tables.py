"""How each record kind maps onto the base tables: column names, SQL types, and the SQL that
loads a batch of records.

Records travel as JSON (journal frames, export files); a batch of one kind is handed to DuckDB
as one JSON text and unpacked there with ``from_json``: no temporary files, no Python loop over
values, a few microseconds a row.
"""

from __future__ import annotations

import json
from typing import Any

# kind -> (table, [(column, sql type)]). "TS" columns hold epoch microseconds in the record and
# are turned into TIMESTAMP (UTC) on insert.
INSERTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "run": ("wb_runs", [
        ("run_id", "VARCHAR"), ("graph", "VARCHAR"), ("graph_file", "VARCHAR"),
        ("code_version", "VARCHAR"), ("node_versions", "JSON"), ("status", "VARCHAR"),
        ("started_at", "TS"), ("ended_at", "TS"), ("parent_run_id", "VARCHAR"),
        ("fork_step", "INTEGER"), ("input", "JSON"), ("output", "JSON"), ("error", "VARCHAR"),
        ("config", "JSON"), ("last_step", "INTEGER"), ("relation", "VARCHAR"),
        # v3 (subgraphs): where a child run hangs in the run that called it
        ("root_run_id", "VARCHAR"), ("caller_run_id", "VARCHAR"), ("caller_step", "INTEGER"),
        ("caller_task", "INTEGER"), ("path", "VARCHAR"),
    ]),
    "task": ("wb_tasks", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("task", "INTEGER"), ("node", "VARCHAR"),
        ("attempt", "INTEGER"), ("status", "VARCHAR"), ("started_at", "TS"), ("ended_at", "TS"),
        ("duration_ms", "DOUBLE"), ("update", "JSON"), ("error", "VARCHAR"),
        ("traceback", "VARCHAR"), ("arg", "JSON"), ("goto", "JSON"),
    ]),
    "change": ("wb_changes", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("key", "VARCHAR"), ("op", "VARCHAR"),
        ("value", "JSON"),
    ]),
    "plan": ("wb_supersteps", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("tasks", "JSON"), ("joins", "JSON"),
        ("created_at", "TS"),
    ]),
    "llm": ("wb_llm_calls", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("task", "INTEGER"), ("node", "VARCHAR"),
        ("seq", "INTEGER"), ("attempt", "INTEGER"), ("kind", "VARCHAR"), ("model", "VARCHAR"),
        ("messages", "JSON"), ("params", "JSON"), ("response", "JSON"), ("prompt_tokens", "BIGINT"),
        ("completion_tokens", "BIGINT"), ("cost_usd", "DOUBLE"), ("latency_ms", "DOUBLE"),
        ("attempts", "INTEGER"), ("error", "VARCHAR"), ("fingerprint", "VARCHAR"),
        ("created_at", "TS"),
    ]),
    "interrupt": ("wb_interrupts", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("task", "INTEGER"), ("node", "VARCHAR"),
        ("attempt", "INTEGER"), ("idx", "INTEGER"), ("payload", "JSON"), ("response", "JSON"),
        ("created_at", "TS"), ("resumed_at", "TS"), ("closed", "BOOLEAN"),
    ]),
    "event": ("wb_events", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("kind", "VARCHAR"), ("node", "VARCHAR"),
        ("detail", "JSON"), ("created_at", "TS"),
    ]),
}

# Updates: kind -> (table, key columns, columns that may be set).
UPDATES: dict[str, tuple[str, list[str], set[str]]] = {
    "run_update": ("wb_runs", ["run_id"], {
        "status", "ended_at", "output", "error", "last_step", "config",
    }),
    "interrupt_answer": ("wb_interrupts", ["run_id", "step", "task", "attempt", "idx"], {
        "response", "resumed_at", "closed",
    }),
    # A fork's edited model answer, recorded when the fork was made under its parent's request,
    # gets the request the fork's code actually made once it is served (context.EDITED).
    "llm_request": ("wb_llm_calls", ["run_id", "step", "task", "attempt", "seq"], {
        "messages", "params", "fingerprint",
    }),
}

# Columns that must not be null, per record kind (the base tables' NOT NULL constraints).
NOT_NULL: dict[str, set[str]] = {
    "run": {"run_id", "graph", "status"},
    "task": {"run_id", "step", "task", "node", "attempt", "status"},
    "change": {"run_id", "step", "key", "op"},
    "plan": {"run_id", "step", "tasks"},
    "llm": {"run_id", "step", "task", "node", "seq", "attempt", "kind"},
    "interrupt": {"run_id", "step", "task", "node", "attempt", "idx"},
    "event": {"run_id", "kind"},
}

# The natural key of each kind's table (rows with the same key are the same fact).
KEYS: dict[str, list[str]] = {
    "run": ["run_id"],
    "change": ["run_id", "step", "key"],
    "plan": ["run_id", "step"],
    "llm": ["run_id", "step", "task", "attempt", "seq"],
    "interrupt": ["run_id", "step", "task", "attempt", "idx"],
}

TS_COLUMNS = {"started_at", "ended_at", "created_at", "resumed_at"}

_INT_RANGE = {"INTEGER": 2**31, "BIGINT": 2**63, "TS": 2**63}


def _json_type(sql_type: str) -> str:
    return {"TS": "BIGINT", "JSON": "VARCHAR"}.get(sql_type, sql_type)


def insert_sql(kind: str, table: str | None = None) -> str:
    """``INSERT ... SELECT`` from one JSON text parameter: an array of row objects."""
    base, cols = INSERTS[kind]
    struct = "{" + ", ".join(f'"{c}": "{_json_type(t)}"' for c, t in cols) + "}"
    select = ", ".join(
        f'make_timestamp(r."{c}")' if t == "TS" else (f'r."{c}"::JSON' if t == "JSON" else f'r."{c}"')
        for c, t in cols
    )
    names = ", ".join(f'"{c}"' for c, _ in cols)
    return (f"INSERT INTO {table or base} ({names}) SELECT {select} "
            f"FROM (SELECT unnest(from_json(?, '[{struct}]')) AS r)")


def rows_json(kind: str, rows: list[dict[str, Any]]) -> str:
    """The JSON text :func:`insert_sql` takes: only the kind's columns, in any order."""
    names = [c for c, _ in INSERTS[kind][1]]
    return json.dumps([{c: r.get(c) for c in names} for r in rows], ensure_ascii=False, separators=(",", ":"))


def clean_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The row with every value the column cannot hold turned into NULL (a provider reporting
    2**70 tokens, a NaN latency). Values of NOT NULL columns are left for the database to judge."""
    cols = INSERTS[kind][1] if kind in INSERTS else None
    if cols is None:
        return row
    out = row
    for name, sql_type in cols:
        value = row.get(name)
        if value is None or name in NOT_NULL[kind]:
            continue
        ok = True
        if sql_type in _INT_RANGE:
            limit = _INT_RANGE[sql_type]
            ok = isinstance(value, int) and not isinstance(value, bool) and -limit <= value < limit
        elif sql_type == "DOUBLE":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
                and value not in (float("inf"), float("-inf"))
        elif sql_type in ("VARCHAR", "JSON"):
            ok = isinstance(value, str)
        if not ok:
            if out is row:
                out = dict(row)
            out[name] = None
    return out

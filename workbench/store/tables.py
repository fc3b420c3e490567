"""How each journal record kind maps onto the base tables (column names and SQL types)."""

from __future__ import annotations

# kind -> (table, [(column, sql type)]). "TS" columns hold epoch microseconds in the record and
# are turned into TIMESTAMP (UTC) on insert.
INSERTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "run": ("wb_runs", [
        ("run_id", "VARCHAR"), ("graph", "VARCHAR"), ("graph_file", "VARCHAR"),
        ("code_version", "VARCHAR"), ("node_versions", "JSON"), ("status", "VARCHAR"),
        ("started_at", "TS"), ("ended_at", "TS"), ("parent_run_id", "VARCHAR"),
        ("fork_step", "INTEGER"), ("input", "JSON"), ("output", "JSON"), ("error", "VARCHAR"),
        ("config", "JSON"), ("last_step", "INTEGER"),
    ]),
    "task": ("wb_tasks", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("task", "INTEGER"), ("node", "VARCHAR"),
        ("attempt", "INTEGER"), ("status", "VARCHAR"), ("started_at", "TS"), ("ended_at", "TS"),
        ("duration_ms", "DOUBLE"), ("update", "JSON"), ("error", "VARCHAR"),
        ("traceback", "VARCHAR"), ("arg", "JSON"),
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
        ("seq", "INTEGER"), ("attempt", "INTEGER"), ("kind", "VARCHAR"), ("model", "VARCHAR"), ("messages", "JSON"),
        ("params", "JSON"), ("response", "JSON"), ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"), ("cost_usd", "DOUBLE"), ("latency_ms", "DOUBLE"),
        ("attempts", "INTEGER"), ("error", "VARCHAR"), ("fingerprint", "VARCHAR"),
        ("created_at", "TS"),
    ]),
    "interrupt": ("wb_interrupts", [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("task", "INTEGER"), ("node", "VARCHAR"),
        ("attempt", "INTEGER"), ("idx", "INTEGER"), ("payload", "JSON"), ("response", "JSON"), ("created_at", "TS"),
        ("resumed_at", "TS"),
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
        "response", "resumed_at",
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

TS_COLUMNS = {"started_at", "ended_at", "created_at", "resumed_at"}


def insert_sql(kind: str) -> str:
    """``INSERT ... SELECT`` from a newline-delimited JSON file (the file path is the parameter).

    DuckDB's JSON reader loads a batch at a few microseconds a row; binding Python lists as
    parameters costs a hundred times more.
    """
    table, cols = INSERTS[kind]
    spec = ", ".join(f"\"{c}\": '{'BIGINT' if t == 'TS' else ('VARCHAR' if t == 'JSON' else t)}'" for c, t in cols)
    select = ", ".join(
        f'make_timestamp("{c}")' if t == "TS" else (f'"{c}"::JSON' if t == "JSON" else f'"{c}"')
        for c, t in cols
    )
    names = ", ".join(f'"{c}"' for c, _ in cols)
    return (f"INSERT INTO {table} ({names}) SELECT {select} "
            f"FROM read_json(?, format = 'newline_delimited', columns = {{{spec}}})")

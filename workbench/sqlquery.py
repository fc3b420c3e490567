"""Read-only SQL over the trace store, shared by ``workbench sql`` and the TUI's console."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from workbench.errors import InputError
from workbench.store.store import TraceStore

READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}


@dataclass
class QueryResult:
    """Column names, rows, and how long the query took."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    elapsed_ms: float
    json_columns: frozenset[str] = frozenset()

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in row])
        return buf.getvalue()

    def to_dicts(self) -> list[dict[str, Any]]:
        """Rows as dicts; JSON columns decoded, so they nest in JSON output."""
        out = []
        for r in self.rows:
            row = dict(zip(self.columns, r, strict=True))
            for c in self.json_columns:
                if isinstance(row.get(c), str):
                    try:
                        row[c] = json.loads(row[c])
                    except ValueError:
                        pass
            out.append(row)
        return out


def check_read_only(sql: str) -> list[Any]:
    """Parse ``sql`` and refuse anything but reads; returns the parsed statements."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
    if not statements:
        raise InputError("no SQL statement given")
    for st in statements:
        kind = st.type.name
        if kind == "EXPLAIN" and re.match(r"\s*explain\s+analy[sz]e\b", st.query, flags=re.I):
            # EXPLAIN ANALYZE executes the statement it explains.
            raise InputError("the SQL console is read-only: EXPLAIN ANALYZE runs its statement and is refused "
                             "(plain EXPLAIN is fine)")
        if kind not in READ_ONLY_TYPES:
            raise InputError(f"the SQL console is read-only: {kind} statements are refused "
                             "(use SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN)")
    return list(statements)


def run_read_only(store: TraceStore, sql: str, limit: int | None = None) -> QueryResult:
    """Run read statements (the last one's rows are returned) inside a rolled-back transaction."""
    import duckdb

    statements = check_read_only(sql)
    started = time.perf_counter()
    cur = store.cursor()
    try:
        # Belt and braces: even a read that slipped past the check is rolled back.
        cur.execute("BEGIN TRANSACTION")
        for st in statements[:-1]:
            cur.execute(st.query)
        cur.execute(statements[-1].query)
        columns = [d[0] for d in cur.description or []]
        json_columns = frozenset(d[0] for d in cur.description or [] if str(d[1]) == "JSON")
        rows = cur.fetchmany(limit) if limit else cur.fetchall()
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
    finally:
        try:
            cur.execute("ROLLBACK")
        except duckdb.Error:
            pass
        cur.close()
    return QueryResult(columns, rows, (time.perf_counter() - started) * 1000, json_columns)


def export_parquet(store: TraceStore, sql: str, path: str) -> None:
    """Write the rows of one read-only query to a Parquet file."""
    import duckdb

    statements = check_read_only(sql)
    if len(statements) != 1 or statements[0].type.name != "SELECT":
        raise InputError("export one SELECT statement at a time")
    query = statements[0].query.strip().rstrip(";")
    cur = store.cursor()
    try:
        cur.execute(f"COPY ({query}) TO ? (FORMAT parquet)", [path])
    except duckdb.Error as exc:
        raise InputError(f"export failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        cur.close()

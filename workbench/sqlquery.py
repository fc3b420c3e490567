"""Read-only SQL over the trace store, shared by ``workbench sql`` and the TUI's console."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workbench.errors import InputError
from workbench.store.database import classify, engine_config, explain_open_error, storage_error
from workbench.store.reads import refuse_writes
from workbench.store.store import TraceStore


@dataclass
class QueryResult:
    """Column names, rows, and how long the query took."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    elapsed_ms: float
    json_columns: frozenset[str] = frozenset()
    truncated: bool = False
    """Only the first ``limit`` rows were asked for, and the query has more."""
    fetched: int = 0
    """How many rows the database produced (at most ``limit + 1`` when the limit was pushed down)."""

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else plain_value(v) for v in row])
        return buf.getvalue()

    def to_dicts(self) -> list[dict[str, Any]]:
        """Rows as dicts; JSON columns decoded, so they nest in JSON output."""
        return [row_dict(self.columns, self.json_columns, r) for r in self.rows]


def row_dict(columns: list[str], json_columns: frozenset[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """One row as a dict, its JSON columns decoded (so they nest in JSON output). Columns of the
    same name keep their values, as DuckDB names them in a table: ``a``, ``a_1``, ``a_2``."""
    names = unique_names(columns)
    out = dict(zip(names, row, strict=True))
    for c, name in zip(columns, names, strict=True):
        if c in json_columns and isinstance(out.get(name), str):
            try:
                out[name] = json.loads(out[name])
            except ValueError:
                pass
    return out


def unique_names(columns: list[str]) -> list[str]:
    """``columns`` with each repeated name made unique (``a``, ``a_1``...), as a table of them
    would be named (a join's ``*`` repeats its key)."""
    if len(set(columns)) == len(columns):
        return columns
    taken, out = set(columns), []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            n = 1
            while f"{name}_{n}" in taken:
                n += 1
            name = f"{name}_{n}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


def plain_value(value: Any) -> Any:
    """A value as the SQL output formats write it: bytes (a BLOB) as DuckDB writes them, printable
    ASCII as it is and other bytes as ``\\xAB``; a ``timedelta`` (an INTERVAL) as DuckDB writes
    it (``1 day 02:00:00``); anything else as it is (Python's ``b'...'`` and ``1 day, 2:00:00``
    leaked into CSV and JSON)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in bytes(value))
    if isinstance(value, timedelta):
        days, rest = value.days, value - timedelta(days=value.days)
        seconds = rest.total_seconds()
        clock = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
        if rest.microseconds:
            clock += f".{rest.microseconds:06d}"
        if not days:
            return clock
        day_part = f"{days} day{'' if abs(days) == 1 else 's'}"
        return day_part if not seconds else f"{day_part} {clock}"
    return value


RowSink = Callable[[list[str], frozenset[str], list[tuple[Any, ...]]], None]
"""Takes the rows of a streamed query a batch at a time: ``(columns, json_columns, rows)``; the
first call has the query's first rows, or none when it has none."""

STREAM_BATCH_ROWS = 1000


def csv_sink(write: Callable[[str], Any]) -> RowSink:
    """A sink writing CSV (a header line, then the rows, NULL as empty) through ``write``: the
    same text as ``QueryResult.to_csv``, a batch at a time."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    started = False

    def sink(columns: list[str], json_columns: frozenset[str], rows: list[tuple[Any, ...]]) -> None:
        nonlocal started
        if not started:
            writer.writerow(columns)
            started = True
        for row in rows:
            writer.writerow(["" if v is None else plain_value(v) for v in row])
        write(buf.getvalue())
        buf.seek(0)
        buf.truncate()

    return sink


def check_read_only(sql: str) -> list[Any]:
    """Parse ``sql`` and refuse anything but reads; returns the parsed statements."""
    return refuse_writes(sql)


QUERY_TIMEOUT_S = 30.0
"""How long a query of the SQL console or ``workbench sql`` may run by default. While it runs it
holds the store's file, and every process recording into it waits for it (they give up after a
minute): a runaway query is stopped rather than stopping the recorders. ``--timeout`` changes it."""


class QueryStopped(InputError):
    """A query stopped before it finished: it ran out of time, or it was cancelled."""


def run_read_only(store: TraceStore, sql: str, limit: int | None = None, *,
                  timeout: float | None = QUERY_TIMEOUT_S, cancel: threading.Event | None = None,
                  sink: RowSink | None = None) -> QueryResult:
    """Run read statements (the last one's rows are returned) inside a rolled-back transaction.

    With ``limit``, the database produces at most ``limit + 1`` rows of the last statement when
    it is a ``SELECT`` (see :func:`limited_query`): the first ``limit`` are returned and
    ``truncated`` says whether there were more.

    With ``sink`` (and no ``limit``), the rows are not kept: they go to ``sink`` a batch at a
    time as the database produces them, so a result of any size takes the memory of one batch
    (``workbench sql``); the result's ``rows`` is empty and ``fetched`` counts them.

    The query runs in a thread of its own while this one waits, so that it can be stopped: after
    ``timeout`` seconds (None or 0: never), when ``cancel`` is set, or on Ctrl-C
    (``KeyboardInterrupt`` is raised once the database has stopped and let go of the file).
    """
    import duckdb

    statements = check_read_only(sql)
    started = time.perf_counter()
    last = statements[-1].query
    wrapped = limited_query(statements[-1], limit) if limit is not None else None
    out: dict[str, Any] = {}

    def execute(cur: Any) -> None:
        nonlocal wrapped
        try:
            for st in statements[:-1]:
                cur.execute(st.query)
            if wrapped is not None:
                try:
                    cur.execute(wrapped)
                except duckdb.InterruptException:
                    raise
                except duckdb.Error:
                    # A read that cannot be a subquery: run it as it is, in a fresh read-only
                    # transaction (the failed one is aborted); its own error, if any, is the
                    # one to report.
                    wrapped = None
                    cur.execute("ROLLBACK")
                    cur.execute("BEGIN TRANSACTION READ ONLY")
                    for st in statements[:-1]:
                        cur.execute(st.query)
            if wrapped is None:
                cur.execute(last)
            out["columns"] = [d[0] for d in cur.description or []]
            out["json"] = frozenset(d[0] for d in cur.description or [] if str(d[1]) == "JSON")
            if sink is not None and limit is None:
                out["rows"], out["fetched"] = [], _stream(cur, out["columns"], out["json"], sink)
            else:
                out["rows"] = cur.fetchmany(limit + 1) if limit is not None else cur.fetchall()
        except BaseException as exc:  # handed to the waiting thread
            out["error"] = exc

    # The database enforces read-only, not the check above: a read-only instance, a read-only
    # transaction, no file access and a locked configuration (store/database.py).
    with store.reading(strict=True) as cur:
        worker = threading.Thread(target=execute, args=(cur,), name="workbench-query", daemon=True)
        worker.start()
        stopped = _wait_for_query(worker, cur, started, timeout, cancel)
    error = out.get("error")
    if stopped == "timeout":
        raise QueryStopped(f"the query ran longer than {timeout:g} s and was stopped: while it runs it holds the "
                           "store, and recording waits for it (pass --timeout SECONDS to allow longer, 0 for no "
                           "limit)")
    if stopped == "cancelled":
        raise QueryStopped("the query was cancelled")
    if error is not None:
        if storage_error(error) and classify(error) in ("corrupt", "full", "newer"):
            raise explain_open_error(store.path, error) from None  # the file, not the query
        if isinstance(error, duckdb.Error):
            text = str(error).strip().splitlines()[0]
            missing = re.search(r"Table with name (\w+) does not exist", text)
            if isinstance(error, duckdb.CatalogException) and missing and missing[1] in DOCUMENTED_VIEWS:
                text += (f" (the store's view {missing[1]} is gone: 'workbench maintain --db {store.path}' "
                         "makes the views again)")
            raise InputError(f"SQL error: {text}") from None
        raise error
    rows = out["rows"]
    fetched = out.get("fetched", len(rows))
    truncated = limit is not None and fetched > limit
    return QueryResult(out["columns"], rows[:limit] if truncated else rows, (time.perf_counter() - started) * 1000,
                       out["json"], truncated, fetched)


def _stream(cur: Any, columns: list[str], json_columns: frozenset[str], sink: RowSink) -> int:
    """Hand the query's rows to ``sink`` a batch at a time; returns how many there were."""
    count = 0
    while True:
        batch = cur.fetchmany(STREAM_BATCH_ROWS)
        if batch or count == 0:
            sink(columns, json_columns, batch)
        if not batch:
            return count
        count += len(batch)


def _wait_for_query(worker: threading.Thread, cur: Any, started: float, timeout: float | None,
                    cancel: threading.Event | None) -> str | None:
    """Wait for the query thread; interrupt the query when its time is up, when ``cancel`` is
    set, or on Ctrl-C (re-raised once the query has stopped). Returns why it was stopped."""
    stopped: str | None = None
    while worker.is_alive():
        try:
            worker.join(0.05)
        except KeyboardInterrupt:
            cur.interrupt()
            worker.join()
            raise
        if stopped is None:
            if timeout and time.perf_counter() - started > timeout:
                stopped = "timeout"
            elif cancel is not None and cancel.is_set():
                stopped = "cancelled"
            if stopped is not None:
                cur.interrupt()
    return stopped


def limited_query(statement: Any, limit: int) -> str | None:
    """``statement`` (one parsed, read-only statement) wrapped so that the database stops after
    ``limit + 1`` rows: ``SELECT * FROM (<statement>) LIMIT n``, the user's order kept. ``None``
    when it is not a ``SELECT`` or the wrapped text is not exactly one ``SELECT`` (so text that
    would close the parenthesis early can never change what runs)."""
    import duckdb

    if statement.type.name != "SELECT" or not isinstance(limit, int) or limit < 0:
        return None
    # The newline ends a trailing "-- comment" before the closing parenthesis.
    body = statement.query.strip().rstrip(";")
    wrapped = f"SELECT * FROM (\n{body}\n) AS wb_limited LIMIT {int(limit) + 1}"
    try:
        parsed = duckdb.extract_statements(wrapped)
    except duckdb.Error:
        return None
    if len(parsed) != 1 or parsed[0].type.name != "SELECT":
        return None
    return wrapped


# The views the SQL console's schema browser lists (docs/sql.md), in the order documented; any
# other non-internal view the store has is listed after them.
DOCUMENTED_VIEWS = ("runs", "subgraph_runs", "steps", "llm_calls", "tool_calls", "interrupts", "state_changes",
                    "supersteps", "events", "run_lineage")


def schema(store: TraceStore) -> dict[str, list[tuple[str, str]]]:
    """The store's queryable views and their columns ``(name, type)``, read from
    ``information_schema`` on the same read-only instance the console uses."""
    with store.reading(strict=True) as cur:
        rows = cur.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_catalog = c.table_catalog "
            "AND t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE t.table_type = 'VIEW' AND NOT starts_with(c.table_name, 'wb_') "
            "AND c.table_schema NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY c.table_name, c.ordinal_position").fetchall()
    views: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        columns = views.setdefault(str(table), [])
        if str(column) not in {c for c, _ in columns}:  # a view seen in two catalogs (DuckLake)
            columns.append((str(column), str(kind)))
    order = {name: i for i, name in enumerate(DOCUMENTED_VIEWS)}
    return dict(sorted(views.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


_SCALAR_TYPES = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR", "DATE", "TIME", "TIMESTAMP",
                 "TIMESTAMP WITH TIME ZONE", "INTERVAL", "UUID", "JSON"}


def new_export_path(folder: str, fmt: str, stamp: str) -> str:
    """A file in ``folder`` for a new export, named after ``stamp`` (``query-STAMP.FMT``, then
    ``query-STAMP-2.FMT``... when that is taken), created empty so that no other export takes it:
    two exports within the same second never overwrite each other."""
    os.makedirs(folder, exist_ok=True)
    for n in range(1, 10_000):
        path = os.path.join(folder, f"query-{stamp}{'' if n == 1 else f'-{n}'}.{fmt}")
        try:
            with open(path, "x", encoding="utf-8"):
                return path
        except FileExistsError:
            continue
    raise InputError(f"{folder} already holds 10,000 exports named query-{stamp}: clear some out")


def export_parquet(store: TraceStore, sql: str, path: str) -> None:
    """Write the rows of one read-only query to a Parquet file at ``path``.

    The query runs like any console query (read-only, no file access); its rows are then
    written by a separate, empty DuckDB instance that runs only this function's own SQL, so no
    query text ever runs where files can be written.
    """
    import duckdb

    statements = check_read_only(sql)
    if len(statements) != 1 or statements[0].type.name != "SELECT":
        raise InputError("export one SELECT statement at a time")
    result = run_read_only(store, sql)
    types = []
    with store.reading(strict=True) as cur:
        try:
            cur.execute(f"DESCRIBE {statements[0].query.strip().rstrip(';')}")
            types = [str(r[1]) for r in cur.fetchall()]
        except duckdb.Error:
            types = []
    if len(types) != len(result.columns):
        types = ["VARCHAR"] * len(result.columns)
    # Scalar columns keep their type; anything nested travels as JSON.
    spec = {c: (t if t in _SCALAR_TYPES else "JSON") for c, t in zip(result.columns, types, strict=True)}
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    # The writing instance may touch exactly one file, the output; column names (chosen by the
    # query) are quoted as identifiers, never pasted as SQL.
    target = os.path.abspath(path)
    out = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                             "autoinstall_known_extensions": False, **engine_config()})
    try:
        # (DuckDB writes the file under a temporary name beside it, then renames it.)
        temporary = os.path.join(os.path.dirname(target), "tmp_" + os.path.basename(target))
        out.execute("SET allowed_paths = [?, ?]", [target, temporary])
        out.execute("SET enable_external_access = false")
        out.execute("SET lock_configuration = true")
        structure = json.dumps({c: ("VARCHAR" if t == "JSON" else t) for c, t in spec.items()})
        select = ", ".join(f"r.{_ident(c)}::JSON AS {_ident(c)}" if t == "JSON" else f"r.{_ident(c)}"
                           for c, t in spec.items())
        out.execute(f"CREATE TABLE export AS SELECT {select} FROM "
                    f"(SELECT unnest(from_json(?, ?)) AS r)",
                    [json.dumps(rows, default=_json_default, ensure_ascii=False), f"[{structure}]"])
        out.execute("COPY export TO ? (FORMAT parquet)", [target])
    except duckdb.Error as exc:
        raise InputError(f"export failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        out.close()


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (a double quote inside is doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)

"""The trace store: one DuckDB file, written by one process through a journal and a batch writer.

Concurrency model: DuckDB lets one process open a database file for writing, so a
:class:`TraceStore` holds the file for as long as it is open; a second process gets a
:class:`StoreError` naming the process that holds it. Inside the process, recording calls append
to the journal (durable at once) and queue rows for one background thread, which inserts them
into DuckDB in batches. Readers call :meth:`flush` first (the read methods here do it for you).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from workbench.errors import RunNotFoundError, StoreError
from workbench.state import apply_changes
from workbench.store.journal import Journal
from workbench.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS
from workbench.store.tables import INSERTS, TS_COLUMNS, UPDATES, insert_sql

DEFAULT_DB = os.path.join("traces", "workbench.duckdb")

# Keep the journal from growing without bound in a long-lived process: once DuckDB has caught up
# and the file is bigger than this, it is emptied.
_JOURNAL_ROLL_BYTES = 32 * 1024 * 1024
# How long the writer gathers records before writing a batch (records are already durable in
# the journal; this only trades DuckDB freshness for fewer, larger transactions).
_BATCH_LINGER_S = 0.05


def default_db_path() -> str:
    """``$WORKBENCH_DB``, else ``traces/workbench.duckdb`` under the current directory."""
    return os.environ.get("WORKBENCH_DB") or DEFAULT_DB


def now_us() -> int:
    """Wall-clock time in epoch microseconds (how timestamps travel in journal records)."""
    return time.time_ns() // 1000


def _insert_rows(con: Any, kind: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows of one kind through a temporary JSON-lines file (see tables.insert_sql)."""
    _, cols = INSERTS[kind]
    names = [c for c, _ in cols]
    fd, path = tempfile.mkstemp(prefix=f"workbench-{kind}-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({c: r.get(c) for c in names}, ensure_ascii=False, separators=(",", ":")))
                fh.write("\n")
        con.execute(insert_sql(kind), [path])
    finally:
        os.unlink(path)


def _views_hash() -> str:
    import hashlib

    return hashlib.sha256(VIEWS.encode()).hexdigest()[:16]


def _explain_open_error(path: str, exc: Exception) -> StoreError:
    msg = str(exc)
    if "lock" in msg.lower():
        pid = re.search(r"PID (\d+)", msg)
        who = f"process {pid.group(1)}" if pid else "another process"
        return StoreError(
            f"trace store {path} is in use by {who}; close that workbench or pass --db to use another file"
        )
    if "not a valid" in msg.lower() or "corrupt" in msg.lower() or "magic" in msg.lower():
        return StoreError(
            f"trace store {path} is not a readable DuckDB database (corrupt or another format); "
            "move it aside or pass --db to use another file"
        )
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    return StoreError(f"cannot open trace store {path}: {first}")


class TraceStore:
    """A workbench trace store (DuckDB file + journal). Use as a context manager or call close()."""

    def __init__(self, path: str | None = None, *, fsync: bool = False) -> None:
        import duckdb

        self.path = path or default_db_path()
        in_memory = self.path == ":memory:"
        if not in_memory:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        try:
            self._db = duckdb.connect(self.path)
        except duckdb.Error as exc:
            raise _explain_open_error(self.path, exc) from None
        try:
            # Stored timestamps are UTC; now() and friends should agree whatever the machine's zone.
            self._db.execute("SET GLOBAL TimeZone = 'UTC'")
        except duckdb.Error:  # ICU unavailable: timestamps are still UTC, comparisons need care
            pass
        try:
            self._prepare_schema()
        except StoreError:
            self._db.close()
            raise
        except duckdb.Error as exc:
            self._db.close()
            raise StoreError(f"trace store {self.path} cannot be used: {str(exc).splitlines()[0]}") from None

        self._journal_path = None if in_memory else self.path + ".journal"
        if self._journal_path:
            self._recover(self._journal_path)
        self._journal = Journal(self._journal_path, fsync=fsync) if self._journal_path else None

        self._seq = int(self._meta("journal_seq") or 0)
        self._applied = self._seq
        self._pending: list[tuple[int, str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._flushers = 0
        self._writer_error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="workbench-store-writer", daemon=True)
        self._writer.start()

    # ----------------------------------------------------------------- set-up

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM wb_meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def _prepare_schema(self) -> None:
        tables = {r[0] for r in self._db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()}
        if "wb_meta" not in tables:
            if tables:
                raise StoreError(
                    f"{self.path} is a DuckDB database but not a workbench trace store; pass --db to use another file"
                )
            self._db.execute("BEGIN")
            self._db.execute(TABLES)
            self._db.execute(VIEWS)
            self._db.execute(
                "INSERT INTO wb_meta VALUES ('schema_version', ?), ('journal_seq', '0'), ('views', ?)",
                [str(SCHEMA_VERSION), _views_hash()],
            )
            self._db.execute("COMMIT")
            return
        version = int(self._meta("schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"trace store {self.path} has schema version {version}, newer than this workbench "
                f"understands ({SCHEMA_VERSION}); upgrade workbench (pip install -U agent-workbench)"
            )
        if version == SCHEMA_VERSION and self._meta("views") == _views_hash():
            return  # nothing to do: opening a store to read it must not write to it
        self._db.execute("BEGIN")
        if version < SCHEMA_VERSION:
            for step in MIGRATIONS[version - 1:]:
                self._db.execute(step)
            self._db.execute(TABLES)
            self._db.execute("UPDATE wb_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
        # The views and macros of this version of workbench (definitions, not data).
        self._db.execute(VIEWS)
        self._db.execute("INSERT OR REPLACE INTO wb_meta VALUES ('views', ?)", [_views_hash()])
        self._db.execute("COMMIT")

    def _recover(self, journal_path: str) -> None:
        """Load journal records DuckDB does not have yet (after a crash), then empty the journal."""
        applied = int(self._meta("journal_seq") or 0)
        records = [r for r in Journal.read(journal_path) if int(r.get("s", 0)) > applied]
        if records:
            batch = [(int(r["s"]), r["t"], r) for r in records]
            self._apply(self._db, batch)
        if os.path.exists(journal_path) and os.path.getsize(journal_path):
            os.truncate(journal_path, 0)

    # ----------------------------------------------------------------- writing

    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Record one row. Durable (in the journal) when this returns; in DuckDB soon after."""
        self.record_many([(kind, row)])

    def record_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Record several rows with one journal write (one step's worth, say)."""
        if self._writer_error is not None:
            raise StoreError(f"trace store writer failed: {self._writer_error}")
        if self._closed:
            raise StoreError("trace store is closed")
        with self._cond:
            lines = []
            batch = []
            for kind, row in items:
                self._seq += 1
                rec = {"s": self._seq, "t": kind, **row}
                lines.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
                batch.append((self._seq, kind, rec))
            if self._journal is not None:
                self._journal.append(lines)
            # Wake the writer only when it has nothing to do; otherwise it is already gathering
            # a batch, and waking it per record would make it fight the run loop for the GIL.
            if not self._pending:
                self._cond.notify_all()
            self._pending.extend(batch)

    def flush(self) -> None:
        """Wait until everything recorded so far is in DuckDB."""
        with self._cond:
            target = self._seq
            self._flushers += 1
            self._cond.notify_all()
            try:
                while self._applied < target and self._writer_error is None:
                    self._cond.wait(0.5)
            finally:
                self._flushers -= 1
        if self._writer_error is not None:
            raise StoreError(f"trace store writer failed: {self._writer_error}")

    def _write_loop(self) -> None:
        con = self._db.cursor()
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                # Gather records for a moment before writing (one transaction per batch), unless
                # someone is waiting in flush() or the store is closing.
                deadline = time.monotonic() + _BATCH_LINGER_S
                while not self._closed and not self._flushers:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, self._pending = self._pending, []
                closing = self._closed
            if batch:
                try:
                    self._apply(con, batch)
                except BaseException as exc:  # surfaced to the recording thread; journal keeps the data
                    with self._cond:
                        self._writer_error = exc
                        self._cond.notify_all()
                    return
                with self._cond:
                    self._applied = batch[-1][0]
                    self._cond.notify_all()
                    caught_up = self._applied == self._seq
                if caught_up and self._journal is not None and self._journal.size() > _JOURNAL_ROLL_BYTES:
                    with self._cond:
                        if self._applied == self._seq:
                            self._journal.truncate()
            elif closing:
                con.close()
                return

    @staticmethod
    def _apply(con: Any, batch: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Insert/update one batch of records in one transaction, remembering the last seq."""
        con.execute("BEGIN")
        try:
            by_kind: dict[str, list[dict[str, Any]]] = {}
            updates: list[tuple[str, dict[str, Any]]] = []
            for _, kind, rec in batch:
                if kind in INSERTS:
                    by_kind.setdefault(kind, []).append(rec)
                elif kind in UPDATES:
                    updates.append((kind, rec))
            # Runs first: other rows refer to them.
            for kind in sorted(by_kind, key=lambda k: k != "run"):
                _insert_rows(con, kind, by_kind[kind])
            for kind, rec in _coalesce(updates):
                table, keys, allowed = UPDATES[kind]
                sets = [c for c in rec if c in allowed]
                if not sets:
                    continue
                assign = ", ".join(
                    f'"{c}" = make_timestamp(?::BIGINT)' if c in TS_COLUMNS else f'"{c}" = ?' for c in sets
                )
                where = " AND ".join(f'"{k}" = ?' for k in keys)
                con.execute(
                    f"UPDATE {table} SET {assign} WHERE {where}",
                    [rec[c] for c in sets] + [rec[k] for k in keys],
                )
            con.execute("UPDATE wb_meta SET value = ? WHERE key = 'journal_seq'", [str(batch[-1][0])])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def insert_batch(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Insert already-validated rows (by record kind) in one transaction (used by import)."""
        self.flush()
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN")
            for kind in sorted(rows, key=lambda k: k != "run"):
                if rows[kind]:
                    _insert_rows(cur, kind, rows[kind])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def close(self) -> None:
        """Flush, stop the writer, empty the journal and close the database."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._writer.join(timeout=30)
            if self._journal is not None:
                if self._writer_error is None and self._applied == self._seq:
                    self._journal.truncate()
                self._journal.close()
            self._db.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query (after flushing) and return all rows."""
        self.flush()
        cur = self._db.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Like :meth:`query`, rows as dicts keyed by column name."""
        self.flush()
        cur = self._db.cursor()
        try:
            cur.execute(sql, params or [])
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def cursor(self) -> Any:
        """A new DuckDB cursor on this store (for the SQL console; flush first)."""
        self.flush()
        return self._db.cursor()

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique prefix of one, or ``last``."""
        if ref == "last":
            rows = self.query("SELECT run_id FROM wb_runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
            if not rows:
                raise RunNotFoundError(f"no runs in {self.path} yet")
            return str(rows[0][0])
        rows = self.query("SELECT run_id FROM wb_runs WHERE starts_with(run_id, ?) LIMIT 2", [ref])
        if not rows:
            raise RunNotFoundError(f"no run {ref!r} in {self.path} (see 'workbench runs')")
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix {ref!r} is ambiguous in {self.path}; give more characters")
        return str(rows[0][0])

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row from ``wb_runs`` with JSON columns decoded."""
        rows = self.query_dicts("SELECT * FROM wb_runs WHERE run_id = ?", [run_id])
        if not rows:
            raise RunNotFoundError(f"no run {run_id!r} in {self.path} (see 'workbench runs')")
        run = rows[0]
        for col in ("input", "output", "config", "node_versions"):
            run[col] = json.loads(run[col]) if run[col] is not None else None
        return run

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent runs with step count, tokens and cost."""
        return self.query_dicts(
            """
            SELECT r.run_id, r.graph, r.status, r.started_at, r.ended_at,
                   date_diff('millisecond', r.started_at, coalesce(r.ended_at, r.started_at)) AS duration_ms,
                   coalesce(r.last_step, s.planned - 1, 0) AS steps, r.parent_run_id, r.fork_step,
                   coalesce(l.tokens, 0) AS tokens, coalesce(l.cost, 0) AS cost_usd, r.error
            FROM wb_runs r
            LEFT JOIN (SELECT run_id, max(step) AS planned FROM wb_supersteps GROUP BY run_id) s USING (run_id)
            LEFT JOIN (SELECT run_id, sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
                              sum(coalesce(cost_usd, 0)) AS cost
                       FROM wb_llm_calls GROUP BY run_id) l USING (run_id)
            ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?
            """,
            [limit],
        )

    def tasks(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """Every recorded node execution (one row per attempt) of a run, in order."""
        sql = "SELECT * FROM wb_tasks WHERE run_id = ?"
        params: list[Any] = [run_id]
        if step is not None:
            sql += " AND step = ?"
            params.append(step)
        rows = self.query_dicts(sql + " ORDER BY step, task, attempt", params)
        for r in rows:
            r["update"] = json.loads(r["update"]) if r["update"] is not None else None
            r["arg"] = json.loads(r["arg"]) if r["arg"] is not None else None
        return rows

    def lineage(self, run_id: str) -> list[tuple[str, int]]:
        """``[(run_id, last step taken from it), ...]`` from the run itself up to its root.

        A fork shares its parent's history up to its fork step; the run itself owns every step
        after that (its own entry has no limit).
        """
        rows = self.query(
            "SELECT ancestor_id, upto_step FROM run_lineage WHERE run_id = ? ORDER BY depth", [run_id]
        )
        return [(str(a), int(u)) for a, u in rows]

    def step_owner(self, run_id: str, step: int) -> str:
        """Which run of a fork's lineage recorded ``step`` (the fork itself after its fork step)."""
        owner = run_id
        for ancestor, upto in self.lineage(run_id):
            if step <= upto:
                owner = ancestor
        return owner

    def changes(self, run_id: str, upto: int | None = None) -> list[tuple[int, str, str, Any]]:
        """Stored state changes ``(step, key, op, value)`` of a run and the history it shares
        with its ancestors, in the order they apply."""
        limit = 2**31 - 1 if upto is None else upto
        rows = self.query(
            """
            SELECT c.step, c.key, c.op, c.value
            FROM run_lineage l JOIN wb_changes c ON c.run_id = l.ancestor_id
            WHERE l.run_id = ? AND c.step <= least(l.upto_step, ?)
            ORDER BY c.step, l.depth DESC, c.rowid
            """,
            [run_id, limit],
        )
        return [(int(s), k, op, json.loads(v)) for s, k, op, v in rows]

    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        """The run's full state after ``step`` (0 = the input), rebuilt from stored changes."""
        state: dict[str, Any] = {}
        apply_changes(state, ((k, op, v) for _, k, op, v in self.changes(run_id, step)))
        return state

    def states(self, run_id: str) -> dict[int, dict[str, Any]]:
        """The state after every committed step of a run, in one pass over its changes."""
        out: dict[int, dict[str, Any]] = {}
        state: dict[str, Any] = {}
        current = None
        for s, k, op, v in self.changes(run_id):
            if current is not None and s != current:
                out[current] = dict(state)
            current = s
            apply_changes(state, [(k, op, v)])
        if current is not None:
            out[current] = dict(state)
        return out

    def plan(self, run_id: str, step: int) -> dict[str, Any] | None:
        """The tasks planned for ``step`` and the join bookkeeping at that point (a fork's
        plans before its fork step are its parent's)."""
        rows = self.query(
            """
            SELECT p.tasks, p.joins
            FROM run_lineage l JOIN wb_supersteps p ON p.run_id = l.ancestor_id
            WHERE l.run_id = ? AND p.step = ? AND p.step - 1 <= l.upto_step
            ORDER BY l.depth, p.created_at DESC LIMIT 1
            """,
            [run_id, step],
        )
        if not rows:
            return None
        return {"tasks": json.loads(rows[0][0]), "joins": json.loads(rows[0][1]) if rows[0][1] else {}}

    def last_committed_step(self, run_id: str) -> int:
        """The highest step whose state changes are recorded (0 once the run has started)."""
        rows = self.query("SELECT max(step) FROM wb_supersteps WHERE run_id = ?", [run_id])
        planned = rows[0][0]
        return -1 if planned is None else int(planned) - 1

    def last_step(self, run_id: str) -> int:
        """The highest step that ran, or was in flight when the run stopped (steps are 1..this).

        A finished run's last plan is empty: its last step is the last committed one.
        """
        committed = self.last_committed_step(run_id)
        plan = self.plan(run_id, committed + 1)
        return committed if plan is not None and not plan["tasks"] else committed + 1

    def llm_calls(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """Recorded model (and tool) calls of a run, decoded, in call order."""
        sql = "SELECT * FROM wb_llm_calls WHERE run_id = ?"
        params: list[Any] = [run_id]
        if step is not None:
            sql += " AND step = ?"
            params.append(step)
        rows = self.query_dicts(sql + " ORDER BY step, task, seq", params)
        for r in rows:
            for col in ("messages", "params", "response"):
                r[col] = json.loads(r[col]) if r[col] is not None else None
        return rows

    def interrupts(self, run_id: str) -> list[dict[str, Any]]:
        """Interrupts of a run, decoded, oldest first."""
        rows = self.query_dicts(
            "SELECT * FROM wb_interrupts WHERE run_id = ? ORDER BY step, task, attempt, idx", [run_id]
        )
        for r in rows:
            for col in ("payload", "response"):
                r[col] = json.loads(r[col]) if r[col] is not None else None
        return rows

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.query_dicts("SELECT * FROM wb_events WHERE run_id = ? ORDER BY created_at", [run_id])
        for r in rows:
            r["detail"] = json.loads(r["detail"]) if r["detail"] is not None else None
        return rows


def _coalesce(updates: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Fold successive updates of the same row into one (each UPDATE costs a statement)."""
    merged: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
    for kind, rec in updates:
        key = (kind, *(rec.get(k) for k in UPDATES[kind][1]))
        if key in merged:
            merged[key][1].update(rec)
        else:
            merged[key] = (kind, dict(rec))
    return list(merged.values())

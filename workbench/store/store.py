"""The trace store: one DuckDB file that any number of processes record into and read at once.

How it works (docs/architecture.md has the reasoning and the measurements):

* **Recording** appends each record batch (a step's task row, state changes and next plan) to
  this process's own journal as one frame (store/journal.py): durable against ``kill -9`` when
  :meth:`TraceStore.record_many` returns, before the next step starts.
* **A background thread** loads the journal's frames into DuckDB in batches, taking the file
  only for as long as a batch takes (store/database.py); each batch commits with the journal's
  load position, so nothing is loaded twice.
* **Reading** opens the file briefly too, so readers and recorders in other processes take turns
  within milliseconds. A process reading its own records waits for its writer first.
* **Recovery:** a journal whose process died is loaded by the next process that opens the
  store (or claims one of its runs); its unfinished runs are marked interrupted and can be
  resumed from any process.
* **Claims** (resuming a run, answering its question) are transactions on the database itself:
  of two processes that try at once, exactly one wins.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workbench.errors import RunNotFoundError, RunStateError, StoreError
from workbench.guard import note_store
from workbench.redact import scrub
from workbench.store.database import classify, close_database, first_line, open_database
from workbench.store.ingest import apply_frames, apply_records, rollback, skip_frames
from workbench.store.journal import SUFFIX, Frame, Journal, encode_frame, is_held, read_frames
from workbench.store.reader import StoreReader
from workbench.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS
from workbench.store.spool import Spool, host_name, journal_owner, new_owner_id, owner_host, owner_pid
from workbench.store.tables import KEYS

log = logging.getLogger("workbench.store")

DEFAULT_DB = os.path.join("traces", "workbench.duckdb")

# How long the writer gathers frames before loading a batch (frames are already durable in the
# journal; this trades freshness in DuckDB for fewer, larger transactions).
_BATCH_LINGER_S = 0.05
# A long-lived process starts a fresh journal once everything in this one is loaded and it has
# grown past this size.
_JOURNAL_ROLL_BYTES = 32 * 1024 * 1024
# Frames loaded per transaction when recovering a dead process's journal.
_RECOVERY_CHUNK = 2000
# The largest JSON text one record may hold (a state value, an update, a model answer).
MAX_VALUE_BYTES = int(float(os.environ.get("WORKBENCH_MAX_VALUE_MB", "64")) * 1024 * 1024)


def default_db_path() -> str:
    """``$WORKBENCH_DB``, else ``traces/workbench.duckdb`` under the current directory."""
    return os.environ.get("WORKBENCH_DB") or DEFAULT_DB


def now_us() -> int:
    """Wall-clock time in epoch microseconds (how timestamps travel in journal records)."""
    return time.time_ns() // 1000


def _views_hash() -> str:
    import hashlib

    return hashlib.sha256(VIEWS.encode()).hexdigest()[:16]


def _transient(exc: BaseException) -> bool:
    """An error that retrying later may cure (file busy, disk full, a fatal engine state)."""
    import duckdb

    if isinstance(exc, (StoreError, OSError)):
        return True
    if isinstance(exc, (duckdb.IOException, duckdb.TransactionException, duckdb.OutOfMemoryException,
                        duckdb.FatalException, duckdb.InterruptException)):
        return True
    return classify(exc) in ("locked", "full", "invalidated", "readonly")


@dataclass
class _Pending:
    """A frame of this process's journal that is not in DuckDB yet."""

    number: int
    end: int
    records: list[tuple[str, dict[str, Any]]]


class TraceStore(StoreReader):
    """A workbench trace store (a DuckDB file, shared). Use as a context manager or call close().

    Args:
        path: the DuckDB file (default ``$WORKBENCH_DB`` or ``traces/workbench.duckdb``);
            ``":memory:"`` gives a throw-away store in a temporary directory.
        fsync: also ``fsync`` each journal frame (survives power loss, about 10x the cost).
        busy_timeout: how long to wait for another process that holds the file before giving up.
    """

    def __init__(self, path: str | None = None, *, fsync: bool = False, busy_timeout: float = 60.0) -> None:
        self._tmpdir: str | None = None
        path = path or default_db_path()
        if path == ":memory:":
            self._tmpdir = tempfile.mkdtemp(prefix="workbench-store-")
            path = os.path.join(self._tmpdir, "trace.duckdb")
        self.path = path
        note_store(path)  # so that a crash of the database engine can name the file (guard.py)
        self.fsync = fsync
        self.owner = new_owner_id()
        self.close_warning: str | None = None
        exists = os.path.exists(path)
        directory = os.path.dirname(os.path.abspath(path))
        if exists and os.path.isdir(path):
            raise StoreError(f"trace store {path} is a directory; pass --db a file path")
        if not exists:
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create trace store {path}: {exc.strerror}; pass --db a "
                                 "writable location") from None
            if not os.access(directory, os.W_OK):
                raise StoreError(f"cannot create trace store {path}: directory {directory} is not "
                                 "writable; pass --db a writable location")
        self.writable = os.access(directory, os.W_OK) and (not exists or os.access(path, os.W_OK))
        self.spool = Spool(path + ".spool")
        if self.writable:
            try:
                self.spool.create()
            except OSError:
                self.writable = False
        self._db = open_database(path, writable=self.writable)
        self._db.busy_timeout = busy_timeout
        self._db_open = True
        self._closed = False
        self._cond = threading.Condition()
        self._journal: Journal | None = None
        self._pending: list[_Pending] = []
        self._applied = 0  # frames of this journal in DuckDB
        self._appended = 0
        self._flushers = 0
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._rejected: dict[str, str] = {}  # run id -> why its records were set aside
        self._retired: list[str] = []  # this process's older journals, fully loaded
        self._generation = 1
        try:
            self._prepare_schema(exists)
            if self.writable:
                self._recover()
        except BaseException:
            self._release_db()
            raise

    # ----------------------------------------------------------------- set-up

    def _release_db(self) -> None:
        if self._db_open:
            self._db_open = False
            close_database(self._db)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _schema_state(self, con: Any) -> str:
        """"ok", "create" or "upgrade" (raises StoreError for a file we must not touch)."""
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database()"
        ).fetchall()}
        if "wb_meta" not in tables:
            if tables:
                raise StoreError(
                    f"{self.path} is a DuckDB database but not a workbench trace store; pass --db to use another file"
                )
            return "create"
        row = con.execute("SELECT value FROM wb_meta WHERE key = 'schema_version'").fetchone()
        raw = row[0] if row else None
        try:
            version = int(raw or "")
        except ValueError:
            raise StoreError(
                f"trace store {self.path} has an unreadable schema version {raw!r}; it is damaged or was not "
                "made by workbench — move it aside or pass --db to use another file"
            ) from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"trace store {self.path} has schema version {version}, newer than this workbench "
                f"understands ({SCHEMA_VERSION}); upgrade workbench (pip install -U agent-workbench)"
            )
        if version < 1:
            raise StoreError(f"trace store {self.path} has an invalid schema version {version}; "
                             "move it aside or pass --db to use another file")
        views = con.execute("SELECT value FROM wb_meta WHERE key = 'views'").fetchone()
        if version == SCHEMA_VERSION and views and views[0] == _views_hash():
            return "ok"
        return "upgrade"

    def _prepare_schema(self, exists: bool) -> None:
        import duckdb

        if exists:
            try:
                with self._db.connection() as con:
                    state = self._schema_state(con)
            except duckdb.Error as exc:
                raise StoreError(f"trace store {self.path} cannot be read: {first_line(exc)}") from None
            if state == "ok":
                return  # opening a store to read it must not write to it
            if not self.writable:
                raise StoreError(f"trace store {self.path} needs a schema upgrade but is read-only here; "
                                 "open it once where it is writable")
        try:
            with self._db.connection(write=True) as con:
                state = self._schema_state(con)
                if state == "ok":
                    return
                con.execute("BEGIN TRANSACTION")
                try:
                    if state == "create":
                        con.execute(TABLES)
                        con.execute("INSERT INTO wb_meta VALUES ('schema_version', ?), ('journal_seq', '0')",
                                    [str(SCHEMA_VERSION)])
                    else:
                        version = int(con.execute(
                            "SELECT value FROM wb_meta WHERE key = 'schema_version'").fetchone()[0])
                        for step in MIGRATIONS[version - 1:]:
                            con.execute(step)
                        con.execute(TABLES)
                        con.execute("UPDATE wb_meta SET value = ? WHERE key = 'schema_version'",
                                    [str(SCHEMA_VERSION)])
                    # The views and macros of this version of workbench (definitions, not data).
                    con.execute(VIEWS)
                    con.execute("INSERT OR REPLACE INTO wb_meta VALUES ('views', ?)", [_views_hash()])
                    con.execute("COMMIT")
                except BaseException:
                    rollback(con)
                    raise
        except duckdb.Error as exc:
            raise StoreError(f"trace store {self.path} cannot be used: {first_line(exc)}") from None

    # ----------------------------------------------------------------- recovery

    def _recover(self) -> None:
        """Load what dead processes left in their journals (and a pre-2 ``.journal`` file)."""
        legacy = self.path + ".journal"
        if os.path.exists(legacy) and os.path.getsize(legacy):
            self._recover_legacy(legacy)
        elif os.path.exists(legacy):
            os.unlink(legacy)
        _remove_stale_batch_files()
        self.sweep()

    def sweep(self) -> int:
        """Load the journals of processes that died; returns how many were found.

        Cheap when there are none (a directory listing). The workbench calls this now and then,
        so that a run whose process was killed shows as interrupted without reopening the store.
        """
        if not self.writable:
            return 0
        orphans = self.spool.orphans()
        if not orphans:
            return 0
        with self._db.connection(write=True) as con:
            for journal in orphans:
                self._load_orphan(con, journal)
            self._forget_vanished_journals(con)
        self.spool.bump()
        return len(orphans)

    def _load_orphan(self, con: Any, journal: str) -> None:
        """Load a dead process's journal, set aside a damaged tail, mark its runs interrupted."""
        path = self.spool.journal_path(journal)
        if is_held(path) or not os.path.exists(path):
            return  # its process is alive after all, or another process loaded it meanwhile
        owner = journal_owner(journal)
        row = con.execute('SELECT frame, "offset" FROM wb_journals WHERE journal = ?', [journal]).fetchone()
        done, offset = (int(row[0]), int(row[1])) if row else (0, 0)
        result = read_frames(path, offset)
        frames = result.frames
        if frames and frames[0].number != done + 1:  # the position does not match: read it all
            result = read_frames(path, 0)
            frames = [f for f in result.frames if f.number > done]
        for i in range(0, len(frames), _RECOVERY_CHUNK):
            self._load_frames(con, frames[i:i + _RECOVERY_CHUNK], journal, owner)
        if result.stop == "damaged":
            with open(path, "rb") as fh:
                fh.seek(result.end)
                kept = self.spool.keep_damaged(journal + SUFFIX, fh.read())
            log.warning("journal %s is damaged after byte %d; the rest was set aside in %s (its runs can be "
                        "resumed from their last whole step)", path, result.end, kept)
        if not self.spool.is_alive(owner):
            pid, host = owner_pid(owner), owner_host(owner)
            message = (f"interrupted: the process that recorded it (pid {pid} on {host}) stopped before the "
                       "run ended; continue it with 'workbench resume'")
            con.execute("UPDATE wb_runs SET owner = NULL, error = ? WHERE owner = ? AND status = 'running'",
                        [message, owner])
        try:
            os.unlink(path)  # first the file, then its position: never a file without a position
        except FileNotFoundError:
            pass
        con.execute("DELETE FROM wb_journals WHERE journal = ?", [journal])

    def _forget_vanished_journals(self, con: Any) -> None:
        """Drop load positions of this host's journals whose files are gone."""
        mine = f"{host_name()}-"
        for (journal,) in con.execute("SELECT journal FROM wb_journals").fetchall():
            if journal.startswith(mine) and journal_owner(journal) != self.owner \
                    and not os.path.exists(self.spool.journal_path(journal)):
                con.execute("DELETE FROM wb_journals WHERE journal = ?", [journal])

    def _load_frames(self, con: Any, frames: list[Frame], journal: str, owner: str) -> None:
        """Load frames in one transaction; when the database refuses some, set those aside.

        A refused frame (a value DuckDB cannot take, a duplicate key) is saved under the spool's
        ``damaged/`` and skipped, with its run marked failed; the rest of that run's frames are
        set aside too (they build on it). Errors a retry may cure are raised instead.
        """
        if not frames:
            return
        try:
            apply_frames(con, frames, journal, owner)
            return
        except Exception as exc:
            if _transient(exc):
                raise
        refused: dict[str, str] = {}
        for frame in frames:
            runs = {str(rec.get("run_id")) for _, rec in frame.records if rec.get("run_id")}
            blocked = [r for r in runs if r in refused]
            try:
                if blocked:
                    raise StoreError(f"an earlier record of run {blocked[0]} was set aside")
                apply_frames(con, [frame], journal, owner)
                continue
            except Exception as exc:
                if _transient(exc) and not isinstance(exc, StoreError):
                    raise
                reason = first_line(exc)
            kept = self.spool.keep_damaged(f"{journal}-frame{frame.number}.json",
                                           encode_frame(frame.number, frame.records))
            log.warning("trace store %s refused frame %d of journal %s (%s); set aside in %s",
                        self.path, frame.number, journal, reason, kept)
            for run_id in runs:
                refused.setdefault(run_id, f"the trace store refused this run's records ({reason}); "
                                           f"they are kept in {kept}")
            con.execute("BEGIN TRANSACTION")
            try:
                skip_frames(con, journal, frame)
                for run_id in runs:
                    # Only a run this journal recorded is failed: a duplicate id belongs to another.
                    con.execute("UPDATE wb_runs SET status = 'failed', owner = NULL, error = ? "
                                "WHERE run_id = ? AND (owner = ? OR owner IS NULL) AND status = 'running'",
                                [refused[run_id], run_id, owner])
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        if owner == self.owner:
            with self._cond:
                self._rejected.update(refused)

    def _recover_legacy(self, path: str) -> None:
        """Load a journal written by workbench before schema 2 (one JSON record per line)."""
        with self._db.connection(write=True) as con:
            row = con.execute("SELECT value FROM wb_meta WHERE key = 'journal_seq'").fetchone()
            applied = int(row[0]) if row and str(row[0]).isdigit() else 0
            records: list[tuple[str, dict[str, Any]]] = []
            last = applied
            with open(path, "rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        break
                    if isinstance(rec, dict) and int(rec.get("s", 0)) > applied and isinstance(rec.get("t"), str):
                        last = int(rec["s"])
                        records.append((rec["t"], rec))
            if records:
                con.execute("BEGIN TRANSACTION")
                try:
                    apply_records(con, records, None)
                    con.execute("UPDATE wb_meta SET value = ? WHERE key = 'journal_seq'", [str(last)])
                    con.execute("COMMIT")
                except BaseException:
                    rollback(con)
                    raise
        os.unlink(path)

    # ----------------------------------------------------------------- writing

    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Record one row. Durable (in the journal) when this returns; in DuckDB soon after."""
        self.record_many([(kind, row)])

    def record_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Record several rows with one journal write (one step's worth, say): all or none."""
        records = [_scrubbed(kind, row) for kind, row in items]
        if not records:
            return
        _check_sizes(records)
        with self._cond:
            if self._closed:
                raise StoreError("the trace store is closed")
            if self._rejected:
                for _, row in records:
                    why = self._rejected.get(str(row.get("run_id")))
                    if why is not None:
                        raise StoreError(why)
            journal = self._ensure_journal()
            try:
                number, end = journal.append(records)
            except ValueError as exc:  # not encodable: nothing was written
                raise StoreError(f"cannot record: {exc}") from None
            self._appended = number
            # Wake the writer only when it has nothing to do; otherwise it is already gathering
            # a batch, and waking it per record would make it fight the run loop for the GIL.
            if not self._pending:
                self._cond.notify_all()
            self._pending.append(_Pending(number, end, records))

    def _ensure_journal(self) -> Journal:
        """This process's journal and writer thread, started on the first record."""
        if self._journal is None:
            if not self.writable:
                raise StoreError(f"trace store {self.path} is read-only here (no write permission); "
                                 "it can be read but not recorded into")
            try:
                self._journal = Journal(self.spool.journals, self._journal_id(), fsync=self.fsync)
            except OSError as exc:
                raise StoreError(f"cannot record into trace store {self.path}: {exc.strerror}") from None
            self._writer = threading.Thread(target=self._write_loop, name="workbench-store-writer", daemon=True)
            self._writer.start()
        return self._journal

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything this process recorded is in DuckDB.

        Raises StoreError when the writer cannot load it (the records stay safe in the journal
        and are loaded later, by this process or the next one to open the store).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._appended
            if self._applied >= target:
                return
            self._flushers += 1
            self._cond.notify_all()
            try:
                while self._applied < target:
                    if self._writer_error is not None:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    self._cond.wait(0.05)
            finally:
                self._flushers -= 1
            if self._applied < target:
                err = self._writer_error
                reason = first_line(err) if err is not None else "timed out"
                journal = self._journal.path if self._journal else "the journal"
                raise StoreError(f"trace store {self.path} cannot be updated ({reason}); what was recorded "
                                 f"is safe in {journal} and is loaded when the store is next opened")

    def _write_loop(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                # Gather frames for a moment (one transaction per batch), unless someone waits
                # in flush() or the store is closing.
                deadline = time.monotonic() + _BATCH_LINGER_S
                while not self._closed and not self._flushers:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = list(self._pending)
                closing = self._closed
            try:
                self._load_own(batch)
            except BaseException as exc:  # the journal keeps the data: retry, and tell flush()
                with self._cond:
                    self._writer_error = exc
                    self._cond.notify_all()
                    if closing:
                        return  # close() gives up: the next open loads the journal
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            with self._cond:
                self._writer_error = None
                self._applied = batch[-1].number
                del self._pending[: len(batch)]
                self._cond.notify_all()

    def _load_own(self, batch: list[_Pending]) -> None:
        frames = [Frame(p.number, p.records, 0, p.end) for p in batch]
        journal = self._journal
        assert journal is not None
        with self._db.connection(write=True, timeout=3600) as con:
            self._load_frames(con, frames, journal.id, self.owner)
            if self._retired:
                for old in self._retired:
                    con.execute("DELETE FROM wb_journals WHERE journal = ?", [old])
                self._retired.clear()
        self.spool.bump()
        if journal.size > _JOURNAL_ROLL_BYTES:
            self._maybe_roll(batch[-1].number)

    def _maybe_roll(self, loaded: int) -> None:
        """Start a fresh journal once the current one is big and fully loaded (the new one is
        locked before the old one goes, so this process never looks dead)."""
        with self._cond:
            journal = self._journal
            if journal is None or journal.frames != loaded or self._pending:
                return
            self._generation += 1
            self._journal = Journal(self.spool.journals, self._journal_id(), fsync=self.fsync)
            self._appended = self._applied = 0
            self._retired.append(journal.id)
            journal.close(remove=True)

    def _journal_id(self) -> str:
        return f"{self.owner}.{self._generation}"

    # ----------------------------------------------------------------- claims

    def claim(self, run_id: str, *, allowed: Sequence[str], answer: dict[str, Any] | None = None,
              config: str | None = None) -> None:
        """Take a run over for this process, exactly once across processes.

        In one transaction: the run must be in one of the ``allowed`` statuses (a ``running``
        run only when the process recording it is gone), ``answer`` (keys of an interrupt plus
        ``response`` and ``resumed_at``) must still be open; then the run becomes ``running``
        with this process as its owner. Raises RunStateError when another process was first.
        """
        self.flush()
        import duckdb

        with self._db.connection(write=True) as con:
            # What dead processes left first (a run they were recording is claimable, from the
            # state its journal holds) — including one that died a moment ago.
            for _ in range(3):
                for journal in self.spool.orphans():
                    self._load_orphan(con, journal)
                row = con.execute("SELECT status, owner FROM wb_runs WHERE run_id = ?", [run_id]).fetchone()
                owner = row[1] if row else None
                if not (row and row[0] == "running" and owner and owner != self.owner):
                    break
                if self._owner_alive(owner, grace=1.0):
                    raise RunStateError(
                        f"run {run_id} is being recorded right now by process {owner_pid(owner)} on "
                        f"{owner_host(owner)}; wait for it to stop, then try again"
                    )
            con.execute("BEGIN TRANSACTION")
            try:
                row = con.execute("SELECT status, owner FROM wb_runs WHERE run_id = ?", [run_id]).fetchone()
                if row is None:
                    raise RunNotFoundError(f"no run {run_id!r} in {self.path} (see 'workbench runs')")
                status, owner = row
                if status == "running" and owner is not None and owner != self.owner and self._owner_alive(owner):
                    raise RunStateError(f"run {run_id} is being recorded right now by process {owner_pid(owner)} on "
                                        f"{owner_host(owner)}; wait for it to stop, then try again")
                if status not in allowed and not (status == "running" and "running" in allowed):
                    raise RunStateError(f"run {run_id} is {status} now (another process may have just "
                                        "continued it); see 'workbench show'")
                if answer is not None:
                    keys = KEYS["interrupt"]
                    open_row = con.execute(
                        "SELECT resumed_at FROM wb_interrupts WHERE " + " AND ".join(f"{k} = ?" for k in keys),
                        [answer[k] for k in keys],
                    ).fetchone()
                    if open_row is None or open_row[0] is not None:
                        raise RunStateError(f"the question of run {run_id} at step {answer['step']} was "
                                            "already answered (by another process?); see 'workbench show'")
                    con.execute(
                        "UPDATE wb_interrupts SET response = ?, resumed_at = make_timestamp(?::BIGINT) WHERE "
                        + " AND ".join(f"{k} = ?" for k in keys),
                        [answer["response"], answer["resumed_at"], *[answer[k] for k in keys]],
                    )
                sets = "status = 'running', owner = ?, error = NULL" + (", config = ?" if config is not None else "")
                params: list[Any] = [self.owner, *([config] if config is not None else []), run_id]
                con.execute(f"UPDATE wb_runs SET {sets} WHERE run_id = ?", params)
                con.execute("COMMIT")
            except duckdb.TransactionException:
                rollback(con)
                raise RunStateError(f"run {run_id} was just claimed by another thread or process") from None
            except BaseException:
                rollback(con)
                raise
        self.spool.bump()

    def reserve_run(self, row: dict[str, Any]) -> None:
        """Insert a new run's row at once (for a run id chosen by the caller): a clear error if
        the id is taken, instead of a clash when the journal is loaded."""
        import duckdb

        self.flush()
        with self._db.connection(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if con.execute("SELECT 1 FROM wb_runs WHERE run_id = ?", [row["run_id"]]).fetchone():
                    raise RunStateError(f"run id {row['run_id']!r} is already in {self.path}; choose another "
                                        "id, resume that run, or delete it ('workbench rm')")
                apply_records(con, [("run", row)], None)
                con.execute("UPDATE wb_runs SET owner = ? WHERE run_id = ?", [self.owner, row["run_id"]])
                con.execute("COMMIT")
            except duckdb.ConstraintException:
                rollback(con)
                raise RunStateError(f"run id {row['run_id']!r} is already in {self.path}") from None
            except BaseException:
                rollback(con)
                raise
        self.spool.bump()

    def _owner_alive(self, owner: str, grace: float = 0.0) -> bool:
        """Whether the process recording a run is alive; a process that was just killed gets
        ``grace`` seconds to be gone (its lock on its journal goes when the kernel is done)."""
        if owner_host(owner) != host_name():
            return True  # another machine's process: only a shared store can tell (lake.py)
        deadline = time.monotonic() + grace
        while self.spool.is_alive(owner):
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.02)
        return False

    # ----------------------------------------------------------------- import

    def insert_batch(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Insert already-validated rows (by record kind) in one transaction (used by import)."""
        self.flush()
        records = [(kind, r) for kind in sorted(rows, key=lambda k: k != "run") for r in rows[kind]]
        with self._db.connection(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                apply_records(con, records, None)
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        self.spool.bump()

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Load what is left into DuckDB, remove this process's journal and let go of the file.

        Never raises for a database that cannot be updated right now: the journal stays (the
        next process to open the store loads it) and ``close_warning`` says so.
        """
        with self._cond:
            if self._closed:
                return
        try:
            if self._journal is not None:
                try:
                    self.flush(timeout=120)
                except StoreError as exc:
                    self.close_warning = str(exc)
                    log.warning("%s", exc)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._writer is not None:
                self._writer.join(timeout=30)
            if self._journal is not None:
                loaded = self._applied == self._appended and self._writer_error is None
                self._journal.close(remove=loaded)
                if loaded:
                    try:
                        with self._db.connection(write=True, timeout=10) as con:
                            con.execute("DELETE FROM wb_journals WHERE journal = ?", [self._journal.id])
                    except Exception:  # a stale position is harmless: the next sweep drops it
                        pass
            self.spool.close()
            self._release_db()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    @contextmanager
    def reading(self, *, strict: bool = False) -> Iterator[Any]:
        """A DuckDB cursor for reads (after this process's records are loaded).

        ``strict`` gives a read-only instance inside a read-only transaction: what the SQL
        console uses, so that no query can change the store whatever its text.
        """
        self.flush()
        with self._db.connection(strict_read=strict) as con:
            if strict:
                con.execute("BEGIN TRANSACTION READ ONLY")
            try:
                yield con
            finally:
                if strict:
                    rollback(con)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query (after flushing) and return all rows."""
        with self.reading() as con:
            return list(con.execute(sql, params or []).fetchall())

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Like :meth:`query`, rows as dicts keyed by column name."""
        with self.reading() as con:
            con.execute(sql, params or [])
            names = [d[0] for d in con.description or []]
            return [dict(zip(names, row, strict=True)) for row in con.fetchall()]

    def change_token(self) -> Any:
        """A value that changes whenever any process commits to this store (cheap to call)."""
        return self.spool.change_token()


def _scrubbed(kind: str, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The record with known secret values taken out of its error texts (a second line of
    defence: the runtime and the model layer scrub what they produce already)."""
    if row.get("error") or row.get("traceback"):
        row = dict(row)
        for col in ("error", "traceback"):
            if isinstance(row.get(col), str):
                row[col] = scrub(row[col])
    return kind, row


def _check_sizes(records: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuse a record holding a value bigger than the store takes (before the journal write)."""
    for kind, row in records:
        for col, value in row.items():
            if isinstance(value, str) and len(value) > MAX_VALUE_BYTES // 4 \
                    and len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
                what = f"state key {row.get('key')!r}" if kind == "change" else f"{kind} column {col!r}"
                raise StoreError(f"{what} of run {row.get('run_id')} is {len(value) / 1048576:.1f} MB; the trace store "
                                 f"holds values up to {MAX_VALUE_BYTES / 1048576:.0f} MB (set WORKBENCH_MAX_VALUE_MB)")


def _remove_stale_batch_files() -> None:
    """Workbench before schema 2 loaded batches through ``$TMPDIR/workbench-<kind>-*.jsonl``;
    a killed writer left them behind. Remove ours that are more than an hour old."""
    cutoff = time.time() - 3600
    kinds = "run,task,change,plan,llm,interrupt,event".split(",")
    for kind in kinds:
        for path in glob.glob(os.path.join(tempfile.gettempdir(), f"workbench-{kind}-*.jsonl")):
            try:
                if os.path.getmtime(path) < cutoff:
                    os.unlink(path)
            except OSError:
                pass

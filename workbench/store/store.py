"""The trace store: one history that any number of processes record into and read at once.

How it works (docs/architecture.md has the reasoning and the measurements):

* **Recording** appends each record batch (a step's task row, state changes and next plan) to
  this process's own journal as one frame (store/journal.py): durable against ``kill -9`` when
  :meth:`TraceStore.record_many` returns, before the next step starts.
* **A background thread** loads the journal's frames into the database in batches; each batch
  commits with the journal's load position, so nothing is loaded twice (store/ingest.py). A
  local DuckDB file is taken only for as long as a batch takes (store/database.py); a shared
  DuckLake takes concurrent commits (store/lake.py).
* **Reading** sees everything committed; a process reading its own records waits for its
  writer first.
* **Recovery:** a journal whose process died is loaded by the next process that opens the
  store (or claims one of its runs); its unfinished runs are marked interrupted and can be
  resumed from any process (store/recovery.py).
* **Claims** (resuming a run, answering its question) are transactions on the database itself:
  of two processes that try at once, exactly one wins (store/claims.py).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workbench.codec import MAX_BYTES, SETTING_ERROR, utf8_size
from workbench.errors import StoreError
from workbench.guard import note_store
from workbench.redact import scrub
from workbench.store.backend import Backend, LocalBackend
from workbench.store.claims import Claims
from workbench.store.continuation import Continuations
from workbench.store.database import classify, first_line
from workbench.store.deletion import Deletion
from workbench.store.ingest import apply_records, rollback
from workbench.store.journal import Frame, Journal
from workbench.store.reader import StoreReader
from workbench.store.reads import as_dicts, read_only
from workbench.store.recovery import Recovery, mark_interrupted
from workbench.store.spool import new_owner_id

log = logging.getLogger("workbench.store")

# How long a flush waits for the database before saying so (it may wait up to its timeout).
_TELL_WAIT_S = 3.0


class RunsAddedMeanwhile(StoreError):
    """:meth:`TraceStore.insert_batch` found runs it was to add already there (another process
    added them meanwhile): nothing was inserted."""

DEFAULT_DB = os.path.join("traces", "workbench.duckdb")

# How long the writer gathers frames before loading a batch (frames are already durable in the
# journal; this trades freshness in the database for fewer, larger transactions). When the file
# is contended (loading a batch had to wait for other processes), it gathers longer: fewer
# hand-overs leave more room for everyone, and a step is still visible well within a second.
_BATCH_LINGER_S = 0.05
_BATCH_LINGER_CONTENDED_S = 0.25
# A long-lived process starts a fresh journal once everything in this one is loaded and it has
# grown past this size.
_JOURNAL_ROLL_BYTES = 32 * 1024 * 1024
# The largest JSON text one record may hold (a state value, an update, a model answer).
MAX_VALUE_BYTES = MAX_BYTES


def default_db_path() -> str:
    """``$WORKBENCH_DB``, else ``[store] location`` of ``workbench.toml``, else
    ``traces/workbench.duckdb`` under the current directory."""
    from workbench.store.lake import configured_location

    return os.environ.get("WORKBENCH_DB") or configured_location() or DEFAULT_DB


def now_us() -> int:
    """Wall-clock time in epoch microseconds (how timestamps travel in journal records)."""
    return time.time_ns() // 1000


@dataclass
class _Pending:
    """A frame of this process's journal that is not in the database yet."""

    seq: int  # counts every frame this store wrote, across journals
    journal: Journal
    number: int  # the frame's number in its journal
    end: int
    records: list[tuple[str, dict[str, Any]]]


class TraceStore(Recovery, Claims, Continuations, Deletion, StoreReader):
    """A workbench trace store, shared by every process that opens it. Use as a context manager
    or call close().

    Args:
        path: a DuckDB file (default ``$WORKBENCH_DB`` or ``traces/workbench.duckdb``);
            ``":memory:"`` gives a throw-away store in a temporary directory; a
            ``ducklake:...`` location opens a shared DuckLake (see :mod:`workbench.store.lake`).
        fsync: also ``fsync`` each journal frame (survives power loss, about 10x the cost).
        busy_timeout: how long to wait for another process that holds a local file.
    """

    def __init__(self, path: str | None = None, *, fsync: bool = False, busy_timeout: float = 60.0) -> None:
        if SETTING_ERROR:
            raise StoreError(SETTING_ERROR)
        self._tmpdir: str | None = None
        path = path or default_db_path()
        if path == ":memory:":
            self._tmpdir = tempfile.mkdtemp(prefix="workbench-store-")
            path = os.path.join(self._tmpdir, "trace.duckdb")
        self.fsync = fsync
        self.owner = new_owner_id()
        self.close_warning: str | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._journal: Journal | None = None
        self._pending: list[_Pending] = []
        self._appended = 0  # frames written to journals by this store
        self._applied = 0  # of which loaded into the database
        self._flushers = 0
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._rejected: dict[str, str] = {}  # run id -> why its records were set aside
        self._retired: list[str] = []  # this process's older journals, fully loaded
        self._generation = 1
        self._last_position: tuple[str, int, int] | None = None
        self._linger = _BATCH_LINGER_S
        self.backend = self._open_backend(path, busy_timeout)
        self.path = self.backend.name
        self.writable = self.backend.writable
        try:
            exists = getattr(self.backend, "exists", True)
            recovering = self.writable and exists and self._needs_recovery(path)
            self.backend.prepare_schema(exists, write=recovering)
            if self.writable:
                self._recover(path)
            elif exists:
                self.note_unloaded()
        except BaseException:
            self._release()
            if getattr(self.backend, "new_spool", False):
                self.backend.spool.discard_if_unused()
            raise

    @staticmethod
    def _open_backend(path: str, busy_timeout: float) -> Backend:
        from workbench.store.lake import LakeBackend, is_lake_location

        if is_lake_location(path):
            return LakeBackend(path)
        note_store(path)  # so that a crash of the database engine can name the file (guard.py)
        return LocalBackend(path, busy_timeout)

    @property
    def spool(self) -> Any:
        return self.backend.spool

    def _release(self) -> None:
        self.backend.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _needs_recovery(self, path: str) -> bool:
        """Whether opening will load something (a dead process's journal, a pre-2 journal):
        then the schema is checked on the write instance that loading takes anyway."""
        return os.path.exists(path + ".journal") or bool(self.backend.spool.orphans())

    def _recover(self, path: str) -> None:
        """Load what dead processes left in their journals (and a pre-2 ``.journal`` file)."""
        legacy = path + ".journal"
        if os.path.exists(legacy) and os.path.getsize(legacy):
            self.recover_legacy(legacy)
        elif os.path.exists(legacy):
            os.unlink(legacy)
        _remove_stale_batch_files()
        self.sweep()

    # ----------------------------------------------------------------- writing

    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Record one row. Durable (in the journal) when this returns; in the database soon after."""
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
            self._appended += 1
            # Wake the writer only when it has nothing to do; otherwise it is already gathering
            # a batch, and waking it per record would make it fight the run loop for the GIL.
            if not self._pending:
                self._cond.notify_all()
            self._pending.append(_Pending(self._appended, journal, number, end, records))

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

    def hold_journal(self) -> None:
        """Create this process's journal now (it is what tells other processes this one is
        alive): before claiming a run, so that nobody takes it back while it runs."""
        with self._cond:
            self._ensure_journal()

    def _journal_id(self) -> str:
        return f"{self.owner}.{self._generation}"

    @property
    def journal_id(self) -> str:
        """The id of the journal this process records into now."""
        return self._journal.id if self._journal is not None else self._journal_id()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything this process recorded is in the database.

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
            waited_from, told = time.monotonic(), False
            try:
                while self._applied < target:
                    if not told and time.monotonic() - waited_from > _TELL_WAIT_S:
                        told = True
                        log.warning("waiting for trace store %s: another process holds it (a long query?); what "
                                    "was recorded is safe in %s, and Ctrl-C stops waiting (it is loaded when the "
                                    "store is next opened)", self.path, self._journal and self._journal.path,
                                    extra={"now": True})
                    if self._writer_error is not None:
                        break
                    if self._writer is not None and not self._writer.is_alive():
                        self._writer_error = StoreError("the store's writer thread stopped")
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    self._cond.wait(0.05)
            finally:
                self._flushers -= 1
            if self._applied < target:
                err = self._writer_error
                reason = _reason(err) if err is not None else "timed out"
                journal = self._journal.path if self._journal else "the journal"
                raise StoreError(f"trace store {self.path} cannot be updated ({scrub(reason)}); what was "
                                 f"recorded is safe in {journal} and is loaded when the store is next opened")

    def _write_loop(self) -> None:
        backoff = 0.05
        beat = getattr(self.backend, "heartbeat_s", None)
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not self._pending and not self._closed:
                    if beat is None:
                        self._cond.wait()
                        continue
                    self._cond.wait(beat)
                    if not self._pending and not self._closed and time.monotonic() - idle_since >= beat:
                        break  # idle for a while: tell the other machines this process lives
                if not self._pending and self._closed:
                    return
                if not self._pending:
                    self._cond.release()
                    try:
                        self._heartbeat()
                    finally:
                        self._cond.acquire()
                    continue
                # Gather frames for a moment (one transaction per batch), unless someone waits
                # in flush() or the store is closing.
                deadline = time.monotonic() + self._linger
                while not self._closed and not self._flushers:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = list(self._pending)
                closing = self._closed
            try:
                began = time.monotonic()
                self._load_own(batch)
                self._linger = _BATCH_LINGER_CONTENDED_S if time.monotonic() - began > 0.1 else _BATCH_LINGER_S
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
                self._applied = batch[-1].seq
                del self._pending[: len(batch)]
                self._cond.notify_all()
            self._maybe_roll()

    def _heartbeat(self) -> None:
        """A shared store judges a process on another machine alive by fresh load positions."""
        last = self._last_position
        try:
            with self.backend.connection(write=True, timeout=10) as con:
                if last is None:  # nothing loaded yet (a claim, say): a bare sign of life
                    journal = self.journal_id
                    self._retrying(con, lambda: self.backend.note_alive(con, journal))
                else:
                    self._retrying(con, lambda: self.backend.set_position(con, *last))
        except Exception as exc:  # an outage: the next batch or beat tries again
            log.debug("heartbeat failed: %s", first_line(exc))

    def _load_own(self, batch: list[_Pending]) -> None:
        journal = batch[0].journal
        frames = [Frame(p.number, p.records, 0, p.end) for p in batch]
        with self.backend.connection(write=True, timeout=3600) as con:
            self.load_frames(con, frames, journal.id, self.owner)
            self._last_position = (journal.id, batch[-1].number, batch[-1].end)
            # Housekeeping, after the batch is in: a failure here must not make the writer
            # take the batch for unloaded (a stale position is harmless and dropped later).
            for old in list(self._retired):
                try:
                    self._retrying(con, lambda o=old: self.backend.drop_position(con, o))
                except Exception as exc:
                    log.debug("could not drop the position of journal %s yet: %s", old, first_line(exc))
                    break
                self._retired.remove(old)
        self.spool.bump()

    def _maybe_roll(self) -> None:
        """Start a fresh journal once the current one is big and fully loaded (the new one is
        locked before the old one goes, so this process never looks dead)."""
        with self._cond:
            journal = self._journal
            if journal is None or journal.size <= _JOURNAL_ROLL_BYTES or self._pending or self._closed:
                return
            self._generation += 1
            try:
                self._journal = Journal(self.spool.journals, self._journal_id(), fsync=self.fsync)
            except OSError as exc:  # no room or no file handle: keep the current one, try later
                self._generation -= 1
                log.warning("cannot start a new journal in %s (%s); going on with %s", self.spool.journals,
                            exc.strerror, journal.path)
                return
            self._retired.append(journal.id)
            journal.close(remove=True)

    # ----------------------------------------------------------------- import

    def insert_batch(self, rows: dict[str, list[dict[str, Any]]], new_runs: Sequence[str] = ()) -> None:
        """Insert already-validated rows (by record kind) in one transaction (used by import).

        ``new_runs``: runs that must not be in the store yet; when one is (another process
        inserted it meanwhile), nothing is inserted and :class:`StoreError` says so.
        Importing a run that was deleted from this store brings it back (its tombstone goes).
        """
        self.flush()
        records = [(kind, r) for kind in sorted(rows, key=lambda k: k != "run") for r in rows[kind]]
        with self.backend.connection(write=True) as con:
            self.backend.prepare_import(con)
            con.execute("BEGIN TRANSACTION")
            try:
                self.backend.serialize_import(con)
                if new_runs and con.execute("SELECT count(*) FROM wb_runs WHERE list_contains(?, run_id)",
                                            [list(new_runs)]).fetchone()[0]:
                    raise RunsAddedMeanwhile("another process has just added some of these runs")
                runs = [r["run_id"] for r in rows.get("run", [])]
                if runs:
                    con.execute("DELETE FROM wb_deleted WHERE list_contains(?, run_id)", [runs])
                apply_records(con, records, None)
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        self.spool.bump()

    # ----------------------------------------------------------------- closing

    def close(self, timeout: float = 120.0) -> None:
        """Load what is left into the database, remove this process's journal, let go.

        Never raises for a database that cannot be updated right now: the journal stays (the
        next process to open the store loads it) and ``close_warning`` says so. ``timeout``
        bounds the wait for the writer (the workbench quits without waiting: what is not loaded
        by then stays in the journal, exactly as when the database cannot be updated).
        """
        with self._cond:
            if self._closed:
                return
        try:
            if self._journal is not None:
                try:
                    self.flush(timeout=timeout)
                except StoreError as exc:
                    self.close_warning = str(exc)
                    log.warning("%s", exc)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._writer is not None:
                self._writer.join(timeout=min(30.0, timeout))
            stuck = self._writer is not None and self._writer.is_alive()
            if stuck:
                # Still inside a commit that would not end: keep the journal locked, so that no
                # other process loads it while that commit may yet land (the lock goes when this
                # process exits, and the next one to open the store loads what is left).
                self.close_warning = self.close_warning or (
                    f"trace store {self.path} did not answer; what was recorded is safe in "
                    f"{self._journal.path if self._journal else 'the journal'} and is loaded when the store "
                    "is next opened")
            elif self._journal is not None:
                loaded = self._applied == self._appended and self._writer_error is None
                if loaded:
                    # A run still going when its store closes (Ctrl-C, quitting the workbench
                    # mid-run) has no one recording it any more: say so, as recovery does for a
                    # killed process's journal. If that cannot be written, the journal stays and
                    # the next process to open the store does it (its recovery loads nothing
                    # twice: the load position stays too).
                    loaded = self._mark_unfinished_runs()
                self._journal.close(remove=loaded)
                if loaded:
                    try:
                        with self.backend.connection(write=True, timeout=10) as con:
                            journal_id = self._journal.id
                            self._retrying(con, lambda: self.backend.drop_position(con, journal_id))
                    except Exception:  # a stale position is harmless: the next sweep drops it
                        pass
            self._release()

    def _mark_unfinished_runs(self) -> bool:
        """Mark the runs this process left running as interrupted; False if the database could
        not be updated."""
        try:
            with self.backend.connection(write=True, timeout=10) as con:
                self._retrying(con, lambda: mark_interrupted(con, self.owner))
        except Exception as exc:  # the journal stays; the next open marks them
            log.warning("could not mark this process's unfinished runs interrupted: %s", first_line(exc))
            return False
        return True

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    @contextmanager
    def reading(self, *, strict: bool = False) -> Iterator[Any]:
        """A DuckDB cursor for reads (after this process's records are loaded).

        Reads made inside the block by the same thread (``query``, ``get_run``, …) use the same
        hold on the database: wrap a read made of several queries in it, so that it takes the
        file once instead of once per query while other processes record. ``strict`` gives a
        read-only instance inside a read-only transaction: what the SQL console uses, so that no
        query can change the store whatever its text.
        """
        if not self.backend.holding():
            # (Inside an outer read the writer may need the file this thread holds: flushing
            # then would wait for ever. The outer read flushed.)
            self.flush()
        with self.backend.connection(strict_read=strict) as con:
            if strict:
                con.execute("BEGIN TRANSACTION READ ONLY")
            try:
                yield con
            finally:
                if strict:
                    rollback(con)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query (after flushing) and return all rows.

        Read-only whatever the text: it runs in a read-only transaction (once this process has
        recorded, the open instance may write). SQL the database refuses, a write included,
        raises :class:`InputError`."""
        with self.reading() as con:
            return read_only(con, sql, params, lambda: list(con.fetchall()))

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Like :meth:`query`, rows as dicts keyed by column name."""
        with self.reading() as con:
            return read_only(con, sql, params, lambda: as_dicts(con))

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.reading() as con:
            return list(con.execute(sql, params or []).fetchall())

    def _query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.reading() as con:
            con.execute(sql, params or [])
            return as_dicts(con)

    def change_token(self) -> Any:
        """A value that changes whenever any process commits to this store (cheap to call)."""
        return self.backend.change_token()


def _reason(exc: BaseException) -> str:
    """Why the database could not be updated, in words (not the engine's transaction error)."""
    kind = classify(exc)
    if kind == "full":
        return "no space left on the device"
    if kind == "locked":
        return "another program holds the file"
    return first_line(exc)


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
            if isinstance(value, str) and len(value) > MAX_VALUE_BYTES // 4 and utf8_size(value) > MAX_VALUE_BYTES:
                what = f"state key {row.get('key')!r}" if kind == "change" else f"{kind} column {col!r}"
                size_mb = utf8_size(value) / 1048576
                raise StoreError(f"{what} of run {row.get('run_id')} is {size_mb:.1f} MB; the trace store "
                                 f"holds values up to {MAX_VALUE_BYTES / 1048576:g} MB (set WORKBENCH_MAX_VALUE_MB)")


_STALE_BATCH = re.compile(r"workbench-(run|task|change|plan|llm|interrupt|event)-.*\.jsonl\Z")
_stale_swept: set[str] = set()  # temporary directories already swept by this process


def _remove_stale_batch_files() -> None:
    """Workbench before schema 2 loaded batches through ``$TMPDIR/workbench-<kind>-*.jsonl``;
    a killed writer left them behind. Remove ours that are more than an hour old.

    Once per process and temporary directory, in one pass over it: this ran at every writable
    open, listing the whole directory seven times (a tenth of opening a store to recover it)."""
    tmp = tempfile.gettempdir()
    if tmp in _stale_swept:
        return
    _stale_swept.add(tmp)
    cutoff = time.time() - 3600
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return
    for entry in entries:
        if not _STALE_BATCH.match(entry.name):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            pass

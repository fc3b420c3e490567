"""Sharing one DuckDB file between processes: open it only while it is used, hand it over fast.

DuckDB lets one process at a time open a database file for writing (or several for reading
only), and says so by refusing to open. :class:`LocalDatabase` is how every workbench process
shares a store file with the others:

* It opens the file when a thread of this process needs it and lends that one instance to every
  thread that asks meanwhile (a write instance serves reads too).
* While it waits for the file, a process announces it (a shared ``flock`` on the spool's
  ``waiters`` file). A process holding the file closes it as soon as it is idle and someone
  waits; with nobody waiting it keeps it for ``linger`` seconds, so a busy single process pays
  for opening once.
* A refusal because another workbench process holds the file is retried (with backoff) inside,
  never shown, for up to ``busy_timeout`` seconds. Workbench processes that have the file open
  say so (the spool's ``holders`` file); a file held by anything else (a DuckDB shell, say) is
  reported after ``foreign_timeout`` seconds.

Every instance is opened hardened: no access to files other than the store itself, no
extension loading or installing, and a locked configuration — so no query, whatever its text,
can write a file, read one, or undo those settings. Read-only instances are also opened in
DuckDB's read-only mode; write instances run single-threaded (``_WRITER_THREADS``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workbench.errors import StoreError
from workbench.store.spool import Spool

log = logging.getLogger("workbench.store")

HARDENED: dict[str, Any] = {
    "enable_external_access": False,
    # No spill folder: DuckDB lets queries write files in its temp directory (``<store>.tmp/``,
    # or ``./.tmp/`` for an in-memory catalog), so a read could leave a file there. A query
    # too big for memory fails with an out-of-memory error instead of spilling.
    "temp_directory": "",
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
}

# A write instance runs on the calling thread alone (DuckDB's ``threads`` counts the caller):
# what it runs is recording, recovery and claims — small transactions — and the reads of a
# process that records, for which handing each query's pipelines to a worker thread cost more
# than it saved (recovering a killed run's journal and resuming it: a sixth less CPU without).
# Read-only instances keep the engine's default, for queries over a big store.
_WRITER_THREADS = 1

_LOCK_PHRASES = ("could not set lock on file", "conflicting lock is held")
# How long a writer lets processes waiting to read go first before it competes with them.
_READERS_FIRST_S = 2.0
# How long a file held by a process other than workbench's (a DuckDB shell, say) is waited for
# before saying so. Read when a store is opened, so tests can shorten it (the product never does).
FOREIGN_TIMEOUT_S = 2.0


class StoreBusyError(StoreError):
    """Another process kept the database file for longer than the busy timeout."""


def classify(exc: BaseException) -> str:
    """What a DuckDB error says about the file: locked, corrupt, newer, readonly, invalidated,
    full, or other. Matched on the exception type first, then on DuckDB's exact phrases."""
    import duckdb

    msg = str(exc).lower()
    if isinstance(exc, duckdb.IOException) and any(p in msg for p in _LOCK_PHRASES):
        return "locked"
    if "database has been invalidated" in msg or "fatal error" in msg:
        return "invalidated"
    if "corrupt database file" in msg or "checksum" in msg or "not a valid duckdb database" in msg \
            or re.search(r"\bmagic bytes\b", msg) or "could not read enough bytes" in msg:
        return "corrupt"  # (the last: a block beyond the file's end, a cut-off file)
    if "trying to read a database file with version number" in msg or "newer version" in msg:
        return "newer"
    if "no space left on device" in msg or "disk quota" in msg or "file too large" in msg:
        return "full"
    if "permission denied" in msg or "read-only file system" in msg or "read only file system" in msg:
        return "readonly"
    return "other"


def storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB reporting trouble with the database itself (reading, writing or
    keeping its file), rather than with a query (a conversion, the ``error()`` function...)."""
    import duckdb

    return isinstance(exc, (duckdb.IOException, duckdb.FatalException, duckdb.InternalException))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain_open_error(path: str, exc: BaseException) -> StoreError:
    """A one-line, actionable StoreError for a failure to open ``path``."""
    kind = classify(exc)
    if kind == "locked":
        pid = re.search(r"PID (\d+)", str(exc))
        who = f"process {pid.group(1)}" if pid else "another process"
        return StoreBusyError(
            f"trace store {path} is in use by {who}; close that program, or pass --db to use another file"
        )
    if kind == "corrupt":
        return StoreError(
            f"trace store {path} is corrupt ({first_line(exc)}); move it aside and run "
            "'workbench doctor' on it, or pass --db to use another file"
        )
    if kind == "newer":
        return StoreError(
            f"trace store {path} was written by a newer DuckDB than this workbench uses; "
            "upgrade workbench (pip install -U agent-workbench)"
        )
    if kind == "readonly":
        return StoreError(f"trace store {path} cannot be opened for writing ({first_line(exc)}); "
                          "check the file's permissions or pass --db")
    if kind == "full":
        return StoreError(f"trace store {path}: no space left on the device; free some space and retry")
    return StoreError(f"cannot open trace store {path}: {first_line(exc)}")


def engine_config() -> dict[str, Any]:
    """Engine settings for every DuckDB instance workbench opens: ``WORKBENCH_DB_THREADS``, if
    set, is how many threads one query may use (default: one for a write instance, DuckDB's one
    per core for a read-only one).

    With more than one, the thread that asked polls for the others' work (a quarter of the lake
    tests' CPU): for small stores, on a busy machine, or for a shared store whose queries mostly
    wait for PostgreSQL, one thread does the same work for less CPU (the test suite runs with 1).
    """
    raw = os.environ.get("WORKBENCH_DB_THREADS", "").strip()
    if not raw:
        return {}
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise StoreError(f"WORKBENCH_DB_THREADS must be a whole number of threads, 1 or more (not {raw!r})")
    return {"threads": threads}


def connect(path: str, *, read_only: bool) -> Any:
    """Open a hardened DuckDB instance on ``path`` (see the module docstring)."""
    import duckdb

    config: dict[str, Any] = dict(HARDENED)
    if not read_only:
        config["threads"] = _WRITER_THREADS
    config.update(engine_config())  # WORKBENCH_DB_THREADS, when set, rules every instance
    con = duckdb.connect(path, read_only=read_only, config=config)
    try:
        locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()
        if locked and locked[0]:
            # DuckDB hands a second connect to a file this process already has open the same
            # (cached) instance, which the first connect hardened and locked already.
            return con
        try:
            # Stored timestamps are UTC; now() and friends should agree whatever the machine's zone.
            con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:  # ICU unavailable: timestamps are still UTC, comparisons need care
            pass
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


class LocalDatabase:
    """One process's access to one DuckDB store file (see the module docstring)."""

    def __init__(self, path: str, spool: Spool | None, *, writable: bool,
                 linger: float = 2.0, busy_timeout: float = 60.0, foreign_timeout: float | None = None) -> None:
        self.path = path
        self.foreign_timeout = FOREIGN_TIMEOUT_S if foreign_timeout is None else foreign_timeout
        self._hold_fd = -1
        self.spool = spool
        self.writable = writable
        self.linger = linger
        self.busy_timeout = busy_timeout
        self._cond = threading.Condition()
        self._con: Any = None
        self._mode: str | None = None  # "read" | "write"
        self._users = 0
        self._opening = False
        self._switching = 0  # threads waiting for a mode the open instance does not have
        self._broken = False  # DuckDB refuses everything after a fatal error: reopen
        self._idle_since = 0.0
        self._monitor: threading.Thread | None = None
        self._refs = 0
        self._local = threading.local()  # what this thread holds: (mode, instance)

    # ------------------------------------------------------------------ leases

    @contextmanager
    def connection(self, *, write: bool = False, strict_read: bool = False,
                   timeout: float | None = None) -> Iterator[Any]:
        """A cursor on the store for the duration of the block.

        ``write``: an instance that may write. ``strict_read``: an instance opened read-only,
        whatever else this process does (the SQL console). Plain reads take whatever instance
        is open, or open a read-only one.
        """
        if write and not self.writable:
            raise StoreError(f"trace store {self.path} is read-only here (no write permission); "
                             "it can be read but not recorded into")
        want = "write" if write else ("strict" if strict_read else "read")
        held = getattr(self._local, "held", None)
        if held is not None:
            # This thread already holds the file (a read made of several queries): use it again,
            # rather than handing the file over and queueing for it once per query.
            fits = want == "read" or (want == "write" and held[0] == "write") or (want == "strict"
                                                                                  and held[0] == "read")
            if not fits:  # waiting for our own hold to end would wait for ever
                raise RuntimeError(f"a {want} use of {self.path} inside a {held[0]} one in the same thread")
            cur = held[1].cursor()
            try:
                yield cur
            finally:
                cur.close()
            return
        con = self._acquire(want, self.busy_timeout if timeout is None else timeout)
        # From here the use is released whatever happens, a Ctrl-C included: a use never
        # released kept every later close of the store waiting for ever.
        try:
            self._local.held = (self._mode or "read", con)
            cur = con.cursor()
        except BaseException:
            self._local.held = held
            self._release()
            raise
        try:
            yield cur
        except BaseException as exc:
            # Only the engine's storage errors say something about the file: a query's own
            # error may quote recorded data ("...checksum failed...", error('No space left...')).
            kind = classify(exc) if storage_error(exc) else "other"
            if kind == "invalidated":
                with self._cond:
                    self._broken = True
            if kind in ("corrupt", "full", "newer"):
                # Damage found while reading (a block's checksum), or no room to write: name it.
                raise explain_open_error(self.path, exc) from None
            raise
        finally:
            self._local.held = held
            try:
                cur.close()
            except Exception:  # the instance may be unusable after a fatal error
                pass
            finally:
                self._release()

    def holding(self) -> bool:
        """Whether the calling thread holds the file right now (inside a ``connection`` block)."""
        return getattr(self._local, "held", None) is not None

    def _fits(self, want: str) -> bool:
        if self._con is None or self._broken:
            return False
        if want == "write":
            return self._mode == "write"
        if want == "strict":
            return self._mode == "read"
        return True

    def _acquire(self, want: str, timeout: float) -> Any:
        with self._cond:
            switching = False
            try:
                while True:
                    if self._fits(want) and (not self._switching or switching):
                        self._users += 1
                        return self._con
                    if self._con is not None and self._users == 0:
                        self._close_instance()
                        continue
                    if self._con is None and not self._opening:
                        self._opening = True
                        break
                    if not switching and self._con is not None:
                        # Hold back newcomers that the open instance would serve, so that this
                        # thread gets its turn once the current users are done.
                        switching = True
                        self._switching += 1
                    self._cond.wait(0.05)
            finally:
                if switching:
                    self._switching -= 1
        mode = "write" if want == "write" else "read"
        try:
            con = self._open(read_only=mode == "read", timeout=timeout)
        except BaseException:
            with self._cond:
                self._opening = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._con, self._mode, self._broken = con, mode, False
            if self.spool is not None:
                self._hold_fd = self.spool.hold()
            self._opening = False
            self._users += 1
            self._cond.notify_all()
        return con

    def _release(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users > 0:
                return
            self._idle_since = time.monotonic()
            self._cond.notify_all()
            if self._broken or self._switching or self._refs <= 0 or self.linger <= 0 \
                    or (self.spool is not None and self.spool.has_waiters()):
                self._close_instance()
                return
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(target=self._watch_idle, name="workbench-store-idle",
                                                 daemon=True)
                self._monitor.start()

    def _watch_idle(self) -> None:
        """Close the instance once idle for ``linger`` seconds, or at once when someone waits."""
        while True:
            with self._cond:
                self._cond.wait(0.01)
                if self._con is None:
                    return
                if self._users > 0:
                    continue
                if self._switching or (self.spool is not None and self.spool.has_waiters()) \
                        or time.monotonic() - self._idle_since >= self.linger:
                    self._close_instance()
                    return

    def _close_instance(self) -> None:
        """Close the open instance (call with the condition held and no users)."""
        con, self._con, self._mode = self._con, None, None
        if con is not None:
            try:
                con.close()
            except Exception as exc:  # closing checkpoints; a failure leaves the WAL for next time
                log.warning("closing trace store %s: %s", self.path, first_line(exc))
            Spool.unhold(self._hold_fd)
            self._hold_fd = -1
        self._cond.notify_all()

    def _open(self, *, read_only: bool, timeout: float) -> Any:
        import duckdb

        start = time.monotonic()
        deadline = start + timeout
        foreign_since: float | None = None
        delay = 0.002
        announce = self.spool.waiting(reader=read_only) if self.spool is not None else _nothing()
        with announce:
            while True:
                if not read_only and self.spool is not None and time.monotonic() - start < _READERS_FIRST_S \
                        and self.spool.readers_waiting():
                    # A writer's records are safe in its journal: let a waiting reader go first.
                    time.sleep(0.005)
                    continue
                try:
                    return connect(self.path, read_only=read_only)
                except duckdb.Error as exc:
                    kind = classify(exc)
                    now = time.monotonic()
                    if kind == "locked" and self.spool is not None and not self.spool.held_by_workbench():
                        foreign_since = now if foreign_since is None else foreign_since
                    else:
                        foreign_since = None
                    foreign = foreign_since is not None and now - foreign_since >= self.foreign_timeout
                    if kind != "locked" or now >= deadline or foreign:
                        err = explain_open_error(self.path, exc)
                        if kind == "locked" and not foreign:
                            err = StoreBusyError(f"{err} (waited {now - start:.0f} s)")
                        raise err from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def close_now(self) -> None:
        """Close the instance as soon as its current users are done."""
        with self._cond:
            while self._users > 0:
                self._cond.wait(0.05)
            self._close_instance()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


_registry: dict[str, LocalDatabase] = {}
_registry_lock = threading.Lock()


def open_database(path: str, *, writable: bool) -> LocalDatabase:
    """The process's one :class:`LocalDatabase` for a file (DuckDB allows one instance per file
    per process); pair with :func:`close_database`."""
    key = os.path.realpath(path)
    with _registry_lock:
        db = _registry.get(key)
        if db is None:
            db = _registry[key] = LocalDatabase(path, Spool(path + ".spool"), writable=writable)
        db._refs += 1
        return db


def close_database(db: LocalDatabase) -> None:
    """Drop one reference; the last one closes the file."""
    with _registry_lock:
        db._refs -= 1
        if db._refs > 0:
            return
        _registry.pop(os.path.realpath(db.path), None)
    db.close_now()
    if db.spool is not None:
        db.spool.close()

"""Where a trace store's database lives: a local DuckDB file, or a shared DuckLake (lake.py).

A backend gives the store connections (cursors) for reading and writing, prepares the schema,
keeps the journals' load positions, and says whether the process recording a run is alive. The
recording machinery above it (journals, the writer, recovery, claims) is the same for both.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import AbstractContextManager
from typing import Any

from workbench.errors import StoreError
from workbench.store.database import close_database, first_line, open_database
from workbench.store.ingest import rollback
from workbench.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS
from workbench.store.spool import Spool, host_name, owner_host, owner_pid


def views_hash() -> str:
    return hashlib.sha256(VIEWS.encode()).hexdigest()[:16]


class Backend:
    """What a trace store needs from where its data lives."""

    #: What to call the store in messages (a path, or a DuckLake location without secrets).
    name: str
    spool: Spool
    writable: bool = True
    #: True when the database enforces the natural keys (a local DuckDB file does; DuckLake has
    #: no key constraints, so the recording code's exactly-once loading is what keeps rows unique).
    enforces_keys: bool = True
    #: Seconds without a heartbeat after which a process on another machine counts as gone.
    owner_timeout: float = 300.0
    #: True when every process on this host that uses the store uses this spool (a local file's
    #: spool sits beside it). A shared store's spool is per user and configuration, so another
    #: process on this host may keep its journals elsewhere.
    spool_is_unique: bool = True

    def connection(self, *, write: bool = False, strict_read: bool = False,
                   timeout: float | None = None) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def holding(self) -> bool:
        """Whether the calling thread is inside a ``connection`` block already."""
        return False

    def change_token(self) -> Any:
        """A value that changes whenever any process commits (cheap: readers poll it)."""
        return self.spool.change_token()

    def is_conflict(self, exc: BaseException) -> bool:
        """True for a commit that lost a race with another writer and may simply be retried."""
        return False

    def prepare_import(self, con: Any) -> None:
        """Before an import's transaction: what :meth:`serialize_import` needs to exist."""

    def serialize_import(self, con: Any) -> None:
        """Inside an import's transaction: make two imports committing at once conflict, so that
        the one that loses sees the other's runs on its retry. A local file needs nothing: it
        admits one writing process at a time, so the import's check of its runs is a real one."""

    # ------------------------------------------------------------------ schema

    def schema_state(self, con: Any) -> str:
        """"ok", "create" or "upgrade" (raises StoreError for a database we must not touch).

        One query when the store is up to date (what nearly every open finds); anything else (no
        ``wb_meta``, an old or damaged one) is judged by :meth:`checked_schema_state`. Listing
        the tables first cost more than the rest of the check (a catalog scan per open; on a
        lake, several lookups in PostgreSQL).
        """
        import duckdb

        try:
            meta = dict(con.execute("SELECT key, value FROM wb_meta WHERE key IN ('schema_version', 'views')")
                        .fetchall())
        except (duckdb.CatalogException, duckdb.BinderException):  # no wb_meta (a new store), or not ours
            return self.checked_schema_state(con)
        if meta.get("schema_version") == str(SCHEMA_VERSION) and meta.get("views") == views_hash():
            return "ok"
        return self.checked_schema_state(con)

    def checked_schema_state(self, con: Any) -> str:
        """:meth:`schema_state` from the full check: which tables exist, then the version."""
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database()"
        ).fetchall()}
        if "wb_meta" not in tables:
            if tables:
                raise StoreError(f"{self.name} is a DuckDB database but not a workbench trace store; "
                                 "pass --db to use another one")
            return "create"
        row = con.execute("SELECT value FROM wb_meta WHERE key = 'schema_version'").fetchone()
        raw = row[0] if row else None
        try:
            version = int(raw or "")
        except ValueError:
            raise StoreError(
                f"trace store {self.name} has an unreadable schema version {raw!r}; it is damaged or was not "
                "made by workbench — move it aside or pass --db to use another one"
            ) from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"trace store {self.name} has schema version {version}, newer than this workbench "
                f"understands ({SCHEMA_VERSION}); upgrade workbench (pip install -U agent-workbench)"
            )
        if version < 1:
            raise StoreError(f"trace store {self.name} has an invalid schema version {version}; "
                             "move it aside or pass --db to use another one")
        views = con.execute("SELECT value FROM wb_meta WHERE key = 'views'").fetchone()
        if version == SCHEMA_VERSION and views and views[0] == views_hash():
            return "ok"
        return "upgrade"

    def tables_sql(self) -> str:
        return TABLES

    def upgrade_tables_sql(self) -> str:
        """The table definitions run after the migration steps of an upgrade (tables new in
        this version; existing ones are left as the migrations made them)."""
        return self.tables_sql()

    def prepare_schema(self, exists: bool, *, write: bool = False) -> None:
        """Create or upgrade the schema; opening an up-to-date store writes nothing.

        ``write``: the caller writes right after (recovery): the schema is checked on the write
        instance it needs anyway, so the file is opened once rather than read-only, closed and
        opened again for writing (a local file takes about a tenth of a second per open).
        """
        import duckdb

        if exists and not write:
            try:
                with self.connection() as con:
                    state = self.schema_state(con)
            except duckdb.Error as exc:
                raise StoreError(f"trace store {self.name} cannot be read: {first_line(exc)}") from None
            if state == "ok":
                return
            if not self.writable:
                raise StoreError(f"trace store {self.name} needs a schema upgrade but is read-only here; "
                                 "open it once where it is writable")
        try:
            with self.connection(write=True) as con:
                try:
                    state = self.schema_state(con)
                except duckdb.Error as exc:
                    if exists and write:  # what the read-only check would have said
                        raise StoreError(f"trace store {self.name} cannot be read: {first_line(exc)}") from None
                    raise
                if state == "ok":
                    return
                con.execute("BEGIN TRANSACTION")
                try:
                    if state == "create":
                        con.execute(self.tables_sql())
                        con.execute("INSERT INTO wb_meta VALUES ('schema_version', ?), ('journal_seq', '0')",
                                    [str(SCHEMA_VERSION)])
                    else:
                        version = int(con.execute(
                            "SELECT value FROM wb_meta WHERE key = 'schema_version'").fetchone()[0])
                        # A store already at this version whose views are stale is given this
                        # version's step again: it only adds columns (IF NOT EXISTS), which a build
                        # made before all of this version's additions were combined may lack.
                        first = version - 1 if version < SCHEMA_VERSION else SCHEMA_VERSION - 2
                        for step in MIGRATIONS[first:]:
                            con.execute(step)
                        con.execute(self.upgrade_tables_sql())
                        con.execute("UPDATE wb_meta SET value = ? WHERE key = 'schema_version'",
                                    [str(SCHEMA_VERSION)])
                    # The views and macros of this version of workbench (definitions, not data).
                    con.execute(VIEWS)
                    con.execute("DELETE FROM wb_meta WHERE key = 'views'")
                    con.execute("INSERT INTO wb_meta VALUES ('views', ?)", [views_hash()])
                    con.execute("COMMIT")
                except BaseException:
                    rollback(con)
                    raise
        except duckdb.Error as exc:
            raise StoreError(f"trace store {self.name} cannot be used: {first_line(exc)}") from None

    # ------------------------------------------------------------------ load positions

    def position(self, con: Any, journal: str) -> tuple[int, int] | None:
        """How far ``journal`` is loaded: (last frame, byte offset after it), or None."""
        row = con.execute('SELECT frame, "offset" FROM wb_journals WHERE journal = ? '
                          "ORDER BY frame DESC LIMIT 1", [journal]).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_position(self, con: Any, journal: str, frame: int, offset: int) -> None:
        """Record a journal's load position (inside the caller's transaction)."""
        con.execute("INSERT OR REPLACE INTO wb_journals VALUES (?, ?, ?, now())", [journal, frame, offset])

    def drop_position(self, con: Any, journal: str) -> None:
        con.execute("DELETE FROM wb_journals WHERE journal = ?", [journal])

    def known_journals(self, con: Any) -> list[str]:
        return [r[0] for r in con.execute("SELECT DISTINCT journal FROM wb_journals").fetchall()]

    # ------------------------------------------------------------------ liveness

    def judged_by_lock(self, owner: str) -> bool:
        """Whether the liveness of ``owner`` is known from its journal's lock in this spool
        (else from its heartbeat, :meth:`owner_alive`)."""
        if owner_host(owner) != host_name():
            return False
        return self.spool_is_unique or self.spool.has_journal_of(owner)

    def owner_alive(self, con: Any | None, owner: str) -> bool:
        """Whether the process ``owner``, which this spool cannot judge, still records: on a
        local file, a process on another machine is assumed alive."""
        return True

    def who_records(self, owner: str) -> str:
        """How a refusal names the process recording a run."""
        return f"process {owner_pid(owner)} on {owner_host(owner)}"

    def note_alive(self, con: Any, journal: str) -> None:
        """Mark this process alive inside the caller's transaction (a claim), for stores whose
        other users judge it by heartbeat."""


class LocalBackend(Backend):
    """A DuckDB file on this machine, shared by its processes (store/database.py)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.name = path
        self.path = path
        self.exists = os.path.exists(path)
        directory = os.path.dirname(os.path.abspath(path))
        if self.exists and os.path.isdir(path):
            raise StoreError(f"trace store {path} is a directory; pass --db a file path")
        if not self.exists:
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create trace store {path}: {exc.strerror}; pass --db a "
                                 "writable location") from None
            if not os.access(directory, os.W_OK):
                raise StoreError(f"cannot create trace store {path}: directory {directory} is not "
                                 "writable; pass --db a writable location")
        self.writable = os.access(directory, os.W_OK) and (not self.exists or os.access(path, os.W_OK))
        self.spool = Spool(path + ".spool")
        # Made here for a file that was there already: to be taken away again if the file is
        # refused (not a database, damaged), so that a refusal leaves nothing behind.
        self.new_spool = self.exists and not self.spool.exists()
        if self.writable:
            try:
                self.spool.create()
            except OSError:
                self.writable = False
        self._db = open_database(path, writable=self.writable)
        self._db.busy_timeout = busy_timeout
        self._open = True

    def connection(self, *, write: bool = False, strict_read: bool = False,
                   timeout: float | None = None) -> AbstractContextManager[Any]:
        return self._db.connection(write=write, strict_read=strict_read, timeout=timeout)

    def holding(self) -> bool:
        return self._db.holding()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.spool.close()
            close_database(self._db)

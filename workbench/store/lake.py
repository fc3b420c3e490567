"""A shared history on DuckLake: the catalog in PostgreSQL, the data files in a shared directory.

``--db ducklake:postgres:dbname=workbench host=db.internal user=wb`` (or ``[store] location``
in ``workbench.toml``) makes every command record into and read from one history that workers
on many machines share. Each process still journals every step locally first (the spool,
``[store] spool``), so a step is durable before the next one starts even when PostgreSQL is
unreachable; the writer sends frames to the lake when it can.

Configuration (``workbench.toml``, environment variables win)::

    [store]
    location = "ducklake:postgres:dbname=workbench host=db.internal user=wb"   # WORKBENCH_DB
    data_path = "/mnt/shared/workbench-lake/"    # WORKBENCH_LAKE_DATA: needed to create a lake
    spool = "/var/lib/workbench/spool"           # WORKBENCH_SPOOL: local journals (default: per user)

Credentials come from libpq's environment (``PGPASSWORD``, ``~/.pgpass``, ``PGUSER`` ...):
a ``password=`` in the location is refused, so it never lands in a config file, a trace or an
error message. Every instance is hardened as the local one is: extensions are loaded from the
installed ``duckdb-extension-*`` wheels by path, file access is limited to the lake's data
directory, and the configuration is locked before any query runs.

DuckLake has no key constraints and checks conflicts per table: a commit that lost a race is
retried (``is_conflict``); exactly-once loading comes from the journals' load positions, which
are appended (never updated) so that workers do not collide on them. A process on another
machine counts as alive while its positions keep getting fresh timestamps (a heartbeat).
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workbench.errors import StoreError
from workbench.redact import remember_secret, scrub
from workbench.store import lake_pool
from workbench.store.backend import Backend
from workbench.store.database import HARDENED, engine_config, first_line
from workbench.store.schema import TABLES
from workbench.store.spool import Spool

PREFIX = "ducklake:"
ALIAS = "wb_lake"
_CONNECT_TIMEOUT_S = 10
# Commits of up to this many rows per table are kept in the catalog, not written as files.
INLINE_ROWS = 2000


def is_lake_location(location: str) -> bool:
    return location.startswith(PREFIX)


def store_config() -> dict[str, Any]:
    """The ``[store]`` section of ``workbench.toml`` in the current directory ({} if none).

    Raises:
        ConfigError: the file is not TOML, or has an unknown key or a value of the wrong type
            (a misspelt ``location`` must not quietly record into a local file instead).
    """
    from workbench.project_config import section

    return section("store")


def configured_location() -> str | None:
    """``[store] location`` from workbench.toml, if set."""
    value = store_config().get("location")
    return str(value) if value else None


def _extension(name: str, wheel: str) -> str:
    spec = importlib.util.find_spec(f"duckdb_extension_{wheel}")
    if spec is None or spec.origin is None:
        raise StoreError(f"DuckLake stores need the DuckDB extension wheels: pip install 'agent-workbench[fleet]' "
                         f"(duckdb-extension-{wheel.replace('_', '-')} is missing)")
    found = glob.glob(os.path.join(os.path.dirname(spec.origin), "extensions", "*", f"{name}.duckdb_extension"))
    if not found:
        raise StoreError(f"the duckdb-extension-{wheel} wheel holds no {name}.duckdb_extension")
    return found[0]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LakeBackend(Backend):
    """A DuckLake history (see the module docstring)."""

    enforces_keys = False
    heartbeat_s = 30.0
    spool_is_unique = False

    def __init__(self, location: str, *, data_path: str | None = None, spool: str | None = None) -> None:
        config = store_config()
        self.location = location
        catalog = location[len(PREFIX):]
        if re.search(r"(^|\s)password\s*=", catalog, re.I) or re.search(r"://[^/@\s]*:[^/@\s]*@", catalog):
            raise StoreError("put the database password in PGPASSWORD or ~/.pgpass, not in the store location "
                             "(it would be shown in messages and saved in configuration files)")
        if catalog.startswith("postgres:") and "connect_timeout" not in catalog and "://" not in catalog:
            # libpq waits forever for a server that accepts and never answers.
            catalog += f" connect_timeout={_CONNECT_TIMEOUT_S}"
        self._catalog = catalog
        self.name = location
        self.data_path = data_path or os.environ.get("WORKBENCH_LAKE_DATA") or config.get("data_path")
        if self.data_path:
            self.data_path = os.path.abspath(os.path.expanduser(str(self.data_path)))
        spool_dir = spool or os.environ.get("WORKBENCH_SPOOL") or config.get("spool")
        if not spool_dir:
            state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
            spool_dir = os.path.join(state, "workbench", "spool")
        key = hashlib.sha256(location.encode()).hexdigest()[:12]
        self.spool = Spool(os.path.join(os.path.expanduser(str(spool_dir)), key))
        try:
            self.spool.create()
        except OSError as exc:
            raise StoreError(f"cannot create the local spool {self.spool.root} for {location}: {exc.strerror}; "
                             "set [store] spool to a writable directory") from None
        self._lock = threading.Lock()
        self._instances: dict[bool, Any] = {}
        self._pool_keys: dict[int, str] = {}  # id(instance) -> what it may be reused for
        self._write = self._attach(read_only=False)  # fails now, before any step runs
        self._instances[False] = self._write

    # ------------------------------------------------------------------ connecting

    def _attach(self, *, read_only: bool) -> Any:
        """An instance with the lake attached: one this process kept from a closed store of the
        same lake (store/lake_pool.py) if it still answers, else a new one."""
        key = lake_pool.instance_key(self._catalog, self.data_path, read_only)
        kept = lake_pool.take(key)
        if kept is not None:
            try:
                cur = kept.cursor()
                try:
                    cur.execute(f"USE {ALIAS}")
                    cur.execute(f"SELECT max(snapshot_id) FROM {ALIAS}.snapshots()").fetchone()
                finally:
                    cur.close()
            except Exception:  # the server went away meanwhile: a new attach reports it properly
                lake_pool.discard(kept)
            else:
                self._pool_keys[id(kept)] = key
                return kept
        con = self._new_instance(read_only=read_only)
        self._pool_keys[id(con)] = key
        return con

    def _new_instance(self, *, read_only: bool) -> Any:
        import duckdb

        con = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                                 "autoinstall_known_extensions": False,
                                                 "allow_community_extensions": False,
                                                 "temp_directory": str(HARDENED["temp_directory"]), **engine_config()})
        try:
            con.execute(f"LOAD {_quote(_extension('ducklake', 'ducklake'))}")
            if self._catalog.startswith("postgres:"):
                con.execute(f"LOAD {_quote(self._postgres_extension())}")
            elif self._catalog.startswith("sqlite:"):
                con.execute(f"LOAD {_quote(_extension('sqlite_scanner', 'sqlite_scanner'))}")
            options = []
            if self.data_path:
                os.makedirs(self.data_path, exist_ok=True)
                con.execute(f"SET allowed_directories = [{_quote(self.data_path.rstrip('/') + '/')}]")
                options.append(f"DATA_PATH {_quote(self.data_path)}")
            if read_only:
                options.append("READ_ONLY")
            opts = f" ({', '.join(options)})" if options else ""
            con.execute(f"ATTACH {_quote(PREFIX + self._catalog)} AS {ALIAS}{opts}")
            con.execute(f"USE {ALIAS}")
            if not self.data_path:
                # A worker configured with the catalog alone: the lake's data path is read from
                # it, and is the one directory this instance may read (data files) and write.
                stored = _stored_data_path(con)
                if stored:
                    con.execute(f"SET allowed_directories = [{_quote(stored.rstrip('/') + '/')}]")
            try:
                con.execute("SET TimeZone = 'UTC'")
            except duckdb.Error:
                pass
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            con.close()
            raise self._explain(exc) from None
        except BaseException:
            con.close()
            raise
        return con

    def _postgres_extension(self) -> str:
        # The wheel names the file postgres.duckdb_extension, but LOAD derives the entry point from
        # the file name and the binary's is postgres_scanner's: load it under that name.
        source = _extension("postgres", "postgres")
        linked = os.path.join(self.spool.root, "ext", "postgres_scanner.duckdb_extension")
        if not os.path.exists(linked):
            os.makedirs(os.path.dirname(linked), exist_ok=True)
            try:
                os.symlink(source, linked)
            except FileExistsError:
                pass
        return linked

    def _explain(self, exc: BaseException) -> StoreError:
        text = first_line(exc)
        for match in re.finditer(r"password=(\S+)", text):
            remember_secret(match.group(1))
        text = scrub(re.sub(r'Unable to connect to Postgres at "[^"]*"', "Unable to connect to PostgreSQL", text))
        if "DATA_PATH" in text or "data path" in text.lower():
            return StoreError(f"shared store {self.name}: {text}")
        if "does not exist - and creating a new DuckLake" in text or "DATA_PATH" in text:
            return StoreError(f"shared store {self.name} does not exist yet; create it by setting a data path "
                              "([store] data_path or WORKBENCH_LAKE_DATA)")
        return StoreError(f"cannot reach the shared store {self.name}: {text}")

    @contextmanager
    def connection(self, *, write: bool = False, strict_read: bool = False,
                   timeout: float | None = None) -> Iterator[Any]:
        import duckdb

        with self._lock:
            instance = self._instances.get(strict_read)
            if instance is None:
                instance = self._instances[strict_read] = self._attach(read_only=True)
            cur = instance.cursor()
        try:
            cur.execute(f"USE {ALIAS}")  # a cursor is a new connection: it starts in the memory catalog
            yield cur
        except duckdb.IOException as exc:
            raise self._explain(exc) from None
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            for instance in self._instances.values():
                # Kept for this process's next store of the lake (checked before it is used).
                lake_pool.give_back(self._pool_keys.pop(id(instance)), instance)
            self._instances.clear()
        self.spool.close()

    def change_token(self) -> Any:
        """The lake's newest snapshot: every commit by any machine makes one."""
        with self.connection() as con:
            row = con.execute(f"SELECT max(snapshot_id) FROM {ALIAS}.snapshots()").fetchone()
        return row[0] if row else None

    def is_conflict(self, exc: BaseException) -> bool:
        import duckdb

        text = str(exc)
        return isinstance(exc, duckdb.TransactionException) and (
            "Transaction conflict" in text or "ducklake_snapshot_pkey" in text)

    def prepare_import(self, con: Any) -> None:
        if con.execute("SELECT count(*) FROM wb_meta WHERE key = 'import'").fetchone()[0] == 0:
            # Two of these at once leave two rows: harmless, serialize_import deletes every one.
            con.execute("INSERT INTO wb_meta VALUES ('import', '')")

    def serialize_import(self, con: Any) -> None:
        # DuckLake has no key constraints, and two transactions that only insert never conflict:
        # two imports of one file at once would both find its runs absent and both insert them.
        # Both replacing the same wb_meta row does conflict (each deletes what the other
        # deletes), so the later commit fails and its retry finds the runs there.
        con.execute("DELETE FROM wb_meta WHERE key = 'import'")
        con.execute("INSERT INTO wb_meta VALUES ('import', ?)", [str(os.getpid())])

    # ------------------------------------------------------------------ schema

    def tables_sql(self) -> str:
        # DuckLake has no key constraints; exactly-once loading keeps rows unique. Small commits
        # (a batch of steps) are inlined into the catalog instead of becoming one tiny Parquet
        # file each; `workbench maintain` flushes them into files (store/maintenance.py).
        return self.upgrade_tables_sql() + f"\nCALL {ALIAS}.set_option('data_inlining_row_limit', {INLINE_ROWS});\n"

    def upgrade_tables_sql(self) -> str:
        # Without the inlining option (set when the lake was made, and kept by its catalog):
        # DuckLake (1.5) crashes when set_option and an ALTER TABLE share a transaction.
        sql = re.sub(r",\s*PRIMARY KEY \([^)]*\)", "", TABLES)
        return re.sub(r" PRIMARY KEY", "", sql)

    # ------------------------------------------------------------------ positions

    def set_position(self, con: Any, journal: str, frame: int, offset: int) -> None:
        # Appended, never updated: an UPDATE would collide with every other worker's commit.
        con.execute("INSERT INTO wb_journals VALUES (?, ?, ?, now())", [journal, frame, offset])

    def note_alive(self, con: Any, journal: str) -> None:
        # Frame 0: no frame is loaded by this row; the newest timestamp is the heartbeat.
        con.execute("INSERT INTO wb_journals VALUES (?, 0, 0, now())", [journal])

    def who_records(self, owner: str) -> str:
        who = super().who_records(owner)
        if self.judged_by_lock(owner):
            return who
        # Known only by its heartbeat: a process killed a moment ago still counts for a while.
        return (f"{who} (by its heartbeat: a process that stopped counts as recording until its heartbeat "
                f"is {self.owner_timeout / 60:g} minutes old)")

    def owner_alive(self, con: Any | None, owner: str) -> bool:
        """A process this spool cannot judge (another machine, or another spool on this one)
        is alive while its heartbeat is fresh."""
        if con is None:
            return True
        row = con.execute("SELECT max(updated_at) > now()::TIMESTAMP - to_seconds(?) FROM wb_journals "
                          "WHERE starts_with(journal, ?)", [self.owner_timeout, owner + "."]).fetchone()
        return bool(row and row[0])


def _stored_data_path(con: Any) -> str | None:
    """The data path a lake's catalog holds (its ``ducklake_metadata``), or None."""
    import duckdb

    try:
        row = con.execute(f"SELECT value FROM __ducklake_metadata_{ALIAS}.ducklake_metadata "
                          "WHERE key = 'data_path'").fetchone()
    except duckdb.Error:
        return None
    return str(row[0]) if row and row[0] else None

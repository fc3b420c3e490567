"""Compaction: keeping a store small and fast as it grows (``workbench maintain``).

A local DuckDB file needs little: DuckDB checkpoints its write-ahead log on its own, and
``maintain`` forces one. A DuckLake gets one small commit per loaded batch, so it is set up to
*inline* small batches into its catalog (no data file per commit, see lake.py) and ``maintain``
runs DuckLake's own tools: flush inlined rows into Parquet files, merge adjacent small files,
expire snapshots older than ``keep`` and delete the files nothing refers to any more. Run it
from cron on one machine of a fleet (e.g. hourly); recording processes also run the cheap part
(a checkpoint) now and then, see ``TraceStore`` in store.py.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from workbench.errors import InputError, StoreError
from workbench.store.schema import VIEWS

if TYPE_CHECKING:
    from workbench.store.store import TraceStore


def maintain(store: TraceStore, keep: str = "1 day") -> list[str]:
    """Compact ``store``; returns what was done, a line each."""
    import duckdb

    from workbench.store.lake import ALIAS, LakeBackend

    interval, age = _keep_interval(keep)
    done: list[str] = []
    store.flush()
    try:
        with store.backend.connection(write=True) as con:
            if isinstance(store.backend, LakeBackend):
                pruned = _prune_positions(store, con)
                done.append(f"pruned {pruned} old load positions and heartbeats")
                # Each step is DuckLake's own and may be done again: one that lost a race with
                # a worker committing at the same moment is retried, as the workers retry theirs.
                again = functools.partial(_again, store, con)
                again(f"CALL {ALIAS}.set_option('expire_older_than', '{interval}')")
                again(f"CALL {ALIAS}.set_option('delete_older_than', '{interval}')")
                flushed = again(f"CALL ducklake_flush_inlined_data('{ALIAS}')")
                done.append(f"flushed {sum(int(r[-1]) for r in flushed)} inlined rows into data files")
                merged = again(f"CALL ducklake_merge_adjacent_files('{ALIAS}')")
                done.append(f"merged {sum(int(r[2]) for r in merged if len(r) > 2)} small files")
                again(f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => now() - INTERVAL '{interval}')")
                again(f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => now() - INTERVAL '{interval}')")
                done.append(f"expired snapshots and deleted unreferenced files older than {age}")
            else:
                unreadable = _unreadable_views(con)
                if unreadable:  # dropped or broken by another program: definitions, made again
                    con.execute(VIEWS)
                    done.append(f"made the views again ({', '.join(unreadable)} could not be read)")
                con.execute("CHECKPOINT")
                _check_file_whole(store.path, con)
                done.append(f"checkpointed {store.path}")
    except duckdb.Error as exc:
        raise StoreError(f"maintaining {store.path} failed: {str(exc).strip().splitlines()[0]}") from None
    return done


def _keep_interval(keep: str) -> tuple[str, str]:
    """``--keep`` as a SQL interval (``'1 days'``) and as words for the report (``1 day``,
    ``12 hours``: singular for one)."""
    match = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour|day|week|month)s?\s*", keep, re.I)
    if match is None:
        raise InputError(f"--keep {keep!r}: give a whole number and a unit, e.g. '1 day' or '12 hours'")
    count, unit = int(match[1]), match[2].lower()
    return f"{count} {unit}s", f"{count} {unit}{'' if count == 1 else 's'}"


def _unreadable_views(con: Any) -> list[str]:
    """The documented views (docs/sql.md) that cannot be read."""
    import duckdb

    from workbench.sqlquery import DOCUMENTED_VIEWS

    unreadable = []
    for view in DOCUMENTED_VIEWS:
        try:
            con.execute(f"SELECT * FROM {view} LIMIT 0").fetchall()
        except duckdb.Error:
            unreadable.append(view)
    return unreadable


# A DuckDB file: three 4 KiB headers, then its blocks.
_HEADER_BYTES = 3 * 4096


def _check_file_whole(path: str, con: Any) -> None:
    """Refuse a file that ends before a block the database uses (a cut-off copy, a truncated
    disk image). A checkpoint reads no block it does not change, so without this a cut-off store
    was reported "checkpointed"; after one, every block in use is in the file. Blocks in use:
    the tables' data and the catalog's metadata (DuckDB trims free blocks off the end of the
    file, so its count of all blocks may exceed what the file holds, whole)."""
    import os

    if not os.path.isfile(path):
        return  # an in-memory store
    block_size = int(con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
    highest = con.execute("SELECT max(block_id) FROM pragma_metadata_info()").fetchone()[0] or 0
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                                ).fetchall():
        # (the table names are the store's own: the catalog's, quoted as a literal)
        used = con.execute("SELECT max(block_id) FROM pragma_storage_info(?) WHERE persistent AND block_id >= 0",
                           [table]).fetchone()[0]
        highest = max(highest, used or 0)
    needed = _HEADER_BYTES + (int(highest) + 1) * block_size
    size = os.path.getsize(path)
    if size < needed:
        raise StoreError(f"trace store {path} is cut off: the file has {size} bytes, the blocks it uses need "
                         f"{needed}; move it aside and run 'workbench doctor --db {path}' on it")


# Of each journal's rows, keep the newest (its heartbeat) and the newest at its highest frame
# (its load position); the rest are superseded. Positions are appended, never updated, so that
# workers do not collide on them: this is where the old ones go.
_PRUNE = """
DELETE FROM wb_journals AS j
WHERE updated_at < (SELECT max(k.updated_at) FROM wb_journals AS k WHERE k.journal = j.journal)
  AND NOT (frame = (SELECT max(k.frame) FROM wb_journals AS k WHERE k.journal = j.journal)
           AND updated_at = (SELECT max(k.updated_at) FROM wb_journals AS k
                             WHERE k.journal = j.journal AND k.frame = j.frame))
"""


def _prune_positions(store: TraceStore, con: Any) -> int:
    deleted: list[int] = []

    def prune() -> None:  # the count the DELETE reports (counting before and after raced workers)
        deleted[:] = [int(con.execute(_PRUNE).fetchone()[0])]

    store._retrying(con, prune)
    return deleted[0] if deleted else 0


ATTEMPTS = 12


def lost_race(store: TraceStore, exc: BaseException) -> bool:
    """Whether a DuckLake maintenance step failed because a worker committed at the same moment
    (what a retry cures): a snapshot conflict, or PostgreSQL's serialization failure."""
    import duckdb

    text = str(exc)
    return store.backend.is_conflict(exc) or (
        isinstance(exc, duckdb.Error) and ("could not serialize access" in text
                                           or "Failed to commit DuckLake transaction" in text))


def _again(store: TraceStore, con: Any, sql: str) -> list[Any]:
    """Run one maintenance statement, again after a lost race (a bounded number of times)."""
    import time

    for attempt in range(ATTEMPTS):
        try:
            return list(con.execute(sql).fetchall())
        except Exception as exc:
            if attempt == ATTEMPTS - 1 or not lost_race(store, exc):
                raise
            time.sleep(min(0.05 * 2 ** attempt, 2.0))
    return []

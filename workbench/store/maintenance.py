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

from typing import TYPE_CHECKING

from workbench.errors import StoreError

if TYPE_CHECKING:
    from workbench.store.store import TraceStore


def maintain(store: TraceStore, keep: str = "1 day") -> list[str]:
    """Compact ``store``; returns what was done, a line each."""
    import duckdb

    from workbench.store.lake import ALIAS, LakeBackend

    done: list[str] = []
    store.flush()
    try:
        with store.backend.connection(write=True) as con:
            if isinstance(store.backend, LakeBackend):
                interval = keep.replace("'", "")
                con.execute(f"CALL {ALIAS}.set_option('expire_older_than', '{interval}')")
                con.execute(f"CALL {ALIAS}.set_option('delete_older_than', '{interval}')")
                flushed = con.execute(f"CALL ducklake_flush_inlined_data('{ALIAS}')").fetchall()
                done.append(f"flushed {sum(int(r[-1]) for r in flushed)} inlined rows into data files")
                merged = con.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}')").fetchall()
                done.append(f"merged {sum(int(r[2]) for r in merged if len(r) > 2)} small files")
                con.execute(f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => now() - INTERVAL '{interval}')")
                con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => now() - INTERVAL '{interval}')")
                done.append(f"expired snapshots and deleted unreferenced files older than {interval}")
            else:
                con.execute("CHECKPOINT")
                done.append(f"checkpointed {store.path}")
    except duckdb.Error as exc:
        raise StoreError(f"maintaining {store.path} failed: {str(exc).strip().splitlines()[0]}") from None
    return done

"""Deleting runs from a trace store: all at once, for good.

A delete is one transaction: the runs' rows go from every table and their ids are written to
``wb_deleted`` (a tombstone). Loading keeps to the tombstones (store/ingest.py): a record of a
deleted run that reaches the database later — a journal of a process that died before it was
loaded, a machine that comes back after an outage — is dropped, so nothing brings a deleted run
back, and a killed delete leaves all of it or none. The ids of deleted runs are not reused
(store/claims.py refuses them), except by importing an exported copy of the run.

Refused, with a one-line reason: a run that a live process is recording right now, a run
that has forks or continuations unless they go too (their history is shared with it), and a
subgraph's run on its own (it goes with the run it belongs to, which deletes its subgraph runs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from workbench.errors import RunNotFoundError, RunStateError
from workbench.store.backend import Backend
from workbench.store.ingest import rollback
from workbench.store.tables import INSERTS

# A fork or continuation chain is at most this deep (runtime.forking.MAX_FORK_DEPTH).
_MAX_DEPTH = 1000


class Deletion:
    """The deleting half of a trace store (mixed into TraceStore)."""

    backend: Backend
    owner: str

    def flush(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def load_orphans(self, con: Any, journals: list[str]) -> None:
        raise NotImplementedError

    def owner_alive(self, con: Any, owner: str, grace: float = 0.0) -> bool:
        raise NotImplementedError

    def delete_runs(self, run_ids: Sequence[str], *, with_descendants: bool = False) -> list[str]:
        """Delete runs from the store, for good; returns the ids deleted (the named runs first).

        ``with_descendants``: also delete every fork and continuation of them (and theirs);
        without it, a run that has any is refused (RunStateError), as is a run being recorded
        right now by a live process, and a subgraph's run (``ROOT/3.0.0``: delete its root, whose
        subgraph runs go with it). Nothing is deleted unless everything can be.
        """
        import duckdb

        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return []
        self.flush()
        with self.backend.connection(write=True) as con:
            # What dead processes left first: their records of these runs are deleted with them.
            self.load_orphans(con, self.backend.spool.orphans())
            for attempt in range(50):
                con.execute("BEGIN TRANSACTION")
                try:
                    doomed = self._delete_in(con, wanted, with_descendants)
                    con.execute("COMMIT")
                    break
                except duckdb.TransactionException as exc:
                    rollback(con)
                    # A shared store reports a lost race at commit: look again.
                    if not self.backend.is_conflict(exc) or attempt == 49:
                        raise
                    time.sleep(min(0.01 * 1.5 ** attempt, 0.5))
                except BaseException:
                    rollback(con)
                    raise
        self.backend.spool.bump()
        return doomed

    def _delete_in(self, con: Any, wanted: list[str], with_descendants: bool) -> list[str]:
        roots = dict(con.execute("SELECT run_id, CASE WHEN caller_run_id IS NOT NULL THEN root_run_id END "
                                 "FROM wb_runs WHERE list_contains(?, run_id)", [wanted]).fetchall())
        found = set(roots)
        missing = [r for r in wanted if r not in found]
        if missing:
            raise RunNotFoundError(f"no run {missing[0]!r} in {self.backend.name} (see 'workbench runs')")
        # A subgraph's run is part of its root's history (the root's show and replay read it):
        # it goes with its root, never alone.
        for run_id in wanted:
            if roots[run_id] is not None:
                raise RunStateError(f"run {run_id} is a subgraph run of run {roots[run_id]}: delete {roots[run_id]} "
                                    "(with its subgraph runs) instead")
        rows = con.execute(
            f"""
            WITH RECURSIVE d(run_id, depth) AS (
                SELECT run_id, 0 FROM wb_runs WHERE list_contains(?, run_id)
                UNION ALL
                SELECT r.run_id, d.depth + 1 FROM wb_runs r JOIN d ON r.parent_run_id = d.run_id
                WHERE d.depth < {_MAX_DEPTH}
            )
            SELECT d.run_id, min(d.depth), any_value(r.status), any_value(r.owner), any_value(r.relation),
                   any_value(r.parent_run_id)
            FROM d JOIN wb_runs r USING (run_id) GROUP BY d.run_id ORDER BY min(d.depth), d.run_id
            """,
            [wanted],
        ).fetchall()
        extra = [r for r in rows if r[0] not in found]
        if extra and not with_descendants:
            first = extra[0]
            kind = "continuation" if first[4] == "continuation" else "fork"
            more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            raise RunStateError(
                f"run {first[5]} has a {kind} ({first[0]}{more}) that shares its history; delete them too "
                "with --with-descendants (Python: with_descendants=True), or delete those first"
            )
        for run_id, _, status, owner, _, _ in rows:
            if status == "running" and owner is not None and (owner == self.owner or self.owner_alive(con, owner)):
                raise RunStateError(
                    f"run {run_id} is being recorded right now by "
                    f"{self.backend.who_records(owner)}; stop it (or wait for it to end), then delete it"
                )
        doomed = [*wanted, *[r[0] for r in extra]]
        # The runs of their subgraphs (child runs, any depth) go with them.
        children = [r[0] for r in con.execute(
            "SELECT run_id FROM wb_runs WHERE list_contains(?, root_run_id) AND NOT list_contains(?, run_id)",
            [doomed, doomed]).fetchall()]
        gone = doomed + children
        con.execute("INSERT INTO wb_deleted SELECT unnest(?::VARCHAR[]), make_timestamp(?::BIGINT)",
                    [gone, time.time_ns() // 1000])
        for table in sorted({table for table, _ in INSERTS.values()}):
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [gone])
        return doomed

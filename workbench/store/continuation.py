"""Starting a conversation's next turn: the new run and what happens to the old one, at once.

A continuation is a new run whose history is its parent's up to the parent's last committed
step (the parent's ``state_at`` there, merged with the new input). Starting one is a single
transaction, so it happens exactly once and whole:

* the parent must still be where the caller read it (same status, same last committed step):
  a process that resumed it, answered it or continued it first wins, the other gets
  RunStateError;
* the new run's row, its input changes, its first plan and a ``continued`` event are inserted;
* a parent that had not completed (failed, paused, waiting, or interrupted by a crash) is
  *superseded*: its status becomes ``superseded``, its open interrupts — those asked inside its
  subgraphs too — are closed unanswered (``resumed_at`` set, ``response`` NULL), and a
  ``superseded`` event names the new run and the step whose pending work was discarded. The
  subgraph runs that step started and that had not completed are its pending work too: each
  is superseded the same way, with an event of its own. It can no longer be resumed; it can
  still be read, replayed, forked and exported.
"""

from __future__ import annotations

import time
from typing import Any

from workbench import codec
from workbench.errors import RunNotFoundError, RunStateError
from workbench.store.backend import Backend
from workbench.store.ingest import apply_records, rollback


class Continuations:
    """The conversation half of a trace store (mixed into TraceStore)."""

    backend: Backend
    owner: str

    def flush(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def hold_journal(self) -> None:
        raise NotImplementedError

    def load_orphans(self, con: Any, journals: list[str]) -> None:
        raise NotImplementedError

    def owner_alive(self, con: Any, owner: str, grace: float = 0.0) -> bool:
        raise NotImplementedError

    @property
    def journal_id(self) -> str:
        raise NotImplementedError

    def begin_continuation(self, run_row: dict[str, Any], records: list[tuple[str, dict[str, Any]]], *,
                           parent_status: str, superseded: dict[str, Any] | None) -> None:
        """Record the start of a continuation (``run_row`` names its parent and fork step) in one
        transaction, superseding the parent when ``superseded`` (the event's detail) is given.

        Raises RunStateError when the parent moved on since the caller read it (another process
        resumed or continued it), when a live process records it, or when the new run's id is
        taken; RunNotFoundError when the parent is gone.
        """
        import duckdb

        self.flush()
        self.hold_journal()  # others judge whether this process is alive by its journal's lock
        with self.backend.connection(write=True) as con:
            self.load_orphans(con, self.backend.spool.orphans())
            for attempt in range(50):
                con.execute("BEGIN TRANSACTION")
                try:
                    self._begin_in(con, run_row, records, parent_status, superseded)
                    con.execute("COMMIT")
                    break
                except duckdb.TransactionException as exc:
                    rollback(con)
                    if not self.backend.is_conflict(exc):
                        raise RunStateError(f"run {run_row['parent_run_id']} was just taken over by another "
                                            "process; see 'workbench show'") from None
                    time.sleep(min(0.01 * 1.5 ** attempt, 0.5))
                except duckdb.ConstraintException:
                    rollback(con)
                    raise RunStateError(f"run id {run_row['run_id']!r} is already in {self.backend.name}; "
                                        "choose another id") from None
                except BaseException:
                    rollback(con)
                    raise
        self.backend.spool.bump()

    def _begin_in(self, con: Any, run_row: dict[str, Any], records: list[tuple[str, dict[str, Any]]],
                  parent_status: str, superseded: dict[str, Any] | None) -> None:
        parent, new_id, at = run_row["parent_run_id"], run_row["run_id"], run_row["fork_step"]
        row = con.execute("SELECT status, owner FROM wb_runs WHERE run_id = ?", [parent]).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {parent!r} in {self.backend.name} (it was just deleted?)")
        status, owner = row
        if status == "running" and owner is not None and (owner == self.owner or self.owner_alive(con, owner)):
            raise RunStateError(f"run {parent} is being recorded right now by "
                                f"{self.backend.who_records(owner)}; wait for it to stop, then continue it")
        planned = con.execute("SELECT max(step) FROM wb_supersteps WHERE run_id = ?", [parent]).fetchone()
        if status != parent_status or planned is None or planned[0] is None or int(planned[0]) - 1 != at:
            raise RunStateError(f"run {parent} is {status} now (another process may have just resumed or continued "
                                "it); see 'workbench show' and try again")
        if con.execute("SELECT 1 FROM wb_runs WHERE run_id = ? UNION ALL SELECT 1 FROM wb_deleted WHERE run_id = ?",
                       [new_id, new_id]).fetchone():
            raise RunStateError(f"run id {new_id!r} is already used in {self.backend.name} (by a run, or a deleted "
                                "one); choose another id")
        apply_records(con, [("run", run_row), *records], self.owner)
        # The new run is this process's: on a shared store, a sign of life in the same commit
        # (other machines judge it by heartbeat), as a claim gives one.
        self.backend.note_alive(con, self.journal_id)
        if superseded is None:
            return
        error = f"superseded: continued with new input by run {new_id}"
        if superseded.get("discarded_step") is not None:
            error += f"; the pending work of step {superseded['discarded_step']} was discarded"
        now = time.time_ns() // 1000
        _mark_superseded(con, parent, error, now)
        self._supersede_subgraph_runs(con, parent, new_id, at + 1, now)
        # Every question still open under the run, its subgraph runs' included (the interrupts
        # of a child run are rows of that run, which names the parent as its root).
        con.execute("UPDATE wb_interrupts SET resumed_at = make_timestamp(?::BIGINT), closed = true "
                    "WHERE (run_id = ? OR run_id IN (SELECT run_id FROM wb_runs WHERE root_run_id = ?)) "
                    "AND resumed_at IS NULL", [now, parent, parent])
        apply_records(con, [("event", {
            "run_id": parent, "step": at + 1, "kind": "superseded", "node": None,
            "detail": codec.dumps(superseded), "created_at": now,
        })], None)

    def _supersede_subgraph_runs(self, con: Any, root: str, new_id: str, step: int, now: int) -> None:
        """Supersede the subgraph runs (any depth) that the discarded ``step`` of ``root`` started
        and that had not completed: they are its pending work too. Each gets the status, error
        and ``superseded`` event its root gets, the event saying how it stood (what a replay of
        the root reproduces it as). Its open interrupts are closed by the caller."""
        # Its id says which step of the root started it (ROOT/STEP.TASK.N/...).
        rows = con.execute(
            "SELECT r.run_id, r.status, p.step, p.tasks, "
            "(SELECT count(*) FROM wb_interrupts i WHERE i.run_id = r.run_id AND i.resumed_at IS NULL) "
            "FROM wb_runs r LEFT JOIN (SELECT run_id, max(step) AS step, json_array_length(arg_max(tasks, step)) "
            "AS tasks FROM wb_supersteps WHERE starts_with(run_id, ?) GROUP BY run_id) p USING (run_id) "
            "WHERE r.root_run_id = ? AND starts_with(r.run_id, ?) AND r.status NOT IN ('completed', 'superseded') "
            "ORDER BY r.run_id",
            [f"{root}/", root, f"{root}/{step}."]).fetchall()
        for run_id, status, planned, tasks, open_count in rows:
            # Its last planned step, unless that is the empty plan after its last step.
            discarded = int(planned) if tasks else None
            error = f"superseded: run {root} was continued with new input by run {new_id}"
            if discarded is not None:
                error += f"; the pending work of step {discarded} was discarded"
            _mark_superseded(con, run_id, error, now)
            apply_records(con, [("event", {
                "run_id": run_id, "step": discarded if discarded is not None else planned, "kind": "superseded",
                "node": None, "created_at": now,
                "detail": codec.dumps({"by": new_id, "from_status": status, "discarded_step": discarded,
                                       "open_interrupts": int(open_count)}),
            })], None)


def _mark_superseded(con: Any, run_id: str, error: str, now: int) -> None:
    """Stop a run as superseded (a failed one keeps its failure text, followed by ``error``)."""
    con.execute("UPDATE wb_runs SET status = 'superseded', owner = NULL, "
                "ended_at = coalesce(ended_at, make_timestamp(?::BIGINT)), "
                "error = CASE WHEN status = 'failed' THEN error || ' (' || ? || ')' ELSE ? END "
                "WHERE run_id = ?", [now, error, error, run_id])

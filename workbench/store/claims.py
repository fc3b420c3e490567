"""Claims: taking a run over, exactly once across processes (and machines, on a shared store).

A claim is a transaction on the database itself: of two processes resuming (or answering) the
same run at once, one commits and the other sees the run already taken — a real claim, not a
timing accident. A run is claimable when it is stopped (waiting, paused, failed) or when the
process recording it is gone; a caller-chosen run id is reserved the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from workbench.errors import RunNotFoundError, RunStateError
from workbench.store.backend import Backend
from workbench.store.database import classify, explain_open_error
from workbench.store.ingest import apply_records, rollback
from workbench.store.tables import KEYS


class Claims:
    """The claiming half of a trace store (mixed into TraceStore)."""

    backend: Backend
    owner: str

    def flush(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def load_orphans(self, con: Any, journals: list[str]) -> None:
        raise NotImplementedError

    def hold_journal(self) -> None:
        raise NotImplementedError

    @property
    def journal_id(self) -> str:
        raise NotImplementedError

    def claim(self, run_id: str, *, allowed: Sequence[str], answer: dict[str, Any] | None = None,
              config: str | None = None, answers: Sequence[dict[str, Any]] = ()) -> None:
        """Take a run over for this process, exactly once across processes.

        In one transaction: the run must be in one of the ``allowed`` statuses (a ``running``
        run only when the process recording it is gone), each of ``answers`` (keys of an
        interrupt plus ``response``, ``resumed_at`` and ``closed``; ``answer`` is one more) must
        still be open; then the run becomes ``running`` with this process as its owner. Raises
        RunStateError when another process was first.
        """
        import duckdb

        answers = [*answers, *([answer] if answer is not None else [])]

        self.flush()
        self.hold_journal()  # others judge whether this process is alive by its journal's lock
        with self.backend.connection(write=True) as con:
            # What dead processes left first (a run they were recording is claimable, from the
            # state its journal holds) — including one that died a moment ago.
            for _ in range(3):
                self.load_orphans(con, self.backend.spool.orphans())
                row = con.execute("SELECT status, owner FROM wb_runs WHERE run_id = ?", [run_id]).fetchone()
                owner = row[1] if row else None
                if not (row and row[0] == "running" and owner and owner != self.owner):
                    break
                if self.owner_alive(con, owner, grace=1.0):
                    raise RunStateError(
                        f"run {run_id} is being recorded right now by "
                        f"{self.backend.who_records(owner)}; wait for it to stop, then try again"
                    )
            for attempt in range(50):
                con.execute("BEGIN TRANSACTION")
                try:
                    self._claim_in(con, run_id, allowed, answers, config)
                    con.execute("COMMIT")
                    break
                except duckdb.TransactionException as exc:
                    rollback(con)
                    # A shared store reports a lost race at commit: look again (the rerun then
                    # sees who won); a local file reports a write-write conflict.
                    if classify(exc) in ("full", "readonly", "corrupt", "invalidated"):
                        # The commit failed for the file's sake (a full disk), not for a race.
                        raise explain_open_error(self.backend.name, exc) from None
                    if not self.backend.is_conflict(exc):
                        raise RunStateError(f"run {run_id} was just claimed by another process") from None
                    time.sleep(min(0.01 * 1.5 ** attempt, 0.5))
                except BaseException:
                    rollback(con)
                    raise
        self.backend.spool.bump()

    def _claim_in(self, con: Any, run_id: str, allowed: Sequence[str], answers: Sequence[dict[str, Any]],
                  config: str | None) -> None:
        row = con.execute("SELECT status, owner FROM wb_runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.backend.name} (see 'workbench runs')")
        status, owner = row
        if status == "running" and owner is not None and owner != self.owner and self.owner_alive(con, owner):
            raise RunStateError(f"run {run_id} is being recorded right now by "
                                f"{self.backend.who_records(owner)}; wait for it to stop, then try again")
        if status not in allowed:
            raise RunStateError(f"run {run_id} is {status} now (another process may have just continued it); "
                                "see 'workbench show'")
        keys = KEYS["interrupt"]
        where = " AND ".join(f"{k} = ?" for k in keys)
        for answer in answers:
            open_row = con.execute(f"SELECT resumed_at FROM wb_interrupts WHERE {where}",
                                   [answer[k] for k in keys]).fetchone()
            if open_row is None or open_row[0] is not None:
                raise RunStateError(f"the question of run {run_id} at step {answer['step']} was already answered "
                                    "(by another process?); see 'workbench show'")
            con.execute(f"UPDATE wb_interrupts SET response = ?, resumed_at = make_timestamp(?::BIGINT), "
                        f"closed = ? WHERE {where}",
                        [answer["response"], answer["resumed_at"], bool(answer.get("closed")),
                         *[answer[k] for k in keys]])
        # On a shared store other machines judge this process by its heartbeat: give it one in
        # the claim itself, so that it is never taken for dead before its first batch lands.
        self.backend.note_alive(con, self.journal_id)
        sets = "status = 'running', owner = ?, error = NULL" + (", config = ?" if config is not None else "")
        params: list[Any] = [self.owner, *([config] if config is not None else []), run_id]
        con.execute(f"UPDATE wb_runs SET {sets} WHERE run_id = ?", params)

    def reserve_run(self, row: dict[str, Any]) -> None:
        """Insert a new run's row at once (for a run id chosen by the caller): a clear error if
        the id is taken, instead of a clash when the journal is loaded."""
        import duckdb

        self.flush()
        self.hold_journal()
        taken = RunStateError(f"run id {row['run_id']!r} is already in {self.backend.name}; choose another id, "
                              "resume that run, continue it ('--continue'), or delete it ('workbench rm')")
        with self.backend.connection(write=True) as con:
            for attempt in range(50):
                con.execute("BEGIN TRANSACTION")
                try:
                    if con.execute("SELECT 1 FROM wb_runs WHERE run_id = ?", [row["run_id"]]).fetchone():
                        raise taken
                    if con.execute("SELECT 1 FROM wb_deleted WHERE run_id = ?", [row["run_id"]]).fetchone():
                        # A late record of the deleted run would be taken for this one's.
                        raise RunStateError(f"run id {row['run_id']!r} belonged to a run deleted from "
                                            f"{self.backend.name}; ids of deleted runs are not reused, choose "
                                            "another id")
                    apply_records(con, [("run", row)], self.owner)
                    self.backend.note_alive(con, self.journal_id)
                    con.execute("COMMIT")
                    break
                except duckdb.ConstraintException:
                    rollback(con)
                    raise taken from None
                except duckdb.TransactionException as exc:
                    rollback(con)
                    if not self.backend.is_conflict(exc):
                        raise
                    time.sleep(min(0.01 * 1.5 ** attempt, 0.5))
                except BaseException:
                    rollback(con)
                    raise
        self.backend.spool.bump()

    def owner_alive(self, con: Any, owner: str, grace: float = 0.0) -> bool:
        """Whether the process recording a run is alive; a local process that was just killed
        gets ``grace`` seconds to be gone (its journal lock goes when the kernel is done)."""
        if not self.backend.judged_by_lock(owner):
            return self.backend.owner_alive(con, owner)
        deadline = time.monotonic() + grace
        while self.backend.spool.is_alive(owner):
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.02)
        return False

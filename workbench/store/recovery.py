"""Loading frames, and what dead processes left behind.

* :meth:`Recovery.load_frames` loads a batch in one transaction; frames the database refuses
  (a value it cannot take, a duplicate key) are set aside under the spool's ``damaged/`` with
  their run marked failed, instead of blocking every later load.
* :meth:`Recovery.sweep` loads the journals of processes that died, sets aside a damaged tail,
  and marks their unfinished runs interrupted (resumable from any process).
* A journal written by workbench before schema 2 (``<db>.journal``) is loaded once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from workbench.errors import StoreError
from workbench.store.backend import Backend
from workbench.store.database import classify, first_line
from workbench.store.ingest import apply_frames, apply_records, rollback
from workbench.store.journal import SUFFIX, Frame, encode_frame, lock_for_loading, read_frames
from workbench.store.spool import host_name, journal_owner, owner_host, owner_pid

log = logging.getLogger("workbench.store")

# Frames loaded per transaction when recovering a dead process's journal.
_RECOVERY_CHUNK = 2000

_ORPHAN_LOADING = threading.RLock()


def transient(exc: BaseException) -> bool:
    """An error that retrying later may cure (file busy, disk full, a lost race, an outage)."""
    import duckdb

    if isinstance(exc, (StoreError, OSError)):
        return True
    if isinstance(exc, (duckdb.IOException, duckdb.TransactionException, duckdb.OutOfMemoryException,
                        duckdb.FatalException, duckdb.InterruptException)):
        return True
    return classify(exc) in ("locked", "full", "invalidated", "readonly")


def mark_interrupted(con: Any, owner: str) -> None:
    """Mark the runs ``owner`` was recording and left unfinished as interrupted (resumable by any
    process): its process died, or closed its store while a run was still going (Ctrl-C, quitting
    the workbench during a run). Without this a run nobody records would show ``running`` forever."""
    message = (f"interrupted: the process that recorded it (pid {owner_pid(owner)} on {owner_host(owner)}) "
               "stopped before the run ended; continue it with 'workbench resume'")
    # Looked for first: on a shared store (DuckLake) even an update of no row is a new snapshot.
    if con.execute("SELECT count(*) FROM wb_runs WHERE owner = ? AND status = 'running'", [owner]).fetchone()[0]:
        con.execute("UPDATE wb_runs SET owner = NULL, error = ? WHERE owner = ? AND status = 'running'",
                    [message, owner])


class Recovery:
    """The loading half of a trace store (mixed into TraceStore)."""

    backend: Backend
    owner: str
    writable: bool
    _cond: threading.Condition
    _rejected: dict[str, str]

    @property
    def name(self) -> str:
        return self.backend.name

    def note_unloaded(self) -> None:
        """On a store this process cannot write: say so when dead processes' journals wait in its
        spool (nothing here can load them, so the runs they recorded show as they were last
        loaded — further along in truth, or interrupted rather than running)."""
        try:
            orphans = self.backend.spool.orphans()
        except OSError:
            return
        if orphans:
            log.warning("trace store %s is read-only here, and its spool holds %d journal(s) of processes that "
                        "died, not loaded: the runs they recorded may be further along than shown (open the store "
                        "where it can be written, e.g. 'workbench doctor', to load them)", self.name, len(orphans))

    def sweep(self) -> int:
        """Load the journals of processes that died; returns how many were found.

        Cheap when there are none (a directory listing). The workbench calls this now and then,
        so that a run whose process was killed shows as interrupted without reopening the store.
        """
        if not self.writable:
            return 0
        orphans = self.backend.spool.orphans()
        if not orphans:
            return 0
        import duckdb

        try:
            with self.backend.connection(write=True) as con:
                self.load_orphans(con, orphans)
        except (duckdb.Error, StoreError) as exc:
            if classify(exc) != "full":
                raise
            # The journal stays where it is (loaded up to its last committed frame), for the next
            # process that has the room: nothing is lost, but nothing can be shown whole either.
            raise StoreError(f"trace store {self.name}: no space left on the device to load what a stopped "
                             "process left in its journal (kept, nothing is lost); free some space and run "
                             "the command again") from None
        self.backend.spool.bump()
        return len(orphans)

    def load_orphans(self, con: Any, journals: list[str]) -> None:
        # One loader per process at a time (threads share the write instance, and each would
        # otherwise read the same load position); across processes the journal's lock decides.
        with _ORPHAN_LOADING:
            for journal in journals:
                self._load_orphan(con, journal)
            if self.backend.spool_is_unique:
                self._forget_vanished_journals(con)
        self.backend.spool.remove_stale_new_files()

    def _load_orphan(self, con: Any, journal: str) -> None:
        """Load a dead process's journal, set aside a damaged tail, mark its runs interrupted."""
        spool = self.backend.spool
        path = spool.journal_path(journal)
        fd = lock_for_loading(path)
        if fd is None:
            return  # its process is alive after all, or another process loaded it meanwhile
        try:
            self._load_locked_orphan(con, journal, path)
        finally:
            os.close(fd)

    def _load_locked_orphan(self, con: Any, journal: str, path: str) -> None:
        spool = self.backend.spool
        owner = journal_owner(journal)
        done, offset = self.backend.position(con, journal) or (0, 0)
        result = read_frames(path, offset)
        frames = result.frames
        if frames and frames[0].number != done + 1:  # the position does not match: read it all
            result = read_frames(path, 0)
            frames = [f for f in result.frames if f.number > done]
        for i in range(0, len(frames), _RECOVERY_CHUNK):
            self.load_frames(con, frames[i:i + _RECOVERY_CHUNK], journal, owner, orphan=True)
        if result.stop == "damaged":
            with open(path, "rb") as fh:
                fh.seek(result.end)
                kept = spool.keep_damaged(journal + SUFFIX, fh.read())
            log.warning("journal %s is damaged after byte %d; the rest was set aside in %s (its runs can be "
                        "resumed from their last whole step)", path, result.end, kept)
        if not spool.is_alive(owner, besides=journal):
            self._retrying(con, lambda: mark_interrupted(con, owner))
        try:
            os.unlink(path)  # first the file, then its position: never a file without a position
        except FileNotFoundError:
            pass
        self._retrying(con, lambda: self.backend.drop_position(con, journal))

    def _forget_vanished_journals(self, con: Any) -> None:
        """Drop load positions of this spool's journals whose files are gone (a process killed
        between removing a loaded journal and dropping its position). Only where every process
        on this host shares this spool: a journal in another spool may still be loaded later,
        and its position is what keeps that load from repeating rows."""
        mine = f"{host_name()}-"
        for journal in self.backend.known_journals(con):
            if journal.startswith(mine) and journal_owner(journal) != self.owner \
                    and not os.path.exists(self.backend.spool.journal_path(journal)):
                self._retrying(con, lambda j=journal: self.backend.drop_position(con, j))

    def _retrying(self, con: Any, work: Any, attempts: int = 20) -> None:
        """Run a one-statement change in its own transaction, again when it lost a race."""
        import time

        for attempt in range(attempts):
            con.execute("BEGIN TRANSACTION")
            try:
                work()
                con.execute("COMMIT")
                return
            except Exception as exc:
                rollback(con)
                if not self.backend.is_conflict(exc) or attempt == attempts - 1:
                    raise
                time.sleep(min(0.02 * 2 ** attempt, 1.0))

    def load_frames(self, con: Any, frames: list[Frame], journal: str, owner: str, *, orphan: bool = False) -> None:
        """Load frames in one transaction; when the database refuses some, set those aside.

        A refused frame is saved under the spool's ``damaged/`` and skipped, with its run marked
        failed; the rest of that run's frames are set aside too (they build on it). Frames of a
        run that another process has taken over meanwhile (a shared store, after an outage) are
        set aside without failing it. Errors a retry may cure are raised instead.
        """
        if not frames:
            return
        taken = self._taken_over(con, frames, owner) if orphan or not self.backend.enforces_keys else set()
        if not taken:
            try:
                self._apply(con, frames, journal, owner)
                return
            except Exception as exc:
                if transient(exc):
                    raise
        refused: dict[str, str] = {run: f"run {run} was taken over by another process while this one could not "
                                        "record it" for run in taken}
        for frame in frames:
            runs = {str(rec.get("run_id")) for _, rec in frame.records if rec.get("run_id")}
            blocked = [r for r in runs if r in refused]
            try:
                if blocked:
                    raise StoreError(refused[blocked[0]] if blocked[0] in taken
                                     else f"an earlier record of run {blocked[0]} was set aside")
                self._apply(con, [frame], journal, owner)
                continue
            except Exception as exc:
                if transient(exc) and not isinstance(exc, StoreError):
                    raise
                reason = first_line(exc)
            self._set_aside(con, frame, journal, owner, runs, reason, refused, fail=not (set(blocked) & taken))
        if owner == self.owner:
            with self._cond:
                self._rejected.update(refused)

    def _apply(self, con: Any, frames: list[Frame], journal: str, owner: str) -> None:
        """Apply frames in one transaction, again when the commit lost a race (a shared store)."""
        import time

        for attempt in range(50):
            try:
                apply_frames(con, frames, journal, owner, self.backend.set_position, self.backend.position)
                return
            except Exception as exc:
                if not self.backend.is_conflict(exc) or attempt == 49:
                    raise
                time.sleep(min(0.01 * 1.5 ** attempt, 1.0))

    def _taken_over(self, con: Any, frames: list[Frame], owner: str) -> set[str]:
        """Runs in ``frames`` that are recorded by another process now."""
        runs = sorted({str(rec["run_id"]) for f in frames for kind, rec in f.records
                       if rec.get("run_id") and kind != "run"})
        if not runs:
            return set()
        rows = con.execute("SELECT run_id, owner, status FROM wb_runs WHERE list_contains(?, run_id)",
                           [runs]).fetchall()
        return {r for r, o, status in rows if o is not None and o != owner and status == "running"}

    def _set_aside(self, con: Any, frame: Frame, journal: str, owner: str, runs: set[str], reason: str,
                   refused: dict[str, str], *, fail: bool) -> None:
        kept = self.backend.spool.keep_damaged(f"{journal}-frame{frame.number}.json",
                                               encode_frame(frame.number, frame.records))
        log.warning("trace store %s refused frame %d of journal %s (%s); set aside in %s",
                    self.name, frame.number, journal, reason, kept)
        for run_id in runs:
            refused.setdefault(run_id, f"the trace store refused this run's records ({reason}); "
                                       f"they are kept in {kept}")

        def work() -> None:
            self.backend.set_position(con, journal, frame.number, frame.end)
            if fail:
                for run_id in runs:
                    # Only a run this journal recorded is failed: a duplicate id belongs to another.
                    con.execute("UPDATE wb_runs SET status = 'failed', owner = NULL, error = ? "
                                "WHERE run_id = ? AND (owner = ? OR owner IS NULL) AND status = 'running'",
                                [refused[run_id], run_id, owner])

        self._retrying(con, work)

    def recover_legacy(self, path: str) -> None:
        """Load a journal written by workbench before schema 2 (one JSON record per line)."""
        with self.backend.connection(write=True) as con:
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

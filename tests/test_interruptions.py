"""Signals, full disks and moved files: what a command says and leaves when it is stopped or
its store is not there (found by a durability pass: hangs, tracebacks, wrong advice)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import run_cli

from workbench.errors import StoreError
from workbench.store import TraceStore


def test_a_ctrl_c_while_a_cursor_closes_still_releases_the_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt in the cursor's close skipped the release: the use count never fell
    back, and the store's close waited for it for ever (``workbench diff`` hung after Ctrl-C)."""
    from workbench.store.database import LocalDatabase

    db = LocalDatabase(str(tmp_path / "t.duckdb"), None, writable=True, busy_timeout=5)

    class Cursor:
        def close(self) -> None:
            raise KeyboardInterrupt

    class Connection:
        def cursor(self) -> Cursor:
            return Cursor()

    def acquire(self: Any, want: str, timeout: float) -> Any:
        with self._cond:
            self._users += 1
        return Connection()

    monkeypatch.setattr(LocalDatabase, "_acquire", acquire)
    monkeypatch.setattr(LocalDatabase, "_close_instance", lambda self: None)
    with pytest.raises(KeyboardInterrupt), db.connection():
        pass
    assert db._users == 0
    db.close_now()  # returns: nobody holds the file


def test_ctrl_c_during_a_duckdb_query_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB turns Ctrl-C during a query into its own exception: it was an internal error,
    exit 1, instead of ``workbench: interrupted``, exit 130."""
    from workbench.cli import parser

    for exc in (RuntimeError("Query interrupted"), duckdb.InterruptException("INTERRUPT Error: Interrupted!")):
        def interrupted(args: Any, exc: BaseException = exc) -> int:
            raise exc

        monkeypatch.setattr(parser, "cmd_runs", interrupted)
        res = run_cli("runs", "--db", str(tmp_path / "t.duckdb"), cwd=tmp_path)
        assert (res.returncode, res.stderr) == (130, "workbench: interrupted\n"), res.stderr


def test_a_signal_for_a_command_that_just_ended_is_no_error() -> None:
    """The crash guard passes SIGTERM/SIGINT on to its child: one arriving as the child exits
    raised ProcessLookupError in the handler, a traceback and exit 1 after a finished command."""
    from workbench.guard import _forward

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _forward(child.pid, signal.SIGTERM)  # gone: no error


def test_a_finished_run_is_no_longer_the_one_ctrl_c_interrupts() -> None:
    """Ctrl-C while the store closed after a completed run said the run "is marked interrupted;
    continue it with: workbench resume" — and resume then said it had completed."""
    from workbench.cli.common import RECORDING, run_tracker
    from workbench.context import Event

    RECORDING.clear()
    listen = run_tracker()
    listen(Event("run_started", "R1", 0, None, {}))
    assert RECORDING == ["R1"]
    listen(Event("run_finished", "R1/1.0.0", 2, None, {"status": "completed"}))  # a subgraph's: still R1
    assert RECORDING == ["R1"]
    listen(Event("run_finished", "R1", 3, None, {"status": "completed"}))
    assert RECORDING == []


def test_a_full_disk_while_answering_is_named_not_taken_for_a_race(store: TraceStore,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim turned every failed commit into "just claimed by another process"; a disk
    with no room left is said as such."""
    from workbench.store.claims import Claims

    def full(*args: Any) -> None:
        raise duckdb.TransactionException("TransactionContext Error: Failed to commit: Could not write file "
                                          "\"t.duckdb.wal\": No space left on device")

    store.record_many([("run", {"run_id": "R1", "graph": "g", "status": "waiting", "input": "{}",
                                "config": "{}"})])
    store.flush()
    monkeypatch.setattr(Claims, "_claim_in", full)
    with pytest.raises(StoreError, match="no space left on the device; free some space and retry"):
        store.claim("R1", allowed=["waiting"])


def test_a_full_disk_at_a_runs_first_frame_says_nothing_was_recorded(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's error told the user to resume a run that was never recorded."""
    from workbench.store import journal as journal_module

    journal = journal_module.Journal(str(tmp_path), "j1")

    def no_room(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal_module.os, "write", no_room)
    with pytest.raises(StoreError, match="nothing of the run was recorded — make room, then start it again"):
        journal.append([("run", {"run_id": "R1"}), ("plan", {"run_id": "R1", "step": 1})])
    with pytest.raises(StoreError, match=r"every step recorded before this one is kept .* 'workbench resume'"):
        journal.append([("task", {"run_id": "R1", "step": 1})])
    monkeypatch.undo()
    journal.close(remove=True)


def test_reading_a_path_whose_file_was_moved_creates_no_store(tmp_path: Path) -> None:
    """A spool left beside a moved (or deleted) store file made ``runs`` and ``sql`` create a new
    empty file there — and load the spool's journals into it — though commands that read never
    create a store."""
    graph = Path(__file__).parent / "graphs" / "simple.py"
    db = tmp_path / "t.duckdb"
    assert run_cli("run", str(graph), "--db", str(db), cwd=tmp_path).returncode == 0
    db.rename(tmp_path / "moved.duckdb")
    assert (tmp_path / "t.duckdb.spool").is_dir()
    for argv in (["runs"], ["sql", "SELECT count(*) FROM runs"]):
        res = run_cli(*argv, "--db", str(db), cwd=tmp_path)
        assert res.returncode == 0 and "note: no trace store at" in res.stderr, res.stderr
        assert not db.exists()
    shown = run_cli("show", "last", "--db", str(db), cwd=tmp_path)
    assert shown.returncode == 2 and "no trace store at" in shown.stderr and not db.exists()
    # A journal left there (its process died) is named, with what to do.
    journals = tmp_path / "t.duckdb.spool" / "journals"
    (journals / "dead.wbj").write_bytes(b"")
    res = run_cli("runs", "--db", str(db), cwd=tmp_path)
    assert "holds 1 journal(s) of records not in any store (was the file moved?" in res.stderr
    assert not db.exists()


def test_what_a_killed_export_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """An export killed while writing (SIGTERM, SIGKILL) left ``out.jsonl.XXXX.tmp`` behind, one
    more per killed export. The next export to the same file removes those of dead processes
    (and leaves a running one's alone)."""
    graph = Path(__file__).parent / "graphs" / "simple.py"
    db = str(tmp_path / "t.duckdb")
    assert run_cli("run", str(graph), "--db", db, cwd=tmp_path).returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"out.jsonl.{dead.pid}.abc123.tmp"
    left.write_text("half an export")
    running = tmp_path / f"out.jsonl.{os.getppid()}.def456.tmp"  # a live process's: kept
    running.write_text("being written")
    other = tmp_path / "other.jsonl.1.x.tmp"
    other.write_text("another target's")
    assert run_cli("export", "last", "--to", str(tmp_path / "out.jsonl"), "--db", db, cwd=tmp_path).returncode == 0
    assert not left.exists() and running.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob("out.jsonl*")) == ["out.jsonl", running.name]


def test_a_long_wait_for_the_store_is_said_while_it_lasts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A finished run waited up to 150 s, silently, while a query held the store. After a few
    seconds the wait is said at once (a warning marked ``now``, printed by the CLI as it
    happens), with where the records are safe and that Ctrl-C stops waiting."""
    from workbench.cli import _Warnings
    from workbench.store import store as store_module

    monkeypatch.setattr(store_module, "_TELL_WAIT_S", 0.0)
    with TraceStore(str(tmp_path / "t.duckdb")) as store:
        store.record_many([("run", {"run_id": "R1", "graph": "g", "status": "running", "input": "{}",
                                    "config": "{}"})])
        store.flush()
        store._appended += 1  # a record that is never loaded: the flush waits out its timeout
        caplog.clear()
        try:
            with caplog.at_level("WARNING", logger="workbench"), pytest.raises(StoreError, match="timed out"):
                store.flush(timeout=0.2)
        finally:
            store._appended -= 1
    [said] = [r for r in caplog.records if "waiting for trace store" in r.getMessage()]
    assert getattr(said, "now", False) and "Ctrl-C stops waiting" in said.getMessage()

    printed: list[str] = []
    monkeypatch.setattr("workbench.cli.error_line", printed.append)
    handler = _Warnings()
    handler.emit(said)
    assert printed and printed[0].startswith("workbench: warning: waiting for trace store") and handler.lines == []
    handler.immediate = False  # the workbench owns the terminal: not printed over its screen
    handler.emit(said)
    assert len(printed) == 1 and handler.lines == []


def test_a_read_only_store_with_a_dead_process_journal_says_what_it_cannot_show(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On a store this process cannot write (a read-only mount), a killed process's journal
    cannot be loaded: ``runs`` showed its run as ``running`` and a few steps short, without a
    hint. A warning now says the spool holds unloaded journals and how to load them."""
    db = str(tmp_path / "t.duckdb")
    code = ("import os, sys\n"
            "from workbench.store import TraceStore\n"
            "st = TraceStore(sys.argv[1])\n"
            "st.record_many([('run', {'run_id': 'R1', 'graph': 'g', 'status': 'running', 'input': '{}', "
            "'config': '{}'})])\n"
            "os._exit(0)\n")  # dies with its journal unloaded
    subprocess.run([sys.executable, "-c", code, db], check=True, timeout=120)
    from workbench.store import backend

    real = os.access
    monkeypatch.setattr(backend.os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    with caplog.at_level("WARNING", logger="workbench"), TraceStore(db) as store:
        assert not store.writable
    [said] = [r.getMessage() for r in caplog.records if "read-only here" in r.getMessage()]
    assert "spool holds 1 journal(s) of processes that died, not loaded" in said and "workbench doctor" in said

"""Races and failure windows inside one process's store (found by review, kept as regressions).

* two threads loading the same dead process's journal at once (the workbench's watcher sweeps
  while a worker resumes): loaded once, nothing set aside, the run not failed;
* an error after a batch committed makes the writer retry it: the retry loads nothing twice;
* a journal that cannot be rolled over (no space, no file handles) does not stop the writer,
  and a reader never waits for ever;
* a query's column names cannot break out of the Parquet export;
* a journal a killed process was still creating is removed by the next sweep.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import workbench.store.store as store_module
from workbench.sqlquery import export_parquet
from workbench.store import TraceStore
from workbench.store.backend import LocalBackend
from workbench.store.journal import SUFFIX, encode_frame
from workbench.store.spool import host_name
from workbench.store.store import now_us


def _run_row(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "graph": "g", "status": "running", "started_at": now_us(), "input": "{}",
            "config": "{}"}


def _step(run_id: str, step: int) -> list[tuple[str, dict[str, Any]]]:
    return [("change", {"run_id": run_id, "step": step, "key": "k", "op": "set", "value": json.dumps(step)}),
            ("plan", {"run_id": run_id, "step": step + 1, "tasks": "[]", "joins": "{}", "created_at": now_us()})]


def _counts(store: TraceStore, run_id: str) -> tuple[str, int, int]:
    status = store.query("SELECT status FROM wb_runs WHERE run_id = ?", [run_id])[0][0]
    changes = store.query("SELECT count(*) FROM wb_changes WHERE run_id = ?", [run_id])[0][0]
    return status, changes, len(os.listdir(store.spool.damaged))


@pytest.mark.parametrize("trial", range(3))
def test_two_threads_sweeping_one_orphan_load_it_once(tmp_path: Path, trial: int) -> None:
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        frames = [[("run", _run_row("R")), *_step("R", 0)]] + [_step("R", i) for i in range(1, 300)]
        orphan = os.path.join(store.spool.journals, f"{host_name()}-999999-deadbeef.1{SUFFIX}")
        with open(orphan, "wb") as fh:
            for number, records in enumerate(frames, 1):
                fh.write(encode_frame(number, records))
        errors: list[BaseException] = []

        def sweep() -> None:
            try:
                store.sweep()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert _counts(store, "R") == ("running", 300, 0)
        assert not os.path.exists(orphan)
    finally:
        store.close()


def test_a_batch_retried_after_its_commit_is_not_loaded_twice(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The journal rolls over after a small batch; dropping the old journal's position then fails
    # once, after the batch was committed.
    monkeypatch.setattr(store_module, "_JOURNAL_ROLL_BYTES", 1000)
    failures = {"left": 1}
    real_drop = LocalBackend.drop_position

    def drop_position(self: LocalBackend, con: Any, journal: str) -> None:
        if failures["left"] and journal.endswith(".1"):
            failures["left"] -= 1
            raise duckdb.IOException("IO Error: simulated failure after the commit")
        real_drop(self, con, journal)

    monkeypatch.setattr(LocalBackend, "drop_position", drop_position)
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        store.record_many([("run", _run_row("R")), *_step("R", 0)])
        for i in range(1, 12):
            store.record_many(_step("R", i))
            store.flush()
        assert failures["left"] == 0  # the failure happened
        assert _counts(store, "R") == ("running", 12, 0)
        store.record_many(_step("R", 12))  # the run goes on
        store.flush()
        assert _counts(store, "R")[1] == 13
    finally:
        store.close()


def test_a_journal_that_cannot_roll_over_does_not_stop_the_writer(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_JOURNAL_ROLL_BYTES", 1000)
    real = store_module.Journal

    class NoRoomForANewJournal(real):  # type: ignore[misc, valid-type]
        def __init__(self, directory: str, journal_id: str, fsync: bool = False) -> None:
            if not journal_id.endswith(".1"):
                raise OSError(errno.ENOSPC, "No space left on device")
            super().__init__(directory, journal_id, fsync)

    monkeypatch.setattr(store_module, "Journal", NoRoomForANewJournal)
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        store.record_many([("run", _run_row("R")), *_step("R", 0)])
        for i in range(1, 20):
            store.record_many(_step("R", i))
            store.flush(timeout=60)
        assert store._writer is not None and store._writer.is_alive()
        assert _counts(store, "R") == ("running", 20, 0)
    finally:
        store.close()


def test_a_reader_is_told_when_the_writer_thread_is_gone(tmp_path: Path) -> None:
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        store.record_many([("run", _run_row("R")), *_step("R", 0)])
        store.flush()
        # A writer that died of a bug: nothing loads what is recorded next.
        with store._cond:
            store._closed = True
            store._cond.notify_all()
        assert store._writer is not None
        store._writer.join(10)
        store._closed = False
        store.record_many(_step("R", 1))
        started = time.monotonic()
        with pytest.raises(Exception, match="writer thread stopped"):
            store.flush()
        assert time.monotonic() - started < 30
    finally:
        store._closed = False
        store.close()


def test_column_names_cannot_break_out_of_the_parquet_export(tmp_path: Path) -> None:
    target = tmp_path / "pwned.sh"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        writes = (f'a" FROM (SELECT 1 AS a) r; COPY (SELECT \'echo pwned\') TO \'{target}\' (HEADER false); '
                  'SELECT 1 AS "b')
        reads = f"a\" FROM read_csv('{secret}') r; SELECT 1 AS \"b"
        for name in (writes, reads):
            sql = 'SELECT 1 AS a, 2 AS "' + name.replace('"', '""') + '"'
            out = tmp_path / "out.parquet"
            export_parquet(store, sql, str(out))
            # The export holds exactly the query's two columns, under their odd names.
            check = duckdb.connect()
            cols = [d[0] for d in check.execute("SELECT * FROM read_parquet(?)", [str(out)]).description]
            assert cols == ["a", name]
            assert check.execute("SELECT * FROM read_parquet(?)", [str(out)]).fetchall() == [(1, 2)]
        assert not target.exists()
    finally:
        store.close()


def test_a_journal_left_half_created_is_removed_by_the_next_sweep(tmp_path: Path) -> None:
    store = TraceStore(str(tmp_path / "t.duckdb"))
    try:
        stray = Path(store.spool.journals) / f"{host_name()}-999999-deadbeef.1{SUFFIX}.new"
        stray.write_bytes(b"")
        old = time.time() - 3600
        os.utime(stray, (old, old))
        fresh = Path(store.spool.journals) / f"{host_name()}-999998-deadbeef.1{SUFFIX}.new"
        fresh.write_bytes(b"")  # could be in the middle of being made: left alone
        orphan = Path(store.spool.journals) / f"{host_name()}-999999-deadbeef.2{SUFFIX}"
        orphan.write_bytes(encode_frame(1, [("run", _run_row("R")), *_step("R", 0)]))
        store.sweep()
        assert not stray.exists()
        assert fresh.exists()
    finally:
        store.close()


def test_a_second_instance_of_an_open_file_in_the_same_process_is_hardened_not_refused(tmp_path: Path) -> None:
    """DuckDB gives a second connect to a file this process has open its cached instance, which
    the first connect already locked: the second open must succeed (it once failed with "Cannot
    change configuration option 'lock_configuration'") and still refuse to be unlocked."""
    from workbench.store.database import connect

    path = str(tmp_path / "t.duckdb")
    for read_only in (False, True):
        if read_only:
            connect(path, read_only=False).close()
        first = connect(path, read_only=read_only)
        second = connect(path, read_only=read_only)
        try:
            assert second.execute("SELECT 42").fetchone() == (42,)
            with pytest.raises(duckdb.Error, match="locked"):
                second.execute("SET enable_external_access = true")
            assert second.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
        finally:
            second.close()
            first.close()

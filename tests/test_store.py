"""Trace store robustness: schema versions, foreign databases, journal recovery after a crash.

Crashes are real: a subprocess records through the store and then SIGKILLs itself, without
closing anything. To make "the journal has rows DuckDB does not" deterministic, the subprocess
can hold back the background writer (it replaces the store's batch loader with one that blocks).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import cli_env, run_cli, workbench_cmd

from workbench.errors import StoreError
from workbench.loader import load_graph
from workbench.runtime import Runner
from workbench.store import TraceStore
from workbench.store.journal import decode_line

HERE = Path(__file__).resolve().parent
SIMPLE = str(HERE / "graphs" / "simple.py")
TIMEOUT = 60


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workbench_cmd(), *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


def _one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- crash helper

CRASHER = textwrap.dedent("""
    import json, os, signal, sys, threading
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    db, graph_file, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    store = TraceStore(db)
    graph = load_graph(graph_file)
    gate = threading.Event()  # never set: a held-back writer never reaches DuckDB

    def held_back(batch):
        gate.wait()

    out = []
    for action in plan:
        if action == "hold_writer":
            store.flush()
            store._load_own = held_back
        elif action == "flush":
            store.flush()
        else:
            r = Runner(graph, store).run(action)
            out.append({"run_id": r.run_id, "status": r.status, "state": r.state})
    print(json.dumps(out), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _crash(db: str, plan: list[Any], graph_file: str = SIMPLE) -> list[dict[str, Any]]:
    """Run ``plan`` in a subprocess that SIGKILLs itself at the end; return its runs."""
    res = subprocess.run([sys.executable, "-c", CRASHER, db, graph_file, json.dumps(plan)],
                         capture_output=True, text=True, env=cli_env(), timeout=TIMEOUT,
                         cwd=os.path.dirname(db))
    assert res.returncode == -9, res.stderr
    return json.loads(res.stdout)


def _counts(db: str) -> dict[str, int]:
    con = duckdb.connect(db, read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in ("wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_interrupts", "wb_events")}
    finally:
        con.close()


def _journals(db: str) -> list[Path]:
    return sorted(Path(db + ".spool", "journals").glob("*.wbj"))


def _journal_size(db: str) -> int:
    return sum(p.stat().st_size for p in _journals(db))


# --------------------------------------------------------------------------- journal recovery


def test_journal_rows_are_loaded_into_duckdb_after_a_crash(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    runs = _crash(db, ["hold_writer", {"name": "ada"}, {"name": "bob", "ask": True}])
    assert [r["status"] for r in runs] == ["completed", "waiting"]
    assert _journal_size(db) > 0
    assert _counts(db)["wb_runs"] == 0  # DuckDB never saw them: only the journal has them

    with TraceStore(db) as store:
        done, waiting = (store.get_run(r["run_id"]) for r in runs)
        assert done["status"] == "completed"
        assert done["output"] == runs[0]["state"]
        assert [t["node"] for t in store.tasks(runs[0]["run_id"])] == ["greet", "ask", "finish"]
        assert store.state_at(runs[0]["run_id"], 3) == runs[0]["state"]
        assert waiting["status"] == "waiting"
        assert [i["payload"] for i in store.interrupts(runs[1]["run_id"])] == [{"question": "what is the answer?"}]
    assert _journal_size(db) == 0  # recovered and emptied

    # The recovered run continues from another process.
    res = _cli("resume", runs[1]["run_id"], "--graph", SIMPLE, "--input", '"42"', "--db", db, "--json",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "completed"
    assert out["state"]["answer"] == "42"
    assert out["state"]["log"] == ["hello bob", "asked", "done"]


def test_reopening_after_recovery_is_idempotent(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    _crash(db, ["hold_writer", {"name": "a"}, {"name": "b"}])
    TraceStore(db).close()
    first = _counts(db)
    assert first["wb_runs"] == 2 and first["wb_tasks"] == 6
    for _ in range(2):
        TraceStore(db).close()
        assert _counts(db) == first


def test_crash_after_the_writer_caught_up_does_not_duplicate_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    runs = _crash(db, [{"name": "a"}, {"name": "b", "ask": True}, "flush"])
    assert _journal_size(db) > 0  # not emptied: the process never closed the store
    with TraceStore(db) as store:
        assert len(store.list_runs()) == 2
        for r in runs:
            rows = store.tasks(r["run_id"])
            keys = [(t["step"], t["task"], t["attempt"], t["status"]) for t in rows]
            assert len(keys) == len(set(keys)), keys
    counts = _counts(db)
    assert counts["wb_runs"] == 2 and counts["wb_tasks"] == 5 and counts["wb_interrupts"] == 1


def test_partly_written_journal_loads_only_the_missing_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    runs = _crash(db, [{"name": "in-duckdb"}, "hold_writer", {"name": "journal-only"}])
    before = _counts(db)
    assert before["wb_runs"] == 1 and before["wb_tasks"] == 3
    with TraceStore(db) as store:
        for r in runs:
            rec = store.get_run(r["run_id"])
            assert rec["status"] == "completed"
            assert rec["output"] == r["state"]
    after = _counts(db)
    assert after["wb_runs"] == 2 and after["wb_tasks"] == 6


@pytest.mark.parametrize("torn", [
    b'{"s":999999,"t":"run","run_id":"torn","graph":"x","status":"running"',
    b"\xff\xfe\x00garbage",
    b'{"s":999999,"t":"run","run_id":"torn","graph":"x","status":"running"}',  # whole JSON, no newline
])
def test_torn_final_journal_line_is_ignored(tmp_path: Path, torn: bytes) -> None:
    db = str(tmp_path / "t.duckdb")
    runs = _crash(db, ["hold_writer", {"name": "a"}])
    [journal] = _journals(db)
    with open(journal, "ab") as fh:
        fh.write(torn)
    with TraceStore(db) as store:
        ids = [r["run_id"] for r in store.list_runs()]
        assert ids == [runs[0]["run_id"]]
        assert store.get_run(ids[0])["status"] == "completed"
        # Recording goes on after the recovered rows.
        more = Runner(load_graph(SIMPLE), store).run({"name": "after"})
    with TraceStore(db) as store:
        assert {r["run_id"] for r in store.list_runs()} == {runs[0]["run_id"], more.run_id}
        assert store.get_run(more.run_id)["status"] == "completed"
    assert _counts(db)["wb_tasks"] == 6


def test_recorded_row_is_in_the_journal_when_record_returns(tmp_path: Path) -> None:
    """Durable at once: a row recorded and not yet flushed survives a kill."""
    db = str(tmp_path / "t.duckdb")
    runs = _crash(db, ["hold_writer", {"name": "x", "ask": True}])
    [journal] = _journals(db)
    lines = journal.read_bytes().splitlines()
    assert lines and all(decode_line(line) is not None for line in lines)
    with TraceStore(db) as store:
        assert store.get_run(runs[0]["run_id"])["status"] == "waiting"


# --------------------------------------------------------------------------- versions, foreign files


def _make_store(db: str) -> None:
    with TraceStore(db) as store:
        Runner(load_graph(SIMPLE), store).run({"name": "seed"})


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    _make_store(db)
    con = duckdb.connect(db)
    con.execute("UPDATE wb_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    digest = _sha(db)
    with pytest.raises(StoreError, match="99"):
        TraceStore(db)
    assert _sha(db) == digest
    res = _cli("runs", "--db", db, cwd=tmp_path)
    assert res.returncode == 2
    line = _one_clean_line(res.stderr)
    assert "99" in line and "newer" in line
    assert _sha(db) == digest


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE customers (id INTEGER, name VARCHAR)", "INSERT INTO customers VALUES (1, 'ada')"],
    # A user's own table that happens to be called like one of the views.
    ["CREATE TABLE runs (x INTEGER)", "INSERT INTO runs VALUES (42)"],
], ids=["foreign-table", "foreign-runs-table"])
def test_duckdb_file_that_is_not_a_trace_store_is_refused(tmp_path: Path, tables: list[str]) -> None:
    db = str(tmp_path / "other.duckdb")
    con = duckdb.connect(db)
    for sql in tables:
        con.execute(sql)
    con.close()
    digest = _sha(db)
    with pytest.raises(StoreError):
        TraceStore(db)
    res = _cli("runs", "--db", db, cwd=tmp_path)
    assert res.returncode == 2
    line = _one_clean_line(res.stderr)
    assert db in line
    assert _sha(db) == digest
    con = duckdb.connect(db, read_only=True)
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    rows = con.execute(tables[1].replace("INSERT INTO", "SELECT count(*) FROM").split(" VALUES")[0]).fetchone()
    con.close()
    assert "wb_meta" not in names
    assert rows == (1,)


def test_foreign_database_message_says_what_it_is(tmp_path: Path) -> None:
    db = str(tmp_path / "other.duckdb")
    con = duckdb.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a workbench trace store"):
        TraceStore(db)


def test_foreign_database_with_a_runs_table_message_says_what_it_is(tmp_path: Path) -> None:
    db = str(tmp_path / "other.duckdb")
    con = duckdb.connect(db)
    con.execute("CREATE TABLE runs (x INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a workbench trace store"):
        TraceStore(db)


def test_fresh_store_records_schema_version(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    TraceStore(db).close()
    con = duckdb.connect(db, read_only=True)
    version = con.execute("SELECT value FROM wb_meta WHERE key = 'schema_version'").fetchone()
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    assert version is not None and int(version[0]) >= 1
    assert {"runs", "steps", "llm_calls", "interrupts"} <= views


def test_another_process_reads_while_this_one_has_the_store_open(tmp_path: Path, store: TraceStore) -> None:
    """An open store does not lock others out: another process lists what this one recorded."""
    result = Runner(load_graph(SIMPLE), store).run({"name": "open"})
    store.flush()
    res = _cli("runs", "--db", store.path, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [r["run_id"] for r in json.loads(res.stdout)] == [result.run_id]


def test_reopen_is_stable_on_disk(tmp_path: Path) -> None:
    """Opening and closing a store without recording leaves the database file as it was."""
    db = str(tmp_path / "t.duckdb")
    _make_store(db)
    digest = _sha(db)
    for _ in range(2):
        with TraceStore(db) as st:
            assert len(st.list_runs()) == 1
    assert _sha(db) == digest


def test_opening_a_store_removes_old_batch_files_of_old_versions_once(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Workbench before schema 2 left ``$TMPDIR/workbench-<kind>-*.jsonl`` behind when killed:
    the first writable open of a process removes those over an hour old, and nothing else."""
    import tempfile

    import workbench.store.store as store_module

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(store_module, "_stale_swept", set())
    old = time.time() - 7200
    stale, fresh, other = tmp / "workbench-task-1.jsonl", tmp / "workbench-run-2.jsonl", tmp / "workbench-x-3.jsonl"
    for path in (stale, fresh, other):
        path.write_text("{}\n")
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    with TraceStore(str(tmp_path / "a.duckdb")):
        pass
    assert not stale.exists() and fresh.exists() and other.exists()
    os.utime(fresh, (old, old))
    with TraceStore(str(tmp_path / "b.duckdb")):
        pass
    assert fresh.exists()  # once per process: the next open does not list the directory again


def test_db_threads_setting_is_applied_and_a_bad_value_is_one_line(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import run_cli

    monkeypatch.setenv("WORKBENCH_DB_THREADS", "1")
    with TraceStore(str(tmp_path / "one.duckdb")) as st:
        assert st.query("SELECT current_setting('threads')") == [(1,)]
    monkeypatch.setenv("WORKBENCH_DB_THREADS", "many")
    with pytest.raises(StoreError, match="WORKBENCH_DB_THREADS must be a whole number"):
        TraceStore(str(tmp_path / "two.duckdb"))
    res = run_cli("runs", "--db", str(tmp_path / "one.duckdb"), cwd=tmp_path,
                  env=cli_env(WORKBENCH_DB_THREADS="0"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == ["workbench: error: WORKBENCH_DB_THREADS must be a whole number of "
                                               "threads, 1 or more (not '0')"]


def test_query_is_read_only_even_after_this_process_recorded(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``TraceStore.query`` is documented as a read: once this process had recorded (the open
    instance may then write), ``DELETE FROM wb_runs`` deleted the runs, leaving their tasks,
    and ``DROP VIEW steps`` broke ``workbench sql`` for good. Writes, and SQL the database
    refuses, are now an ``InputError``; the store is unchanged — refused by name first, as the
    SQL console refuses them, and by the database's read-only transaction without that check."""
    from workbench.errors import InputError
    from workbench.store import reads

    db = str(tmp_path / "t.duckdb")
    with TraceStore(db) as st:
        Runner(load_graph(f"{SIMPLE}:graph"), st).run({})
        before = st.query("SELECT (SELECT count(*) FROM wb_runs), (SELECT count(*) FROM wb_tasks)")
        writes = [("DELETE FROM wb_runs", None), ("DROP VIEW steps", None), ("CREATE TABLE x (a INT)", None),
                  ("UPDATE wb_runs SET status = 'failed'", None)]
        for sql, params in writes:
            for call in (st.query, st.query_dicts):
                with pytest.raises(InputError, match=r"^TraceStore.query is read-only: \w+ statements are refused"):
                    call(sql, params)
        for sql, params in [("SELEC 1", None), ("SELECT ?", [1, 2])]:
            for call in (st.query, st.query_dicts):
                with pytest.raises(InputError, match="SQL error"):
                    call(sql, params)
        monkeypatch.setattr(reads, "refuse_writes", lambda sql, where="": [])
        for sql, params in writes:
            for call in (st.query, st.query_dicts):
                with pytest.raises(InputError, match=r"SQL error: .*read-only"):
                    call(sql, params)
        assert st.query("SELECT (SELECT count(*) FROM wb_runs), (SELECT count(*) FROM wb_tasks)") == before
        assert st.query_dicts("SELECT count(*) AS n FROM steps") == [{"n": before[0][1]}]


def test_views_dropped_by_another_program_are_named_by_doctor_and_made_again_by_maintain(tmp_path: Path) -> None:
    """The data is whole; the views are definitions. ``doctor`` called such a store healthy and
    ``workbench sql`` failed with no way out."""
    db = str(tmp_path / "t.duckdb")
    with TraceStore(db) as st:
        Runner(load_graph(f"{SIMPLE}:graph"), st).run({})
        steps = st.query("SELECT count(*) FROM steps")
    con = duckdb.connect(db)
    con.execute("DROP VIEW steps")
    con.close()
    doctor = run_cli("doctor", "--db", db, cwd=tmp_path)
    assert doctor.returncode == 1 and "view steps cannot be read" in doctor.stdout, doctor.stdout
    assert f"workbench maintain --db {db}" in doctor.stdout
    sql = run_cli("sql", "SELECT count(*) FROM steps", "--db", db, cwd=tmp_path)
    assert sql.returncode == 2 and "makes the views again" in sql.stderr, sql.stderr
    maintain = run_cli("maintain", "--db", db, cwd=tmp_path)
    assert maintain.returncode == 0 and "made the views again (steps could not be read)" in maintain.stdout
    assert "healthy" in run_cli("doctor", "--db", db, cwd=tmp_path).stdout
    with TraceStore(db) as st:
        assert st.query("SELECT count(*) FROM steps") == steps


def test_reading_an_unknown_run_or_a_bad_limit_is_a_clear_error(store: TraceStore) -> None:
    """``state_at`` of an unknown run returned ``{}`` (``get_run`` refuses it); a limit below 1
    gave the database's raw error, one beyond its integers an internal error from ``runs``."""
    from workbench.errors import InputError, RunNotFoundError

    with pytest.raises(RunNotFoundError, match="nope"):
        store.state_at("nope", 1)
    with pytest.raises(InputError, match="limit must be a whole number of 1 or more, got -1"):
        store.list_runs(limit=-1)
    assert store.list_runs(limit=10**30) == []
    res = run_cli("runs", "--limit", str(10**20), "--db", store.path, "--json", cwd=Path(store.path).parent)
    assert (res.returncode, res.stdout.strip()) == (0, "[]"), res.stderr


@pytest.mark.parametrize("content", [b"", b"hello, not a database\n"])
def test_a_refused_file_is_left_as_it_was_with_no_spool_beside_it(tmp_path: Path, content: bytes) -> None:
    """Opening a file that is not a trace store is refused, and leaves no ``.spool`` folder."""
    path = tmp_path / "notes.duckdb"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="corrupt"):
        TraceStore(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.duckdb"]
    assert path.read_bytes() == content


def test_a_lake_maintenance_step_that_lost_a_race_is_done_again(store: TraceStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``maintain`` on a DuckLake beside recording workers failed 2-3 times in 6 ("Failed to
    commit DuckLake transaction", PostgreSQL's "could not serialize access"): each step is
    DuckLake's own and may be done again, as the workers retry their commits. Anything else is
    not retried."""
    from workbench.store import maintenance

    monkeypatch.setattr("time.sleep", lambda s: None)  # the backoff between attempts, not under test

    class Racing:
        def __init__(self, failures: list[BaseException]) -> None:
            self.failures, self.calls = failures, 0

        def execute(self, sql: str) -> Any:
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)
            return duckdb.connect().execute("SELECT 7")

    lost = [duckdb.TransactionException("TransactionContext Error: Failed to commit: Failed to commit DuckLake "
                                        "transaction."),
            duckdb.Error("Failed to delete flushed inlined data: ERROR: could not serialize access due to "
                         "concurrent update")]
    con = Racing(list(lost))
    assert maintenance._again(store, con, "CALL ducklake_flush_inlined_data('lake')") == [(7,)]
    assert con.calls == 3
    other = Racing([duckdb.CatalogException("Catalog Error: no such table")])
    with pytest.raises(duckdb.CatalogException):
        maintenance._again(store, other, "CALL x()")
    assert other.calls == 1
    endless = Racing([lost[0]] * (maintenance.ATTEMPTS + 1))
    with pytest.raises(duckdb.TransactionException):
        maintenance._again(store, endless, "CALL x()")
    assert endless.calls == maintenance.ATTEMPTS

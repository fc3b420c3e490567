"""A fleet's shared history on DuckLake, against a real PostgreSQL (tests/pgcluster.py).

Workers are real processes pointed at one ``ducklake:postgres:...`` location, each with its own
local spool (as separate machines would have). Covered: the documented views, ``state_at``,
replay, fork, diff and export/import on the lake; concurrent recorders; the exactly-once claim
across workers; losing PostgreSQL in the middle of a run; bad configuration; small files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, run_cli, workbench_cmd
from inner_pytest import run_pytest as inner_pytest
from pgcluster import PASSWORD, Cluster, postgres_cluster

from workbench.store import TraceStore

# One worker runs them all (pytest-xdist --dist loadgroup): one PostgreSQL cluster for the suite
# (initdb, start, and a server's memory and CPU) instead of one per worker.
pytestmark = pytest.mark.xdist_group("lake")

HERE = Path(__file__).resolve().parent
SIMPLE = str(HERE / "graphs" / "simple.py")
GATED = str(HERE / "graphs" / "gated.py")
TIMEOUT = 180


@pytest.fixture(scope="session")
def pg() -> Iterator[Cluster]:
    """One cluster per test process (the lake tests share one xdist worker; a worker that runs
    any starts its own cluster, on a free port)."""
    with postgres_cluster() as cluster:
        yield cluster


class Lake:
    """One lake (a database in the cluster, a data directory) and a way to run workers on it."""

    def __init__(self, pg: Cluster, root: Path) -> None:
        self.pg = pg
        self.location = pg.location(pg.create_database())
        self.data = root / "lake-data"
        self.root = root

    def env(self, worker: str = "w0", **extra: str) -> dict[str, str]:
        return cli_env(PGPASSWORD=PASSWORD, WORKBENCH_LAKE_DATA=str(self.data),
                       WORKBENCH_SPOOL=str(self.root / f"spool-{worker}"), **extra)

    def cli(self, *args: str, worker: str = "w0", **extra: str) -> subprocess.CompletedProcess[str]:
        """One command, in-process (:func:`conftest.run_cli`): commands taking turns. What runs at
        the same time, or must be a process of its own, uses :meth:`popen`."""
        return run_cli(*args, "--db", self.location, cwd=self.root, env=self.env(worker, **extra), timeout=TIMEOUT)

    def popen(self, *args: str, worker: str = "w0", **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*workbench_cmd(), *args, "--db", self.location], cwd=self.root,
                                env=self.env(worker, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def store(self) -> TraceStore:
        os.environ["PGPASSWORD"] = PASSWORD
        os.environ["WORKBENCH_LAKE_DATA"] = str(self.data)
        os.environ["WORKBENCH_SPOOL"] = str(self.root / "spool-test")
        return TraceStore(self.location)


@pytest.fixture
def lake(pg: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return Lake(pg, tmp_path)


def _json(res: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout.strip(), (res.returncode, res.stderr)
    return json.loads(res.stdout)


def test_record_read_replay_fork_diff_export_on_the_lake(lake: Lake) -> None:
    done = _json(lake.cli("run", SIMPLE, "--input", '{"name": "lake"}', "--json"))
    assert done["status"] == "completed"
    rid = done["run_id"]
    runs = _json(lake.cli("runs", "--json", worker="reader"))
    assert [r["run_id"] for r in runs] == [rid]
    rows = _json(lake.cli("sql", f"SELECT state FROM state_at('{rid}', 2)", "--format", "json", worker="reader"))
    assert rows[0]["state"]["log"] == ["hello lake", "no question"]
    steps = _json(lake.cli("sql", "SELECT node FROM steps ORDER BY step", "--format", "json"))
    assert [s["node"] for s in steps] == ["greet", "ask", "finish"]
    assert lake.cli("replay", rid, "--graph", SIMPLE).returncode == 0
    fork = _json(lake.cli("fork", rid, "--at", "2", "--set", 'name="forked"', "--graph", SIMPLE, "--json"))
    assert fork["status"] == "completed"
    diff = _json(lake.cli("diff", rid, fork["run_id"], "--json"))
    assert diff["b"]["parent_run_id"] == rid
    out = lake.root / "export.jsonl"
    assert lake.cli("export", fork["run_id"], "--to", str(out)).returncode == 0
    res = run_cli("import", str(out), "--db", str(lake.root / "local.duckdb"), "--json", cwd=lake.root)
    assert sorted(_json(res)["imported"]) == sorted([rid, fork["run_id"]])
    # The documented views exist in the lake itself, for anyone who attaches it.
    sql = lake.cli("sql", "SELECT count(*) AS n FROM runs JOIN llm_calls USING (run_id)", "--format", "json")
    assert sql.returncode == 0, sql.stderr


def test_workers_record_at_once_into_one_history(lake: Lake) -> None:
    assert lake.cli("runs").returncode == 0  # create the lake first
    workers = [lake.popen("run", SIMPLE, "--input", json.dumps({"name": f"w{i}"}), "--json", worker=f"w{i}")
               for i in range(4)]
    ids = []
    for w in workers:
        out, err = w.communicate(timeout=TIMEOUT)
        assert w.returncode == 0, err
        ids.append(json.loads(out)["run_id"])
    runs = {r["run_id"]: r for r in _json(lake.cli("runs", "--json", worker="reader"))}
    assert set(runs) == set(ids)
    assert all(r["status"] == "completed" and r["steps"] == 3 for r in runs.values())


def test_exactly_one_worker_answers_a_waiting_run(lake: Lake) -> None:
    waiting = _json(lake.cli("run", SIMPLE, "--input", '{"name": "q", "ask": true}', "--json"))
    assert waiting["status"] == "waiting"
    procs = [lake.popen("resume", waiting["run_id"], "--input", f'"from-{i}"', "--graph", SIMPLE, "--json",
                        worker=f"r{i}") for i in range(3)]
    results = [(p, *p.communicate(timeout=TIMEOUT)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2, 2], [(p.returncode, e) for p, _, e in results]
    winner = next(json.loads(out) for p, out, _ in results if p.returncode == 0)
    with lake.store() as store:
        answered = [i["response"] for i in store.interrupts(waiting["run_id"]) if i["resumed_at"] is not None]
        assert answered == [winner["state"]["answer"]]


RECORD_THEN_WAIT = textwrap.dedent("""
    import json, sys
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    store = TraceStore(sys.argv[1])
    r = Runner(load_graph(sys.argv[2]), store).run({"tag": "outage"})
    print(json.dumps({"run_id": r.run_id, "status": r.status, "state": r.state}), flush=True)
    store.close()
    print(json.dumps({"close_warning": store.close_warning}), flush=True)
""")


def test_losing_postgres_mid_run_loses_nothing(lake: Lake, tmp_path: Path) -> None:
    """PostgreSQL stops while a worker is inside a step: the run goes on (every step durable in
    the worker's local journal), the worker exits saying where its records wait, and the next
    process on that machine sends them once PostgreSQL is back."""
    assert lake.cli("runs").returncode == 0
    gate = str(tmp_path / "gate")
    os.mkfifo(gate)
    proc = subprocess.Popen([sys.executable, "-c", RECORD_THEN_WAIT, lake.location, GATED], cwd=lake.root,
                            env=lake.env("outage", WORKBENCH_TEST_GATE=gate), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with lake.store() as reader:
        deadline = time.monotonic() + 60
        while not reader.list_runs() or reader.last_committed_step(reader.list_runs()[0]["run_id"]) < 1:
            assert time.monotonic() < deadline, "step 1 never reached the lake"
            time.sleep(0.05)
        run_id = reader.list_runs()[0]["run_id"]
    lake.pg.stop()
    try:
        with open(gate, "w") as fh:
            fh.write("go\n")
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        result, closing = (json.loads(line) for line in out.splitlines())
        assert result["status"] == "completed"  # the run itself never noticed
        assert "cannot be updated" in (closing["close_warning"] or "")
        journals = list((lake.root / "spool-outage").rglob("*.wbj"))
        assert journals and sum(j.stat().st_size for j in journals) > 0  # kept locally
        down = lake.cli("runs", worker="outage")
        assert down.returncode == 2 and "cannot reach the shared store" in down.stderr
        assert len(down.stderr.strip().splitlines()) == 1 and PASSWORD not in down.stderr
    finally:
        lake.pg.start()
    # Back: any command on that machine sends what waited.
    runs = _json(lake.cli("runs", "--json", worker="outage"))
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "completed")]
    state = _json(lake.cli("sql", f"SELECT state FROM state_at('{run_id}', 3)", "--format", "json", worker="x"))
    assert state[0]["state"]["log"] == ["first outage", "gate", "last"]
    assert not list((lake.root / "spool-outage").rglob("*.wbj"))


def test_bad_locations_fail_before_any_step(lake: Lake, tmp_path: Path) -> None:
    port = lake.pg.port
    unreachable = lake.location.replace(f"port={port}", "port=1")
    res = run_cli("run", SIMPLE, "--db", unreachable, cwd=tmp_path, env=lake.env(), timeout=TIMEOUT)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "cannot reach the shared store" in res.stderr
    assert "step" not in res.stdout  # nothing ran
    with_password = lake.location + f" password={PASSWORD}"
    res = run_cli("runs", "--db", with_password, cwd=tmp_path, env=lake.env(), timeout=TIMEOUT)
    assert res.returncode == 2 and "PGPASSWORD" in res.stderr and PASSWORD not in res.stderr
    wrong_pw = run_cli("runs", "--db", lake.location, cwd=tmp_path,
                       env={**lake.env(), "PGPASSWORD": "wrong-password-123"}, timeout=TIMEOUT)
    assert wrong_pw.returncode == 2 and "password authentication failed" in wrong_pw.stderr
    assert "wrong-password-123" not in wrong_pw.stderr


def test_per_step_commits_do_not_leave_a_file_each(lake: Lake) -> None:
    for i in range(6):
        assert lake.cli("run", SIMPLE, "--input", json.dumps({"name": f"f{i}"})).returncode == 0
    files = list(lake.data.rglob("*.parquet"))
    assert files == []  # every batch was inlined into the catalog
    res = lake.cli("maintain", "--keep", "0 seconds")
    assert res.returncode == 0, res.stderr
    files = list(lake.data.rglob("*.parquet"))
    tables = {f.parent.name for f in files}
    assert len(files) <= len(tables) + 2  # about one file per table, not one per commit
    assert len(_json(lake.cli("runs", "--json"))) == 6  # and nothing lost


def test_the_pytest_plugin_replays_runs_from_the_lake(lake: Lake, tmp_path: Path) -> None:
    done = _json(lake.cli("run", SIMPLE, "--input", '{"name": "plugin"}', "--json"))
    test_file = tmp_path / "test_regressions.py"
    test_file.write_text(textwrap.dedent(f"""
        def test_recorded_run_replays(workbench_replay):
            workbench_replay("{done['run_id']}", graph={SIMPLE!r})
    """))
    res = inner_pytest("-q", str(test_file), "--workbench-db", lake.location, cwd=tmp_path, env=lake.env("plugin"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def _store_with_spool(lake: Lake, spool: str) -> TraceStore:
    """A store on the lake whose local spool is ``spool`` (another user or configuration on this
    machine keeps its journals elsewhere)."""
    os.environ["PGPASSWORD"] = PASSWORD
    os.environ["WORKBENCH_LAKE_DATA"] = str(lake.data)
    os.environ["WORKBENCH_SPOOL"] = str(lake.root / spool)
    return TraceStore(lake.location)


def _row(run_id: str, status: str) -> dict[str, Any]:
    from workbench.store.store import now_us

    return {"run_id": run_id, "graph": "g", "status": status, "started_at": now_us(), "input": "{}",
            "config": "{}"}


def _step(run_id: str, step: int) -> list[tuple[str, dict[str, Any]]]:
    from workbench.store.store import now_us

    return [("change", {"run_id": run_id, "step": step, "key": "k", "op": "set", "value": json.dumps(step)}),
            ("plan", {"run_id": run_id, "step": step + 1, "tasks": "[]", "joins": "{}", "created_at": now_us()})]


def test_a_process_with_another_spool_on_this_machine_is_not_taken_for_dead(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.errors import RunStateError

    monkeypatch.setenv("WORKBENCH_SPOOL", "")
    recorder = _store_with_spool(lake, "spool-a")
    other = _store_with_spool(lake, "spool-b")
    try:
        recorder.record_many([("run", _row("R1", "running")), *_step("R1", 0)])
        recorder.record_many(_step("R1", 1))
        recorder.flush()
        positions = other.query("SELECT count(*) FROM wb_journals WHERE starts_with(journal, ?)",
                                [recorder.owner + "."])[0][0]
        assert positions >= 1
        # The other spool holds no journal of the recorder: its heartbeat says it is alive (and
        # the refusal says how long a process that stopped still counts).
        with pytest.raises(RunStateError, match=r"being recorded right now by process \d+ on .* \(by its heartbeat: "
                                                r"a process that stopped counts as recording until its heartbeat is 5 "
                                                r"minutes old\)"):
            other.claim("R1", allowed=["running"])
        other.sweep()
        # ... and its load positions are kept (dropping them would load its journal twice).
        assert other.query("SELECT count(*) FROM wb_journals WHERE starts_with(journal, ?)",
                           [recorder.owner + "."])[0][0] == positions
        assert other.query("SELECT status, owner FROM wb_runs WHERE run_id = 'R1'") == [("running", recorder.owner)]
    finally:
        other.close()
        recorder.close()
    check = _store_with_spool(lake, "spool-c")
    try:
        assert check.query("SELECT step, count(*) FROM wb_changes WHERE run_id = 'R1' GROUP BY step "
                           "ORDER BY step") == [(0, 1), (1, 1)]
    finally:
        check.close()


def test_a_claim_is_a_sign_of_life_before_the_first_batch(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.errors import RunStateError

    monkeypatch.setenv("WORKBENCH_SPOOL", "")
    setup = _store_with_spool(lake, "spool-setup")
    setup.record_many([("run", _row("R2", "paused")), *_step("R2", 0)])
    setup.close()
    first = _store_with_spool(lake, "spool-first")
    second = _store_with_spool(lake, "spool-second")
    try:
        first.claim("R2", allowed=["paused"])  # running now, nothing loaded by `first` yet
        with pytest.raises(RunStateError, match="being recorded right now"):
            second.claim("R2", allowed=["running"])
    finally:
        second.close()
        first.close()


def test_maintain_prunes_old_load_positions_and_heartbeats(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_SPOOL", "")
    store = _store_with_spool(lake, "spool-p")
    try:
        store.record_many([("run", _row("R3", "running")), *_step("R3", 0)])
        for i in range(1, 6):
            store.record_many(_step("R3", i))
            store.flush()
        store._heartbeat()
        journal = store.journal_id
        rows = store.query("SELECT count(*) FROM wb_journals WHERE journal = ?", [journal])[0][0]
        assert rows >= 6
        position = store.backend.position
        from workbench.store.maintenance import maintain

        done = maintain(store, keep="1 day")
        assert any(line.startswith("pruned ") for line in done)
        assert store.query("SELECT count(*) FROM wb_journals WHERE journal = ?", [journal])[0][0] <= 2
        with store.backend.connection(write=True) as con:
            assert position(con, journal) == (6, store._last_position[2])  # type: ignore[index]
        store.record_many(_step("R3", 6))  # recording goes on from the kept position
        store.flush()
    finally:
        store.close()
    check = _store_with_spool(lake, "spool-p2")
    try:
        assert check.query("SELECT count(*), count(DISTINCT step) FROM wb_changes WHERE run_id = 'R3'") == [(7, 7)]
    finally:
        check.close()


def test_a_version_2_lake_is_upgraded_for_commands_and_closed_interrupts(lake: Lake) -> None:
    """Schema 3 (control from inside a node) adds steps.goto and interrupts.closed: a lake made
    by the previous version is migrated in place, and the new features work on it."""
    control = str(HERE / "graphs" / "control.py")
    st = lake.store()
    try:
        with st.backend.connection(write=True) as con:  # make it look like a version-2 lake
            con.execute("ALTER TABLE wb_tasks DROP COLUMN goto")
            con.execute("ALTER TABLE wb_interrupts DROP COLUMN closed")
            con.execute("UPDATE wb_meta SET value = '2' WHERE key = 'schema_version'")
            con.execute("UPDATE wb_meta SET value = 'old' WHERE key = 'views'")
    finally:
        st.close()
    first = _json(lake.cli("run", f"{control}:questions", "--json"))
    assert first["status"] == "waiting"
    done = _json(lake.cli("resume", first["run_id"], "--graph", f"{control}:questions", "--interrupt", "1.1.1.0",
                          "--input", '"Q"', "--close", "1.0.1.0", "--json"))
    assert done["status"] == "completed" and done["state"]["log"] == ["q got Q", "r", "after q", "after r"]
    jumped = _json(lake.cli("run", f"{control}:jump", "--input", '{"topic": "t"}', "--json"))
    _json(lake.cli("resume", jumped["run_id"], "--graph", f"{control}:jump", "--input", '"y"', "--json"))
    rows = _json(lake.cli("sql", "SELECT interrupt_id, status FROM interrupts WHERE run_id = "
                          f"'{first['run_id']}' ORDER BY 1", "--format", "json"))
    assert rows == [{"interrupt_id": "1.0.1.0", "status": "closed"}, {"interrupt_id": "1.1.1.0", "status": "answered"}]
    goto = _json(lake.cli("sql", "SELECT node, goto FROM steps WHERE goto IS NOT NULL", "--format", "json"))
    assert goto == [{"node": "ask", "goto": ["yes"]}]
    version = _json(lake.cli("sql", "SELECT value FROM wb_meta WHERE key = 'schema_version'", "--format", "json"))
    assert version == [{"value": "3"}]


TALK = str(HERE / "graphs" / "talk.py")


def test_conversations_and_deleting_runs_on_the_lake(lake: Lake) -> None:
    """A conversation's turns (one superseding a waiting run) and `rm` work on DuckLake: the
    delete is one commit, refused while a run has continuations, and a record of a deleted run
    that arrives later is dropped."""
    first = _json(lake.cli("run", TALK, "--input", '{"messages": ["ask you"]}', "--json"))
    assert first["status"] == "waiting"
    second = _json(lake.cli("run", TALK, "--continue", first["run_id"], "--input", '{"messages": "no"}',
                            "--json", worker="w1"))
    assert second["state"]["messages"] == ["ask you", "echo ask you", "no", "echo no"]
    third = _json(lake.cli("run", TALK, "--continue", "last", "--input", '{"messages": "bye"}', "--json"))
    runs = {r["run_id"]: r for r in _json(lake.cli("runs", "--json", worker="reader"))}
    assert runs[first["run_id"]]["status"] == "superseded"
    assert runs[third["run_id"]]["relation"] == "continuation"
    assert lake.cli("replay", third["run_id"], "--graph", TALK).returncode == 0
    refused = lake.cli("rm", first["run_id"])
    assert refused.returncode == 2 and "--with-descendants" in refused.stderr
    with lake.store() as store:
        assert store.delete_runs([third["run_id"]]) == [third["run_id"]]
        store.record("event", {"run_id": third["run_id"], "step": 3, "kind": "late", "node": None,
                               "detail": "{}", "created_at": 0})
        store.flush()
        assert store.query("SELECT count(*) FROM wb_events WHERE run_id = ?", [third["run_id"]]) == [(0,)]
    done = lake.cli("rm", first["run_id"], "--with-descendants", "--json", worker="w1")
    assert sorted(_json(done)["deleted"]) == sorted([first["run_id"], second["run_id"]])
    assert _json(lake.cli("runs", "--json", worker="reader")) == []
    rows = _json(lake.cli("sql", "SELECT count(*) AS n FROM state_changes", "--format", "json"))
    assert rows[0]["n"] == 0


def test_a_process_reopening_a_lake_reuses_its_attached_instance(lake: Lake,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed store's attached instance serves the process's next store of the same lake
    (store/lake_pool.py), never one with other credentials; it is checked before use."""
    from workbench.errors import StoreError

    first = lake.store()
    instance = first.backend._instances[False]
    first.record_many([("run", _row("R4", "completed"))])
    first.close()
    again = lake.store()
    try:
        assert again.backend._instances[False] is instance
        assert again.query("SELECT status FROM wb_runs WHERE run_id = 'R4'") == [("completed",)]
        monkeypatch.setenv("PGPASSWORD", "wrong-password-456")
        with pytest.raises(StoreError, match="password authentication failed"):
            TraceStore(lake.location)  # the instance held by `again` is not the point: none is idle
    finally:
        again.close()
    with pytest.raises(StoreError, match="password authentication failed") as err:
        TraceStore(lake.location)  # one is idle now, but for the right password only
    assert "wrong-password-456" not in str(err.value)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with lake.store() as last:
        assert last.backend._instances[False] is instance


def test_two_imports_of_one_file_committing_at_once_import_each_run_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckLake has no key constraints and two inserting transactions never conflict: an import
    that checked for its runs before another import of the same file committed inserted them a
    second time. The two commits conflict now; the loser retries and skips what is there. Two
    imports of different runs at once both import theirs."""
    import threading

    from workbench.store import store as store_module
    from workbench.transfer import export_runs, import_files

    files = {}
    with TraceStore(str(lake.root / "local.duckdb")) as src:
        for rid in ("IMP1", "IMP2", "IMP3"):
            src.record_many([("run", _row(rid, "completed")), *_step(rid, 1)])
            src.flush()
            files[rid] = str(lake.root / f"{rid}.jsonl")
            export_runs(src, [rid], files[rid])

    applied, other_done = threading.Event(), threading.Event()
    real = store_module.apply_records

    def held(con: Any, records: Any, *args: Any) -> Any:
        out = real(con, records, *args)
        if threading.current_thread().name == "first-import" and not applied.is_set():
            applied.set()  # inserted, not committed: let the other import commit first
            assert other_done.wait(TIMEOUT)
        return out

    monkeypatch.setattr(store_module, "apply_records", held)

    def at_once(first_file: str, second_file: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with _store_with_spool(lake, "spool-a") as a, _store_with_spool(lake, "spool-b") as b:
            applied.clear()
            other_done.clear()
            result: dict[str, Any] = {}
            first = threading.Thread(target=lambda: result.update(import_files(a, [first_file])),
                                     name="first-import")
            first.start()
            try:
                assert applied.wait(TIMEOUT)
                second = import_files(b, [second_file])
            finally:
                other_done.set()
                first.join(TIMEOUT)
            return result, second

    first, second = at_once(files["IMP1"], files["IMP1"])
    assert second == {"imported": ["IMP1"], "skipped": []}
    assert first == {"imported": [], "skipped": ["IMP1"]}
    first, second = at_once(files["IMP2"], files["IMP3"])
    assert (first["imported"], second["imported"]) == (["IMP2"], ["IMP3"])
    with lake.store() as store:
        assert store.query("SELECT run_id, count(*) FROM wb_runs GROUP BY run_id ORDER BY run_id") == [
            ("IMP1", 1), ("IMP2", 1), ("IMP3", 1)]
        assert store.query("SELECT run_id, count(*) FROM wb_changes GROUP BY run_id ORDER BY run_id") == [
            ("IMP1", 1), ("IMP2", 1), ("IMP3", 1)]


def test_a_worker_without_the_data_path_reads_it_from_the_catalog(lake: Lake) -> None:
    """fleet.md: the data path is needed to create a lake; later it is read from the catalog.
    A worker configured with the catalog alone worked until ``maintain`` moved rows into data
    files, then every command failed ("file system operations are disabled")."""
    done = _json(lake.cli("run", SIMPLE, "--input", '{"name": "lake"}', "--json"))
    assert lake.cli("maintain").returncode == 0
    files = list(lake.data.rglob("*.parquet"))
    assert files, "maintain wrote no data file: the test would not test anything"
    env = {k: v for k, v in lake.env("bare").items() if k != "WORKBENCH_LAKE_DATA"}
    runs = run_cli("runs", "--json", "--db", lake.location, cwd=lake.root, env=env, timeout=TIMEOUT)
    assert [r["run_id"] for r in _json(runs)] == [done["run_id"]]
    shown = run_cli("sql", "SELECT count(*) AS n FROM steps", "--format", "json", "--db", lake.location,
                    cwd=lake.root, env=env, timeout=TIMEOUT)
    assert _json(shown) == [{"n": 3}]
    # Still no file outside the lake's data path.
    escape = run_cli("sql", f"SELECT * FROM read_text('{lake.root / 'outside.txt'}')", "--db", lake.location,
                     cwd=lake.root, env=env, timeout=TIMEOUT)
    assert escape.returncode == 2 and "file system operations are disabled" in escape.stderr

"""Many processes, one history: concurrent recorders and readers, live visibility, exactly-once
claims, and a killed writer while others go on — all on one local store, with real processes.

Processes are synchronised through what they print and through FIFOs (tests/graphs/gated.py),
never through timers; waits that observe another process are bounded polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, workbench_cmd

from workbench.store import TraceStore

HERE = Path(__file__).resolve().parent
SIMPLE = str(HERE / "graphs" / "simple.py")
GATED = str(HERE / "graphs" / "gated.py")
TIMEOUT = 120

RECORDER = textwrap.dedent("""
    import json, sys
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    db, graph_file, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    graph = load_graph(graph_file)
    with TraceStore(db) as store:
        for value in inputs:
            r = Runner(graph, store).run(value)
            print(json.dumps({"run_id": r.run_id, "status": r.status, "state": r.state}), flush=True)
""")


def _recorder(db: str, graph: str, inputs: list[dict[str, Any]], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RECORDER, db, graph, json.dumps(inputs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(**env))


def _wb(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*workbench_cmd(), *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _until(holds: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = holds()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _fifo(tmp_path: Path, name: str) -> str:
    path = str(tmp_path / name)
    os.mkfifo(path)
    return path


def _open_gate(fifo: str) -> None:
    with open(fifo, "w", encoding="utf-8") as fh:  # blocks until the node opened it for reading
        fh.write("go\n")


def test_four_recorders_and_a_reader_share_one_store(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.duckdb")
    TraceStore(db).close()
    procs = [_recorder(db, SIMPLE, [{"name": f"p{p}-r{i}"} for i in range(8)]) for p in range(4)]
    seen_during: set[int] = set()
    with TraceStore(db) as reader:
        while any(p.poll() is None for p in procs):
            seen_during.add(len(reader.list_runs(1000)))  # reading while four processes record
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            assert p.returncode == 0, err
            assert "Traceback" not in err
            outputs += [json.loads(line) for line in out.splitlines()]
        runs = {r["run_id"]: r for r in reader.list_runs(1000)}
        assert len(outputs) == 32 and len(runs) == 32
        for o in outputs:
            assert runs[o["run_id"]]["status"] == "completed"
            assert reader.state_at(o["run_id"], 3) == o["state"]
            assert o["state"]["log"] == [f"hello {o['state']['name']}", "no question", "done"]
    assert len(seen_during) > 1  # the reader saw the history grow, not only the end


def test_another_process_sees_a_run_while_it_records(tmp_path: Path) -> None:
    db = str(tmp_path / "live.duckdb")
    TraceStore(db).close()
    gate = _fifo(tmp_path, "gate")
    proc = _recorder(db, GATED, [{"tag": "live"}], WORKBENCH_TEST_GATE=gate)
    with TraceStore(db) as reader:
        run = _until(lambda: next(iter(reader.list_runs()), None), "the run to appear")
        assert run["status"] == "running"
        # Step 1 (first) is committed while step 2 (gate) is still running in the other process.
        _until(lambda: reader.last_committed_step(run["run_id"]) >= 1, "step 1 to be visible")
        assert [t["node"] for t in reader.tasks(run["run_id"])] == ["first"]
        assert reader.get_run(run["run_id"])["status"] == "running"
        _open_gate(gate)
        _out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        done = reader.get_run(run["run_id"])
        assert done["status"] == "completed"
        assert done["output"]["log"] == ["first live", "gate", "last"]


def _waiting_run(tmp_path: Path, db: str) -> str:
    res = subprocess.run([*workbench_cmd(), "run", SIMPLE, "--input", '{"name": "x", "ask": true}', "--db", db,
                          "--json"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 3, res.stderr
    return str(json.loads(res.stdout)["run_id"])


@pytest.mark.parametrize("trial", range(6))
def test_two_answers_at_once_exactly_one_applies(tmp_path: Path, trial: int) -> None:
    db = str(tmp_path / "answer.duckdb")
    run_id = _waiting_run(tmp_path, db)
    procs = [_wb("resume", run_id, "--input", json.dumps(f"answer-{i}"), "--graph", SIMPLE, "--db", db, "--json",
                 cwd=tmp_path) for i in range(2)]
    results = [(p, *p.communicate(timeout=TIMEOUT)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    winner = next(i for i, (p, _, _) in enumerate(results) if p.returncode == 0)
    loser_err = next(err for p, _, err in results if p.returncode == 2)
    assert len(loser_err.strip().splitlines()) == 1 and "Traceback" not in loser_err
    assert json.loads(results[winner][1])["state"]["answer"] == f"answer-{winner}"
    with TraceStore(db) as store:
        answered = [i for i in store.interrupts(run_id) if i["resumed_at"] is not None]
        assert [i["response"] for i in answered] == [f"answer-{winner}"]
        assert store.get_run(run_id)["status"] == "completed"
        assert store.state_at(run_id, 3)["log"] == ["hello x", "asked", "done"]  # "asked" once


@pytest.mark.parametrize("trial", range(6))
def test_two_resumes_of_a_paused_run_exactly_one_continues(tmp_path: Path, trial: int) -> None:
    db = str(tmp_path / "paused.duckdb")
    res = subprocess.run([*workbench_cmd(), "run", SIMPLE, "--input", '{"name": "p"}', "--break-after", "greet",
                          "--db", db, "--json"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 3, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    procs = [_wb("resume", run_id, "--graph", SIMPLE, "--db", db, "--json", cwd=tmp_path) for _ in range(2)]
    results = [(p.returncode, *p.communicate(timeout=TIMEOUT)) for p in procs]
    results = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, results, strict=True)]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    with TraceStore(db) as store:
        assert store.state_at(run_id, 3)["log"] == ["hello p", "no question", "done"]
        # Step 2 ran once: one completed row for each task.
        assert [(t["step"], t["status"]) for t in store.tasks(run_id)] == \
            [(1, "completed"), (2, "completed"), (3, "completed")]


def test_a_killed_writer_does_not_stop_the_others_and_its_run_resumes_elsewhere(tmp_path: Path) -> None:
    db = str(tmp_path / "kill.duckdb")
    TraceStore(db).close()
    gates = [_fifo(tmp_path, f"gate{i}") for i in range(3)]
    procs = [_recorder(db, GATED, [{"tag": f"w{i}"}], WORKBENCH_TEST_GATE=gates[i]) for i in range(3)]
    with TraceStore(db) as reader:
        _until(lambda: len(reader.list_runs()) == 3 and all(
            reader.last_committed_step(r["run_id"]) >= 1 for r in reader.list_runs()), "three runs at their gate")
        victim = procs[1]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=TIMEOUT)
        for i in (0, 2):
            _open_gate(gates[i])
        for i in (0, 2):
            _out, err = procs[i].communicate(timeout=TIMEOUT)
            assert procs[i].returncode == 0, err
        runs = {r["graph"] + json.dumps(reader.state_at(r["run_id"], 0)): r for r in reader.list_runs()}
        killed = next(r for r in runs.values() if reader.state_at(r["run_id"], 0)["tag"] == "w1")
        others = [r for r in runs.values() if r is not killed]
        assert all(reader.get_run(r["run_id"])["status"] == "completed" for r in others)
    # Another process continues the killed run from its last committed step (the gate re-runs:
    # it was in flight, never recorded as completed).
    res = subprocess.run([*workbench_cmd(), "resume", killed["run_id"], "--graph", GATED, "--db", db, "--json"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"]["log"] == ["first w1", "gate", "last"]


def test_runs_lists_a_killed_run_as_interrupted(tmp_path: Path) -> None:
    db = str(tmp_path / "interrupted.duckdb")
    TraceStore(db).close()
    gate = _fifo(tmp_path, "gate")
    proc = _recorder(db, GATED, [{"tag": "k"}], WORKBENCH_TEST_GATE=gate)
    with TraceStore(db) as reader:
        _until(lambda: reader.list_runs() and reader.last_committed_step(reader.list_runs()[0]["run_id"]) >= 1,
               "the run at its gate")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    res = subprocess.run([*workbench_cmd(), "runs", "--db", db], cwd=tmp_path, env=cli_env(), capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert "interrupted" in res.stdout
    listed = json.loads(subprocess.run([*workbench_cmd(), "runs", "--db", db, "--json"], cwd=tmp_path, env=cli_env(),
                                       capture_output=True, text=True, timeout=TIMEOUT).stdout)
    assert listed[0]["status"] == "running" and listed[0]["error"].startswith("interrupted")

"""Issue 7's smaller promises, each a behaviour: the store refuses what it cannot hold at the
step (and stays usable), ids cannot be reused, limits can be raised to go on, broken conditions
and stuck nodes do not hang anything, durations are the node's own, the record says what ran."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import cli_env, run_cli, workbench_cmd

from workbench import END, START, Graph, Runner, Send, append, codec
from workbench.errors import InputError, LLMError, RunStateError, StoreError
from workbench.runtime import forking as forking_module
from workbench.store import TraceStore

HERE = Path(__file__).resolve().parent
TIMEOUT = 120


class S(TypedDict):
    n: int
    log: Annotated[list[str], append]
    blob: Any


def _graph(node: Any, name: str = "trust") -> Graph:
    g = Graph(name, S)
    g.node(name="work")(node)
    g.sequence(START, "work", END)
    return g


def _counts(store: TraceStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("wb_runs", "wb_tasks", "wb_changes")}


# --------------------------------------------------------------------------- what the store cannot hold


def test_a_value_over_the_limit_fails_the_step_naming_the_key_and_the_store_goes_on(
        store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_BYTES", 1024 * 1024)
    big = _graph(lambda s: {"blob": "x" * (2 * 1024 * 1024), "log": ["big"]})
    result = Runner(big, store).run({})
    assert result.status == "failed"
    assert "blob" in (result.error or "") and "MB" in (result.error or "")
    # Nothing bricked: the store reads and records as before.
    ok = Runner(_graph(lambda s: {"blob": "y" * 500_000, "log": ["ok"]}, "trust2"), store).run({})
    assert ok.status == "completed"
    assert len(store.state_at(ok.run_id, 1)["blob"]) == 500_000
    assert [r["status"] for r in store.list_runs()] == ["completed", "failed"]


def test_the_limit_counts_bytes_not_characters(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCII text is measured without encoding it (utf8_size); text with multi-byte characters
    still counts its UTF-8 bytes: 600,000 × "é" is 1.2 MB, over a 1 MB limit."""
    monkeypatch.setattr(codec, "MAX_BYTES", 1024 * 1024)
    wide = Runner(_graph(lambda s: {"blob": "é" * 600_000, "log": ["wide"]}), store).run({})
    assert wide.status == "failed" and "blob" in (wide.error or "") and "1.1 MB" in (wide.error or "")
    narrow = Runner(_graph(lambda s: {"blob": "e" * 1_000_000, "log": ["narrow"]}, "trust2"), store).run({})
    assert narrow.status == "completed"
    assert [codec.utf8_size(t) for t in ("abc", "é", "x\ud800")] == [3, 2, 4]


def test_the_store_refuses_a_record_over_the_limit_naming_its_size_in_bytes(
        store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's own check (for values that did not come through the codec): refused before
    the journal, the size given in UTF-8 bytes, not characters."""
    from workbench.store import store as store_module

    monkeypatch.setattr(store_module, "MAX_VALUE_BYTES", 1024 * 1024)
    wide = json.dumps("é" * 600_000, ensure_ascii=False)
    with pytest.raises(StoreError, match=r"state key 'blob' of run r-1 is 1\.1 MB; .* up to 1 MB"):
        store.record("change", {"run_id": "r-1", "step": 1, "key": "blob", "value": wide})
    assert _counts(store) == {"wb_runs": 0, "wb_tasks": 0, "wb_changes": 0}


def test_values_beyond_the_old_16_mb_limit_are_stored(store: TraceStore) -> None:
    result = Runner(_graph(lambda s: {"blob": "z" * (20 * 1024 * 1024)}), store).run({})
    assert result.status == "completed"
    assert len(store.state_at(result.run_id, 1)["blob"]) == 20 * 1024 * 1024


def test_a_lone_surrogate_from_a_node_fails_the_step_and_nothing_hangs(store: TraceStore) -> None:
    result = Runner(_graph(lambda s: {"log": ["x\ud800y"]}), store).run({})
    assert result.status == "failed"
    assert "surrogate" in (result.error or "") and "log" in (result.error or "")
    store.flush(timeout=10)
    assert _counts(store)["wb_runs"] == 1


def test_token_counts_a_provider_makes_up_do_not_break_the_store(store: TraceStore) -> None:
    run = Runner(_graph(lambda s: None), store).run({})
    base = {"run_id": run.run_id, "step": 1, "task": 0, "node": "work", "attempt": 1, "kind": "llm",
            "messages": "[]", "params": "{}", "response": "{}"}
    store.record("llm", {**base, "seq": 0, "prompt_tokens": 2**40, "completion_tokens": 1})
    store.record("llm", {**base, "seq": 1, "prompt_tokens": 2**70, "completion_tokens": float("nan")})
    calls = store.llm_calls(run.run_id)
    assert [(c["prompt_tokens"], c["completion_tokens"]) for c in calls] == [(2**40, 1), (None, None)]


def test_a_deeply_nested_value_is_stored_and_shown(tmp_path: Path) -> None:
    nested: Any = "leaf"
    for _ in range(200):
        nested = [nested]
    db = str(tmp_path / "deep.duckdb")
    with TraceStore(db) as store:
        run = Runner(_graph(lambda s: {"blob": nested}), store).run({})
        assert run.status == "completed"
    for args in (["show", run.run_id], ["show", run.run_id, "--json"], ["show", run.run_id, "--step", "1"]):
        res = run_cli(*args, "--db", db, cwd=tmp_path, timeout=TIMEOUT)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr and "RecursionError" not in res.stderr


def test_a_value_nested_too_deep_fails_the_step_naming_the_key(store: TraceStore) -> None:
    nested: Any = "leaf"
    for _ in range(500):
        nested = [nested]
    result = Runner(_graph(lambda s: {"blob": nested}), store).run({})
    assert result.status == "failed"
    assert "blob" in (result.error or "") and "nested deeper than 256" in (result.error or "")


# --------------------------------------------------------------------------- ids and limits


def test_reusing_a_run_id_is_a_clear_error_and_damages_nothing(store: TraceStore) -> None:
    g = _graph(lambda s: {"log": ["once"]})
    first = Runner(g, store).run({}, run_id="my-run")
    before = _counts(store)
    with pytest.raises(RunStateError, match="my-run"):
        Runner(g, store).run({}, run_id="my-run")
    assert _counts(store) == before
    assert store.state_at(first.run_id, 1)["log"] == ["once"]


def _loop(limit: int) -> Graph:
    g = Graph("looping", S, max_steps=limit)

    @g.node
    def tick(state: S) -> dict[str, Any]:
        return {"n": state["n"] + 1, "log": [f"t{state['n']}"]}

    g.edge(START, "tick")
    g.route("tick", lambda s: "tick" if s["n"] < 6 else END, targets=["tick", END])
    return g


def test_a_run_stopped_by_its_step_limit_continues_with_a_higher_one(store: TraceStore) -> None:
    stopped = Runner(_loop(3), store).run({})
    assert stopped.status == "failed" and "step limit of 3" in (stopped.error or "")
    assert store.get_run(stopped.run_id)["last_step"] == 3  # three steps ran, not four
    assert stopped.step == 3
    with pytest.raises(InputError):
        Runner(_loop(3), store).resume(stopped.run_id, max_steps=0)
    done = Runner(_loop(3), store).resume(stopped.run_id, max_steps=10)
    assert done.status == "completed"
    assert done.state["log"] == [f"t{i}" for i in range(6)]  # each step once


def test_a_fork_takes_a_new_step_limit(store: TraceStore) -> None:
    stopped = Runner(_loop(3), store).run({})
    fork = Runner(_loop(3), store).fork(stopped.run_id, 2, max_steps=10)
    assert fork.status == "completed" and fork.state["n"] == 6


def test_fork_chains_are_capped_with_a_clear_error(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forking_module, "MAX_FORK_DEPTH", 4)
    g = _graph(lambda s: {"log": ["x"]})
    run_id = Runner(g, store).run({}).run_id
    for _ in range(3):
        run_id = Runner(g, store).fork(run_id, 1).run_id
    with pytest.raises(InputError, match="forks deep"):
        Runner(g, store).fork(run_id, 1)


# --------------------------------------------------------------------------- conditions, pauses


def test_a_break_condition_that_raises_pauses_the_run_with_the_error(store: TraceStore) -> None:
    def broken(state: Any) -> bool:
        raise KeyError("no such key")

    paused = Runner(_loop(10), store).run({}, break_when=broken)
    assert paused.status == "paused"
    assert "KeyError" in (paused.paused or {}).get("error", "")
    assert store.get_run(paused.run_id)["status"] == "paused"
    done = Runner(_loop(10), store).resume(paused.run_id)
    assert done.status == "completed"


def test_an_after_breakpoint_pause_reports_the_same_step_in_text_and_json(tmp_path: Path) -> None:
    simple = str(HERE / "graphs" / "simple.py")
    db = str(tmp_path / "p.duckdb")
    res = run_cli("run", simple, "--break-after", "greet", "--db", db, "--json", cwd=tmp_path, timeout=TIMEOUT)
    out = json.loads(res.stdout)
    assert res.returncode == 3 and out["step"] == 1 and out["paused"]["step"] == 1
    res = run_cli("run", simple, "--break-after", "greet", "--db", db, cwd=tmp_path, timeout=TIMEOUT)
    assert "(step 1)" in res.stdout


# --------------------------------------------------------------------------- stuck and slow


STUCK = textwrap.dedent("""
    import threading
    from typing import TypedDict
    from workbench import END, START, Graph

    class S(TypedDict):
        x: int

    graph = Graph("stuck", S)

    @graph.node(timeout=1)
    def hang(state):
        threading.Event().wait(3600)  # a node that never returns
        return {}

    graph.sequence(START, "hang", END)
""")


def test_a_stuck_sync_node_with_a_timeout_fails_and_the_command_exits(tmp_path: Path) -> None:
    graph = tmp_path / "stuck.py"
    graph.write_text(STUCK)
    started = time.monotonic()
    res = subprocess.run([*workbench_cmd(), "run", str(graph), "--db", str(tmp_path / "s.duckdb")],
                         capture_output=True, text=True, env=cli_env(), timeout=TIMEOUT)
    assert res.returncode == 1
    assert "timed out after 1s" in res.stderr
    assert time.monotonic() - started < TIMEOUT / 2  # it exited: nobody waited for the stuck thread


def test_a_model_call_timeout_holds_whatever_the_provider_does(store: TraceStore) -> None:
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        try:
            ctx.llm("hello?", model="workbench-demo/silent", timeout=0.5, retries=0)
        except LLMError as exc:
            return {"log": [str(exc)]}
        return {"log": ["answered"]}

    started = time.monotonic()
    result = Runner(_graph(ask), store).run({})
    assert time.monotonic() - started < 30
    assert "timeout" in result.state["log"][0]


def test_step_durations_leave_out_the_model_library_import(store: TraceStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.llm import client

    real = client.litellm_module

    def slow_import() -> Any:
        time.sleep(1.0)  # stands for litellm's multi-second import (simulated, not synchronisation)
        return real()

    monkeypatch.setattr(client, "_litellm", None)
    monkeypatch.setattr(client, "litellm_module", slow_import)

    def ask(state: S, ctx: Any) -> dict[str, Any]:
        return {"log": [ctx.llm("classify: login error").text]}

    result = Runner(_graph(ask), store).run({})
    assert result.status == "completed"
    [task] = store.tasks(result.run_id)
    assert task["duration_ms"] < 900, task["duration_ms"]

    # Nor when the import happens inside a subgraph: neither the inner step nor the task that ran
    # the subgraph counts it.
    monkeypatch.setattr(client, "_litellm", None)
    outer = Graph("trust-outer", S)
    outer.add_node("sub", _graph(ask, "trust-inner"))
    outer.sequence(START, "sub", END)
    nested = Runner(outer, store).run({})
    assert nested.status == "completed"
    durations = store.query("SELECT path, duration_ms FROM steps WHERE root_run_id = ? ORDER BY path",
                            [nested.run_id])
    assert [p for p, _ in durations] == ["sub", "sub/work"]
    assert all(ms < 900 for _, ms in durations), durations
    # The timeline (what the workbench draws) shows the same durations, not the wall-clock span.
    from workbench.history import timeline

    for run_id in (result.run_id, nested.run_id):
        rows = timeline(store, run_id)
        assert rows and all(r.duration_ms < 900 for r in rows), [(r.label, r.duration_ms) for r in rows]

    # Three branches of a subgraph wait for the import at once: their caller waited for it once.
    # (Subtracting each branch's wait left the caller with 0 ms.)
    monkeypatch.setattr(client, "_litellm", None)

    def branch(value: Any, ctx: Any) -> dict[str, Any]:
        answer = ctx.llm(f"note on {value}").text
        time.sleep(0.3)  # the branch's own work after its answer (simulated, not synchronisation)
        return {"log": [answer]}

    fan = Graph("trust-fan", S)
    fan.node(name="branch")(branch)
    fan.route(START, lambda state: [Send("branch", i) for i in range(3)], targets=["branch"])
    fan.edge("branch", END)
    caller = Graph("trust-fan-caller", S)
    caller.add_node("sub", fan)
    caller.sequence(START, "sub", END)
    fanned = Runner(caller, store).run({})
    assert fanned.status == "completed", fanned.error
    [(ms,)] = store.query("SELECT duration_ms FROM steps WHERE run_id = ? AND node = 'sub'", [fanned.run_id])
    assert 250 <= ms < 1250, ms  # its branches' 0.3 s of work, without the 1 s import


# --------------------------------------------------------------------------- graph files


def test_a_graph_file_that_exits_does_not_choose_the_exit_code(tmp_path: Path) -> None:
    graph = tmp_path / "exits.py"
    graph.write_text("import sys\nsys.exit(3)\n")
    res = subprocess.run([*workbench_cmd(), "run", str(graph), "--db", str(tmp_path / "e.duckdb")],
                         capture_output=True, text=True, env=cli_env(), timeout=TIMEOUT)
    assert res.returncode == 2
    assert "exit(3)" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e.duckdb").exists()  # nothing was created for it


def test_editing_a_file_marks_only_the_nodes_that_changed(tmp_path: Path) -> None:
    from workbench.loader import load_graph

    source = textwrap.dedent("""
        from typing import TypedDict
        from workbench import END, START, Graph

        class S(TypedDict):
            x: int

        sub = Graph("sub", S)

        @sub.node
        def inner(state):
            return {"x": state["x"] + 1}

        sub.sequence(START, "inner", END)

        graph = Graph("outer", S)
        graph.add_node("nested", sub)

        @graph.node
        def after(state):
            return {"x": state["x"] * 2}

        graph.sequence(START, "nested", "after", END)
    """)
    path = tmp_path / "outer.py"
    path.write_text(source)
    before = load_graph(str(path)).node_versions()
    path.write_text(source.replace('return {"x": state["x"] * 2}', 'return {"x": state["x"] * 3}'))
    changed = load_graph(str(path)).changed_since(before)
    assert changed == ["after"]  # not "nested": the subgraph's code did not change


def test_recording_leaves_no_batch_files_in_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    simple = str(HERE / "graphs" / "simple.py")
    res = subprocess.run([*workbench_cmd(), "run", simple, "--db", str(tmp_path / "t.duckdb")],
                         capture_output=True, text=True, env=cli_env(TMPDIR=str(tmpdir)), timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("workbench-")] == []


# A foreign program that takes the file as soon as this process lets go of it, and keeps it.
HOLDER = textwrap.dedent("""
    import sys, duckdb
    while True:
        try:
            con = duckdb.connect(sys.argv[1])
            break
        except duckdb.IOException:
            continue
    print("ready", flush=True)
    sys.stdin.read()
""")


def test_a_store_that_cannot_be_updated_is_reported_once_and_keeps_the_records(tmp_path: Path) -> None:
    """The writer cannot load into DuckDB (here: a foreign process holds the file after the run
    started): the run's records stay in the journal and the next open loads them."""
    db = str(tmp_path / "held.duckdb")
    TraceStore(db).close()
    store = TraceStore(db, busy_timeout=1)
    store.backend._db.foreign_timeout = 0.2  # type: ignore[attr-defined]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = Runner(_graph(lambda s: {"log": ["kept"]}), store).run({})
        assert result.status == "completed"
        with pytest.raises(StoreError, match="safe in"):
            store.flush(timeout=5)
        store.close()
        assert store.close_warning and "safe in" in store.close_warning
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=TIMEOUT)
    with TraceStore(db) as again:
        assert again.state_at(result.run_id, 1)["log"] == ["kept"]

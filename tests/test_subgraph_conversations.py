"""Conversations whose turns run subgraphs (tests/graphs/subtalk.py): a new message supersedes
the questions asked inside a subgraph and its subgraph runs' pending work too; a subgraph's run is
never continued or deleted on its own (it is part of its root run's turn)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import run_cli

from workbench import END, START, Graph, Runner, append, interrupt
from workbench.errors import RunStateError
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.store import TraceStore

SUBTALK = str(Path(__file__).resolve().parent / "graphs" / "subtalk.py")
TIMEOUT = 120
TABLES = ("wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_interrupts", "wb_events", "wb_deleted")


@pytest.fixture
def subtalk() -> Graph:
    return load_graph(SUBTALK)


def counts(store: TraceStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def waiting_turn(store: TraceStore, graph: Graph, **options: Any) -> tuple[Runner, str]:
    """A conversation whose second turn stopped inside the subgraph; returns that turn's id."""
    runner = Runner(graph, store)
    first = runner.run({"messages": ["hi"]})
    second = runner.continue_run(first.run_id, {"messages": "ask me"}, **options)
    assert second.status in ("waiting", "paused")
    return runner, second.run_id


# ---------------------------------------------------------------- superseding


@pytest.mark.parametrize("stop", ["waiting", "paused"])
def test_a_new_message_supersedes_what_waits_inside_a_subgraph(store: TraceStore, subtalk: Graph,
                                                                 stop: str) -> None:
    options = {"break_before": ["talk/confirm"]} if stop == "paused" else {}
    runner, old = waiting_turn(store, subtalk, **options)
    child = f"{old}/2.0.0"
    assert store.query("SELECT status FROM subgraph_runs WHERE run_id = ?", [child]) == [(stop,)]
    asked = 1 if stop == "waiting" else 0
    assert store.query("SELECT count(*) FROM interrupts WHERE root_run_id = ? AND status = 'open'", [old]) == [(asked,)]

    new = runner.continue_run(old, {"messages": "bye"})
    assert new.state["messages"] == ["hi", "echo hi", "ask me", "bye", "echo bye"]
    # The question asked inside the subgraph is closed unanswered with its turn.
    rows = store.query("SELECT run_id, interrupt_id, status, response FROM interrupts WHERE root_run_id = ?", [old])
    assert rows == ([(child, "2.0.0/2.0.1.0", "closed", None)] if asked else [])
    assert store.query("SELECT count(*) FROM wb_interrupts WHERE resumed_at IS NULL") == [(0,)]
    # The subgraph's run that stopped is the turn's pending work: superseded with it.
    [(status, error)] = store.query("SELECT status, error FROM subgraph_runs WHERE run_id = ?", [child])
    assert status == "superseded"
    assert error == (f"superseded: run {old} was continued with new input by run {new.run_id}; "
                     "the pending work of step 2 was discarded")
    events = {e["run_id"]: e["detail"] for e in store.query_dicts(
        "SELECT run_id, detail FROM events WHERE kind = 'superseded' AND root_run_id = ?", [old])}
    assert json.loads(events[old]) == {"by": new.run_id, "from_status": stop, "discarded_step": 2,
                                       "open_interrupts": asked}
    assert json.loads(events[child]) == {"by": new.run_id, "from_status": stop, "discarded_step": 2,
                                         "open_interrupts": asked}
    # The superseded turn still replays as it stood, its subgraph's run included.
    replayed = replay_run(store, old, subtalk)
    assert replayed.identical, replayed.divergence
    with pytest.raises(RunStateError, match=f"superseded by run {new.run_id}"):
        runner.resume(old, "yes")


class Deep(TypedDict):
    log: Annotated[list[str], append]


def test_superseding_reaches_subgraph_runs_at_any_depth(store: TraceStore) -> None:
    inner = Graph("deep_inner", Deep)
    inner.add_node("ask", lambda s: {"log": [str(interrupt("sure?"))]})
    inner.sequence(START, "ask", END)
    mid = Graph("deep_mid", Deep)
    mid.add_node("note", lambda s: {"log": ["noted"]})
    mid.add_node("inner", inner)
    mid.sequence(START, "note", "inner", END)
    root = Graph("deep_root", Deep)
    root.add_node("mid", mid)
    root.sequence(START, "mid", END)
    runner = Runner(root, store)
    first = runner.run({"log": ["start"]})
    assert first.status == "waiting"
    deepest = f"{first.run_id}/1.0.0/2.0.0"
    assert store.query("SELECT interrupt_id FROM interrupts WHERE status = 'open'") == [("1.0.0/2.0.0/1.0.1.0",)]

    second = runner.continue_run(first.run_id, {"log": ["again"]})
    assert second.status == "waiting"  # the new turn asks afresh, in its own subgraph runs
    rows = store.query("SELECT run_id, status FROM subgraph_runs WHERE root_run_id = ? ORDER BY run_id",
                       [first.run_id])
    assert rows == [(f"{first.run_id}/1.0.0", "superseded"), (deepest, "superseded")]
    assert store.query("SELECT status FROM interrupts WHERE root_run_id = ?", [first.run_id]) == [("closed",)]
    [detail] = [e["detail"] for e in store.events(first.run_id) if e["kind"] == "superseded"]
    assert detail["open_interrupts"] == 1
    # Only the new turn's question is open.
    assert store.query("SELECT root_run_id FROM interrupts WHERE status = 'open'") == [(second.run_id,)]


# ---------------------------------------------------------------- refused: continue, delete


def test_a_subgraph_run_is_not_continued(store: TraceStore, subtalk: Graph) -> None:
    runner, old = waiting_turn(store, subtalk)
    child = f"{old}/2.0.0"
    before = counts(store)
    inner_runner = Runner(load_graph(f"{SUBTALK}:inner"), store)
    for who in (inner_runner, runner):  # named with the subgraph's own graph, or with the root's
        with pytest.raises(RunStateError) as err:
            who.continue_run(child, {"messages": "bye"})
        assert str(err.value) == (f"run {child} is subgraph 'talk' of run {old}; use that run "
                                  f"(continue {old} with the new input)")
        with pytest.raises(RunStateError, match="is subgraph 'talk' of run"):
            who.run({"messages": ["bye"]}, continue_from=child)
    assert counts(store) == before  # nothing recorded, nothing superseded
    assert store.query("SELECT status FROM subgraph_runs WHERE run_id = ?", [child]) == [("waiting",)]


def test_a_subgraph_run_is_not_deleted_alone(store: TraceStore, subtalk: Graph) -> None:
    runner = Runner(subtalk, store)
    done = runner.run({"messages": ["hi"]})
    child = f"{done.run_id}/1.0.0"
    before = counts(store)
    with pytest.raises(RunStateError) as err:
        store.delete_runs([child])
    assert str(err.value) == (f"run {child} is a subgraph run of run {done.run_id}: delete {done.run_id} "
                              "(with its subgraph runs) instead")
    with pytest.raises(RunStateError, match="is a subgraph run of run"):
        store.delete_runs([done.run_id, child], with_descendants=True)
    assert counts(store) == before
    assert replay_run(store, done.run_id, subtalk).identical
    # The root goes with its subgraph runs, as always.
    assert store.delete_runs([done.run_id]) == [done.run_id]
    assert store.query("SELECT count(*) FROM wb_runs") == [(0,)]
    assert sorted(r[0] for r in store.query("SELECT run_id FROM wb_deleted")) == [done.run_id, child]


# ---------------------------------------------------------------- the CLI


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_cli_supersede_continue_and_rm_with_subgraph_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--db", db, cwd=tmp_path, timeout=TIMEOUT)

    assert run("run", SUBTALK, "--input", '{"messages": ["hi"]}').returncode == 0
    res = run("run", SUBTALK, "--continue", "last", "--input", '{"messages": "ask me"}', "--json")
    assert res.returncode == 3, res.stderr
    old = json.loads(res.stdout)["run_id"]
    child = f"{old}/2.0.0"
    inner = f"{SUBTALK}:inner"
    for graph in (inner, SUBTALK):
        line = one_line(run("run", graph, "--continue", child, "--input", '{"messages": "bye"}'))
        assert line == (f"workbench: error: run {child} is subgraph 'talk' of run {old}; use that run "
                        f"(continue {old} with the new input)")
    assert one_line(run("rm", child)) == (f"workbench: error: run {child} is a subgraph run of run {old}: "
                                          f"delete {old} (with its subgraph runs) instead")
    assert json.loads(run("runs", "--json").stdout)[0]["run_id"] == old  # nothing was recorded

    assert run("run", SUBTALK, "--continue", old, "--input", '{"messages": "bye"}').returncode == 0
    shown = run("show", old).stdout
    assert "interrupt 2.0.0/2.0.1.0" in shown and "closed unanswered" in shown and "— open" not in shown
    res = run("sql", f"SELECT status FROM subgraph_runs WHERE run_id = '{child}'", "--format", "json")
    assert json.loads(res.stdout) == [{"status": "superseded"}]
    assert run("replay", old, "--graph", SUBTALK).returncode == 0
    res = run("rm", old, "--with-descendants", "--json")
    assert res.returncode == 0, res.stderr
    res = run("sql", "SELECT count(*) AS n FROM wb_runs", "--format", "json")
    assert json.loads(res.stdout) == [{"n": 2}]  # the first turn, and its subgraph's run

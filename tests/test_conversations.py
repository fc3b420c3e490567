"""Conversations (issue 9 §2): a run continued with new input is the next turn of one chain —
listed, shown, replayed, forked at any turn, diffed, exported; a run that had not completed is
superseded visibly; run ids are never reused; runs are deleted for good, whole or not at all."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import run_cli

from workbench import END, START, Runner
from workbench.compare import compare_runs
from workbench.errors import InputError, RunNotFoundError, RunStateError
from workbench.graph import Graph
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.runtime.conversation import conversation_turns
from workbench.store import TraceStore
from workbench.store.journal import Journal
from workbench.store.spool import host_name
from workbench.transfer import export_runs, import_files

HERE = Path(__file__).resolve().parent
TALK = str(HERE / "graphs" / "talk.py")
TIMEOUT = 120


@pytest.fixture
def talk() -> Graph:
    return load_graph(TALK)


def chat(runner: Runner, *messages: str) -> list[Any]:
    """A conversation: the first message starts a run, each next one continues the last."""
    results = [runner.run({"messages": [messages[0]]})]
    for text in messages[1:]:
        results.append(runner.continue_run(results[-1].run_id, {"messages": text}))
    return results


def counts(store: TraceStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0]
            for t in ("wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_interrupts", "wb_events")}


# ---------------------------------------------------------------- continuing


def test_each_turn_continues_the_last_state_through_the_merge_rules(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    a, b, c = chat(runner, "hi", "how are you", "bye")
    assert c.status == "completed"
    assert c.state["messages"] == ["hi", "echo hi", "how are you", "echo how are you", "bye", "echo bye"]
    assert c.state["turns"] == 3  # an add rule keeps adding across turns
    # Step numbers go on across turns, each turn within the graph's step limit of 2.
    assert [r.step for r in (a, b, c)] == [1, 2, 3]
    rows = {r["run_id"]: r for r in store.query_dicts("SELECT * FROM runs")}
    assert rows[b.run_id]["parent_run_id"] == a.run_id and rows[b.run_id]["fork_step"] == 1
    assert rows[b.run_id]["relation"] == rows[c.run_id]["relation"] == "continuation"
    assert rows[a.run_id]["relation"] is None
    assert json.loads(rows[c.run_id]["input"]) == {"messages": "bye"}
    # The history is shared, not copied: the last turn stores only its own input and step.
    own = store.query("SELECT step, key, op FROM wb_changes WHERE run_id = ? ORDER BY step, key", [c.run_id])
    assert own == [(2, "messages", "extend"), (3, "messages", "extend"), (3, "turns", "set")]
    assert store.state_at(c.run_id, 2)["messages"][-1] == "bye"  # the input, before the turn ran
    assert [t["run_id"] for t in conversation_turns(store, c.run_id)] == [a.run_id, b.run_id, c.run_id]
    event = next(e for e in store.events(c.run_id) if e["kind"] == "continued")
    assert event["detail"] == {"from": b.run_id, "from_status": "completed", "at": 2, "keys": ["messages"]}
    # A completed turn stays completed; it can be continued again (a second branch).
    assert store.get_run(b.run_id)["status"] == "completed"
    other = runner.continue_run(b.run_id, {"messages": "other"})
    assert other.state["messages"][-2:] == ["other", "echo other"]
    assert store.get_run(c.run_id)["status"] == "completed"


def test_continue_from_option_of_run_and_a_plain_key(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    first = runner.run({"messages": ["hi"], "mood": "calm"})
    second = runner.run({"messages": ["and you?"], "mood": "curious"}, continue_from=first.run_id)
    assert second.state["mood"] == "curious"  # a key without a merge rule is replaced
    assert second.state["messages"] == ["hi", "echo hi", "and you?", "echo and you?"]
    assert store.get_run(second.run_id)["parent_run_id"] == first.run_id


def test_a_waiting_run_continued_is_superseded_visibly(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    first = runner.run({"messages": ["ask me"]})
    assert first.status == "waiting" and first.step == 2
    nxt = runner.continue_run(first.run_id, {"messages": "never mind"})
    assert nxt.status == "completed"
    # Started from the last committed state (step 1): the waiting step's work is discarded.
    assert nxt.state["messages"] == ["ask me", "echo ask me", "never mind", "echo never mind"]
    old = store.get_run(first.run_id)
    assert old["status"] == "superseded"
    assert old["error"] == (f"superseded: continued with new input by run {nxt.run_id}; the pending work of "
                            "step 2 was discarded")
    [question] = store.interrupts(first.run_id)
    assert question["resumed_at"] is not None and question["response"] is None  # closed, unanswered
    assert question["closed"] and question["status"] == "closed"
    assert store.query("SELECT status, response FROM interrupts WHERE run_id = ?", [first.run_id]) == [("closed", None)]
    # Read, replayed: the superseded turn replays as recorded, up to its unanswered question.
    replayed = replay_run(store, first.run_id, talk)
    assert replayed.identical, replayed.divergence
    [event] = [e for e in store.events(first.run_id) if e["kind"] == "superseded"]
    assert event["step"] == 2
    assert event["detail"] == {"by": nxt.run_id, "from_status": "waiting", "discarded_step": 2,
                               "open_interrupts": 1}
    with pytest.raises(RunStateError, match=f"superseded by run {nxt.run_id}.*resume or continue {nxt.run_id}"):
        runner.resume(first.run_id, "yes")
    # Compare counts its steps as the Runs table does: the discarded step 2 never ran (it said 2).
    listed = {r["run_id"]: r["steps"] for r in store.list_runs()}
    totals = compare_runs(store, first.run_id, nxt.run_id).totals
    assert (totals["a"]["steps"], totals["b"]["steps"]) == (listed[first.run_id], listed[nxt.run_id]) == (1, 2)
    with pytest.raises(RunStateError, match="superseded"):
        runner.continue_run(first.run_id, {"messages": "again"})


def test_paused_and_failed_runs_are_superseded_too(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    paused = runner.run({"messages": ["hi"]}, break_before=["reply"])
    assert paused.status == "paused"
    nxt = runner.continue_run(paused.run_id, {"messages": "there"})
    assert nxt.state["messages"] == ["hi", "there", "echo there"]  # step 1 never ran
    assert store.get_run(paused.run_id)["status"] == "superseded"
    assert not store.get_run(nxt.run_id)["config"].get("break_before")  # breakpoints are not inherited

    failed = runner.continue_run(nxt.run_id, {"messages": "fail now"})
    assert failed.status == "failed"
    fixed = runner.continue_run(failed.run_id, {"messages": "ok then"})
    assert fixed.status == "completed"
    old = store.get_run(failed.run_id)
    assert old["status"] == "superseded"
    # A failed run keeps its failure, with what superseded it.
    assert old["error"].startswith("node 'reply' failed") and f"by run {fixed.run_id}" in old["error"]
    assert fixed.state["messages"][-3:] == ["fail now", "ok then", "echo ok then"]
    for superseded in (paused.run_id, failed.run_id):  # each replays as it stood when superseded
        replayed = replay_run(store, superseded, talk)
        assert replayed.identical, (superseded, replayed.divergence)


def test_bad_input_or_a_taken_id_records_nothing(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    first = runner.run({"messages": ["ask me"]})
    before = counts(store)
    with pytest.raises(InputError, match="unknown"):
        runner.continue_run(first.run_id, {"nope": 1})
    with pytest.raises(InputError, match="mood"):
        runner.continue_run(first.run_id, {"messages": "x", "mood": 3})
    with pytest.raises(InputError, match="JSON object"):
        runner.continue_run(first.run_id, ["x"])  # type: ignore[arg-type]
    with pytest.raises(RunNotFoundError):
        runner.continue_run("no-such-run", {"messages": "x"})
    # Reusing a run id is a clear error, and the waiting run is left as it was.
    with pytest.raises(RunStateError, match="already used"):
        runner.continue_run(first.run_id, {"messages": "x"}, new_run_id=first.run_id)
    assert counts(store) == before
    assert store.get_run(first.run_id)["status"] == "waiting"
    assert runner.resume(first.run_id, "yes").state["messages"][-1] == "confirmed yes"


def test_another_graph_or_a_run_recorded_right_now_is_refused(store: TraceStore, talk: Graph) -> None:
    other = Graph("other", dict)

    @other.node
    def only(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    other.edge(START, "only")
    other.edge("only", END)
    done = Runner(talk, store).run({"messages": ["hi"]})
    with pytest.raises(RunStateError, match="belongs to graph 'talk'"):
        Runner(other, store).continue_run(done.run_id, {})

    seen: list[str] = []
    live = Graph("live", dict)

    def continue_myself(run_id: str) -> None:
        try:
            Runner(live, store).continue_run(run_id, {})
        except RunStateError as exc:
            seen.append(str(exc))

    @live.node
    def myself(state: dict[str, Any], ctx: Any) -> dict[str, Any]:
        # (in a thread: this node runs on the run's event loop)
        helper = threading.Thread(target=continue_myself, args=(ctx.run_id,))
        helper.start()
        helper.join()
        try:
            store.delete_runs([ctx.run_id])
        except RunStateError as exc:
            seen.append(str(exc))
        return {}

    live.edge(START, "myself")
    live.edge("myself", END)
    assert Runner(live, store).run({}).status == "completed"
    assert len(seen) == 2 and all("being recorded right now" in s for s in seen), seen


# ---------------------------------------------------------------- the chain as a whole


def test_replay_fork_at_any_turn_and_diff(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    a, b, c = chat(runner, "ask first", "second", "third")
    assert a.status == "waiting"
    report = replay_run(store, c.run_id, talk)
    assert report.identical, report.divergence
    # Turn 1 waited at step 2 (discarded when turn 2 continued it from step 1).
    assert (report.steps, report.status) == (3, "completed")
    # Fork the last turn at the second turn's step, with an edit: it shares turn 1's history.
    fork = runner.fork(c.run_id, 2, set_state={"mood": "edited"})
    assert fork.state["messages"][-2:] == ["second", "echo second"]
    assert fork.state["mood"] == "edited"
    assert replay_run(store, fork.run_id, talk).identical
    # Fork at the first step of a turn: its input is part of the shared history.
    again = runner.fork(c.run_id, 3)
    assert again.state["messages"][-2:] == ["third", "echo third"]
    assert replay_run(store, again.run_id, talk).identical
    cmp = compare_runs(store, b.run_id, c.run_id)
    assert cmp.to_json()["b"]["relation"] == "continuation"
    assert [s.step for s in cmp.steps if not s.same][-1] == 3


def test_a_fork_inside_a_turn_is_credited_with_that_turns_steps_and_outcome(store: TraceStore, talk: Graph,
                                                                           tmp_path: Path) -> None:
    """The turns of a fork made at a turn's first step or inside it: the turn keeps the input of
    the run that started it, but its steps from the fork on and how it ended are the fork's
    (the turn's starter used to be listed with its own status, the fork nowhere)."""
    runner = Runner(talk, store)
    a, b, c = chat(runner, "hi", "second", "third")
    # Turn 3 (c) starts at step 3; a fork there that fails redoes the whole turn.
    failed = runner.fork(c.run_id, 3, set_state={"messages": ["fail now"]})
    assert failed.status == "failed"
    turns = conversation_turns(store, failed.run_id)
    assert [(t["run_id"], t["first_step"], t["last_step"]) for t in turns] == [
        (a.run_id, 1, 1), (b.run_id, 2, 2), (c.run_id, 3, 3)]
    assert turns[-1]["status"] == "failed" and turns[-1]["input"] == {"messages": "third"}
    assert turns[-1]["redone_by"] == {"run_id": failed.run_id, "from_step": 3}
    assert "redone_by" not in turns[1] and turns[1]["status"] == "completed"
    # A fork at turn 2's first step of the last run: two turns, the second one this fork's.
    waiting = runner.fork(c.run_id, 2, set_state={"messages": ["ask again"]})
    assert waiting.status == "waiting"
    turns = conversation_turns(store, waiting.run_id)
    assert [(t["run_id"], t["status"]) for t in turns] == [(a.run_id, "completed"), (b.run_id, "waiting")]
    assert turns[-1]["redone_by"] == {"run_id": waiting.run_id, "from_step": 2}
    # The turn's own run is unchanged by any of this, and shown as itself.
    assert [t.get("redone_by") for t in conversation_turns(store, c.run_id)] == [None, None, None]
    store.close()
    shown = run_cli("show", failed.run_id, "--db", str(tmp_path / "trace.duckdb"), cwd=tmp_path)
    assert f"turn 3  {c.run_id}, redone by this run from step 3  step 3  failed" in shown.stdout, shown.stdout


def test_replay_finds_a_divergence_in_an_earlier_turn(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    _, _, c = chat(runner, "hi", "ask now", "bye")
    changed = Graph("talk", talk.schema.schema, max_steps=2)

    @changed.node
    def reply(state: Any) -> dict[str, Any]:
        return {"messages": [f"ECHO {state['messages'][-1]}"], "turns": 1}

    changed.edge(START, "reply")
    changed.edge("reply", END)
    report = replay_run(store, c.run_id, changed)
    assert report.divergence is not None
    assert (report.divergence.step, report.divergence.kind) == (1, "update")
    # A turn that now ends where its recording went on to ask a human is a divergence at its end.
    ends_early = Graph("talk", talk.schema.schema, max_steps=2)

    @ends_early.node  # type: ignore[no-redef]
    def reply(state: Any) -> dict[str, Any]:  # noqa: F811
        return talk.nodes["reply"].fn(state)

    ends_early.edge(START, "reply")
    ends_early.edge("reply", END)
    report = replay_run(store, c.run_id, ends_early)
    assert report.divergence is not None and report.divergence.kind == "end"
    assert report.divergence.step == 2 and "next turn" in report.divergence.message


def test_export_and_import_carry_the_chain(store: TraceStore, talk: Graph, tmp_path: Path) -> None:
    a, b, c = chat(Runner(talk, store), "hi", "ask you", "bye")
    out = str(tmp_path / "chat.jsonl")
    assert export_runs(store, [c.run_id], out) == [a.run_id, b.run_id, c.run_id]
    with TraceStore(str(tmp_path / "other.duckdb")) as other:
        assert import_files(other, [out])["imported"] == [a.run_id, b.run_id, c.run_id]
        row = other.get_run(c.run_id)
        assert (row["relation"], row["parent_run_id"]) == ("continuation", b.run_id)
        assert other.get_run(b.run_id)["status"] == "superseded"
        assert other.state_at(c.run_id, 4)["messages"] == store.state_at(c.run_id, 4)["messages"]
        assert replay_run(other, c.run_id, talk).identical


# ---------------------------------------------------------------- deleting


def test_delete_refuses_descendants_unless_asked(store: TraceStore, talk: Graph) -> None:
    runner = Runner(talk, store)
    a, b, c = chat(runner, "hi", "two", "three")
    fork = runner.fork(a.run_id, 1)
    lone = runner.run({"messages": ["alone"]})
    before = counts(store)
    with pytest.raises(RunStateError, match=f"run {a.run_id} has a .*with-descendants"):
        store.delete_runs([a.run_id])
    with pytest.raises(RunNotFoundError):
        store.delete_runs([lone.run_id, "missing"])
    assert counts(store) == before  # nothing at all
    assert store.delete_runs([c.run_id]) == [c.run_id]  # a leaf goes alone
    deleted = store.delete_runs([a.run_id], with_descendants=True)
    assert deleted[0] == a.run_id and set(deleted) == {a.run_id, b.run_id, fork.run_id}
    assert [r["run_id"] for r in store.list_runs()] == [lone.run_id]
    for table in ("wb_tasks", "wb_changes", "wb_supersteps", "wb_events", "wb_interrupts", "wb_llm_calls"):
        assert store.query(f"SELECT count(*) FROM {table} WHERE run_id != ?", [lone.run_id]) == [(0,)], table
    # The id of a deleted run is not reused (a late record of it would be taken for the new one's).
    with pytest.raises(RunStateError, match="deleted"):
        runner.run({"messages": ["x"]}, run_id=a.run_id)
    with pytest.raises(RunStateError, match="already used"):
        runner.continue_run(lone.run_id, {"messages": "x"}, new_run_id=b.run_id)


def test_records_of_a_deleted_run_arriving_later_are_dropped(store: TraceStore, talk: Graph) -> None:
    gone = Runner(talk, store).run({"messages": ["hi"]})
    kept = Runner(talk, store).run({"messages": ["stay"]})
    store.delete_runs([gone.run_id])
    # From this process's own journal (a record written after the delete)...
    store.record("event", {"run_id": gone.run_id, "step": 1, "kind": "late", "node": None, "detail": "{}",
                           "created_at": 0})
    store.flush()
    # ...and from the journal of a process that died before it was loaded.
    gone_process = subprocess.Popen(["true"])
    gone_process.wait()
    journal = Journal(store.spool.journals, f"{host_name()}-{gone_process.pid}-deadbeef.1")
    journal.append([("run", {"run_id": gone.run_id, "graph": "talk", "status": "running", "started_at": 0}),
                    ("change", {"run_id": gone.run_id, "step": 0, "key": "messages", "op": "set", "value": "[]"}),
                    ("event", {"run_id": kept.run_id, "step": 1, "kind": "late", "node": None, "detail": "{}",
                               "created_at": 0})])
    journal.close()
    assert store.sweep() == 1
    assert store.query("SELECT count(*) FROM wb_runs WHERE run_id = ?", [gone.run_id]) == [(0,)]
    for table in ("wb_changes", "wb_events", "wb_tasks", "wb_supersteps"):
        assert store.query(f"SELECT count(*) FROM {table} WHERE run_id = ?", [gone.run_id]) == [(0,)], table
    # Records of other runs in the same frame are loaded.
    assert [e["kind"] for e in store.events(kept.run_id)][-1] == "late"


def test_a_delete_that_fails_midway_changes_nothing(store: TraceStore, talk: Graph,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.store.deletion as deletion

    _, _, c = chat(Runner(talk, store), "hi", "two", "three")
    before = counts(store)
    # The last table deleted from does not exist: the transaction fails after the others' deletes.
    monkeypatch.setattr(deletion, "INSERTS", {**deletion.INSERTS, "zz": ("wb_zz_missing", [])})
    with pytest.raises(duckdb.CatalogException):
        store.delete_runs([c.run_id])
    assert counts(store) == before
    assert store.query("SELECT count(*) FROM wb_deleted") == [(0,)]


def test_importing_a_deleted_run_brings_it_back(store: TraceStore, talk: Graph, tmp_path: Path) -> None:
    run = Runner(talk, store).run({"messages": ["hi"]})
    out = str(tmp_path / "one.jsonl")
    export_runs(store, [run.run_id], out)
    store.delete_runs([run.run_id])
    assert import_files(store, [out])["imported"] == [run.run_id]
    assert store.state_at(run.run_id, 1)["messages"] == ["hi", "echo hi"]


# ---------------------------------------------------------------- the CLI


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli)."""
    return run_cli(*args, cwd=cwd, timeout=TIMEOUT)


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_cli_continue_show_runs_replay_and_rm(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return wb(*args, "--db", db, cwd=tmp_path)

    first = json.loads(run("run", TALK, "--input", '{"messages": ["ask you"]}', "--json").stdout)
    assert first["status"] == "waiting"
    res = run("run", TALK, "--continue", first["run_id"][:12], "--input", '{"messages": "no"}', "--json")
    assert res.returncode == 0, res.stderr
    second = json.loads(res.stdout)
    assert second["state"]["messages"] == ["ask you", "echo ask you", "no", "echo no"]
    res = run("run", TALK, "--continue", "last", "--input", '{"messages": "fail please"}', "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["status"] == "failed"
    res = run("run", TALK, "--continue", "last", "--input", '{"messages": "bye"}')
    assert res.returncode == 0, res.stderr
    assert "continues the conversation of" in res.stdout
    last = json.loads(run("runs", "--json").stdout)[0]
    assert last["relation"] == "continuation"

    shown = run("show", "last")
    assert "conversation: 4 turns" in shown.stdout and "(this run)" in shown.stdout, shown.stdout
    assert "superseded" in shown.stdout
    data = json.loads(run("show", "last", "--json").stdout)
    # The failed third turn is superseded by the fourth, which starts where it started.
    assert [t["first_step"] for t in data["conversation"]] == [1, 2, 3, 3]
    assert data["run"]["relation"] == "continuation"
    table = run("runs").stdout
    assert "(continues)" in table and "superseded" in table
    assert run("replay", "last", "--graph", TALK).returncode == 0

    assert "superseded by run" in one_line(run("resume", first["run_id"], "--input", '"yes"', "--graph", TALK))
    assert "unknown" in one_line(run("run", TALK, "--continue", "last", "--input", '{"nope": 1}'))
    assert "no run 'zzz'" in one_line(run("run", TALK, "--continue", "zzz", "--input", "{}"))
    assert "--with-descendants" in one_line(run("rm", first["run_id"]))
    assert "no run" in one_line(run("rm", "zzz"))
    res = run("rm", first["run_id"], "--with-forks", "--json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["deleted"]) == 4
    assert json.loads(run("runs", "--json").stdout) == []
    assert "no run of graph 'talk'" in one_line(run("run", TALK, "--continue", "last", "--input", "{}"))


def test_chat_demo_remembers_across_turns(project: Path) -> None:
    env_db = str(project / "traces" / "chat.duckdb")
    graph = load_graph("chat")
    with TraceStore(env_db) as store:
        runner = Runner(graph, store)
        first = runner.run({"messages": [{"role": "user", "content": "Hi, my name is Ada"}]})
        assert first.state["messages"][-1]["content"] == "Nice to meet you, Ada! What can I do for you?"
        ask = runner.continue_run(first.run_id, {"messages": {"role": "user", "content": "Please order a pizza"}})
        assert ask.status == "waiting" and ask.interrupt["options"] == ["yes", "no"]
        nxt = runner.continue_run(ask.run_id, {"messages": {"role": "user", "content": "What is my name?"}})
        assert nxt.state["messages"][-1]["content"] == "You told me your name is Ada."
        assert nxt.state["turns"] == 3
        assert store.get_run(ask.run_id)["status"] == "superseded"
        assert replay_run(store, nxt.run_id, graph).identical

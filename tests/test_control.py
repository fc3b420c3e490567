"""Control from inside a node, through the public API: Commands (update + where to go next),
interrupt ids and choosing what a resume answers or closes, deferred nodes, Overwrite and lists
of updates, cancelling the siblings of a failed branch, several retry policies with a fresh
budget per resume, and build-time checks of merge rules."""

from __future__ import annotations

import asyncio
import operator
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import (
    END,
    START,
    Command,
    Graph,
    Overwrite,
    RetryPolicy,
    Runner,
    Send,
    append,
    interrupt,
)
from workbench.errors import GraphDefinitionError, InputError, RunStateError
from workbench.loader import load_graph
from workbench.render import to_ascii, to_mermaid
from workbench.replay import replay_run
from workbench.store import TraceStore

CONTROL = Path(__file__).parent / "graphs" / "control.py"


def graph(name: str) -> Graph:
    return load_graph(f"{CONTROL}:{name}")


class State(TypedDict):
    topic: str
    log: Annotated[list[str], append]
    answer: str


# ---------------------------------------------------------------- Command


def test_command_goes_where_the_node_says_and_is_recorded(store: TraceStore) -> None:
    g = graph("jump")
    first = Runner(g, store).run({"topic": "cats"})
    assert first.status == "waiting"
    done = Runner(g, store).resume(first.run_id, "n")
    assert done.status == "completed", done.error
    assert done.state["log"] == ["asked", "no"] and done.state["answer"] == "n"
    rows = store.query("SELECT node, status, goto FROM steps WHERE run_id = ? AND status = 'completed' "
                       "ORDER BY step", [first.run_id])
    assert rows[0][0] == "ask" and rows[0][2] == '["no"]'
    assert [r[0] for r in rows] == ["ask", "no"]
    # A replay follows the recorded answer and the Command, with no live call.
    report = replay_run(store, first.run_id, graph("jump"))
    assert report.identical, report.divergence


def test_command_to_an_undeclared_node_fails_the_node_naming_both(store: TraceStore) -> None:
    g = Graph("bad_goto", State)

    @g.node(goto=["b"])
    def a(state: State) -> Command:
        return Command(update={"answer": "x"}, goto="c")

    @g.node
    def b(state: State) -> dict[str, Any]:
        return {}

    @g.node
    def c(state: State) -> dict[str, Any]:
        return {}

    g.edge(START, "a")
    g.edge(START, "c")
    g.edge("b", END)
    g.edge("c", END)
    res = Runner(g, store).run({})
    assert res.status == "failed"
    assert "node 'a'" in (res.error or "") and "'c'" in (res.error or "") and "declared: b" in (res.error or "")
    # Not retried: the same code returns the same Command.
    assert [t["attempt"] for t in store.tasks(res.run_id) if t["node"] == "a"] == [1]


def test_goto_destinations_are_validated_and_drawn() -> None:
    g = Graph("drawn", State)

    @g.node(goto=["nowhere"])
    def a(state: State) -> None:
        return None

    g.edge(START, "a")
    with pytest.raises(GraphDefinitionError, match=r"node 'a': goto to unknown node 'nowhere'"):
        g.validate()
    with pytest.raises(GraphDefinitionError, match="goto must be a list of node names"):
        Graph("g2", State).node(lambda s: None, name="x", goto=[1])  # type: ignore[list-item]
    # A node whose only way on is its Command's destinations is a valid graph.
    jump = graph("jump")
    assert "ask  [" not in to_ascii(jump)
    assert "─»▶ yes" in to_ascii(jump) and "─»▶ no" in to_ascii(jump)
    assert "n_ask -.->|goto| n_yes" in to_mermaid(jump)


def test_send_targets_fan_out_again_through_commands(store: TraceStore) -> None:
    res = Runner(graph("fanout"), store).run({"topic": "x,y"})
    assert res.status == "completed", res.error
    assert res.state["log"] == ["topic x", "topic y", "part x.1", "part x.2", "part y.1", "part y.2"]
    plans = store.query("SELECT step, tasks FROM supersteps WHERE run_id = ? ORDER BY step", [res.run_id])
    assert '"arg":{"name":"x.1"}' in plans[2][1].replace(" ", "")
    assert replay_run(store, res.run_id, graph("fanout")).identical


def test_completed_command_is_reused_when_its_step_resumes(store: TraceStore) -> None:
    """One branch returns a Command while its sibling waits for a human: on resume the finished
    branch is not re-run, and its recorded destinations are still followed."""
    calls: list[str] = []
    g = Graph("reuse", State)

    @g.node(goto=["left", "right"])
    def chooser(state: State) -> Command:
        calls.append("chooser")
        return Command(update={"log": ["chose right"]}, goto="right")

    @g.node
    def asker(state: State) -> dict[str, Any]:
        return {"answer": interrupt("?")}

    @g.node
    def left(state: State) -> dict[str, Any]:
        return {"log": ["left"]}

    @g.node
    def right(state: State) -> dict[str, Any]:
        return {"log": ["right"]}

    g.edge(START, "chooser")
    g.edge(START, "asker")
    g.edge("asker", END)
    g.edge("left", END)
    g.edge("right", END)
    first = Runner(g, store).run({})
    assert first.status == "waiting"
    done = Runner(g, store).resume(first.run_id, "ok")
    assert done.status == "completed", done.error
    assert done.state["log"] == ["chose right", "right"] and calls == ["chooser"]


def test_fork_after_a_command_runs_from_the_recorded_path(store: TraceStore) -> None:
    first = Runner(graph("jump"), store).run({"topic": "t"})
    done = Runner(graph("jump"), store).resume(first.run_id, "y")
    assert done.state["log"] == ["asked", "yes"]
    fork = Runner(graph("jump"), store).fork(first.run_id, 2, set_state={"topic": "edited"})
    assert fork.status == "completed" and fork.state["log"] == ["asked", "yes"]
    # Forking at the step of the question asks again; answering differently jumps elsewhere.
    again = Runner(graph("jump"), store).fork(first.run_id, 1)
    assert again.status == "waiting"
    other = Runner(graph("jump"), store).resume(again.run_id, "n")
    assert other.state["log"] == ["asked", "no"]


# ---------------------------------------------------------------- interrupt ids


def test_parallel_interrupts_have_ids_and_are_answered_by_choice(store: TraceStore) -> None:
    g = graph("questions")
    first = Runner(g, store).run({})
    assert first.status == "waiting"
    ids = [i["id"] for i in first.interrupts]
    assert ids == ["1.0.1.0", "1.1.1.0"] and first.interrupt_id == "1.0.1.0"
    assert [i["node"] for i in first.interrupts] == ["p", "q"]
    view = store.query("SELECT interrupt_id, node, status FROM interrupts WHERE run_id = ? ORDER BY interrupt_id",
                       [first.run_id])
    assert view == [("1.0.1.0", "p", "open"), ("1.1.1.0", "q", "open")]
    # Answer q first, by id: p is asked again (same id), q's branch is not.
    second = Runner(g, store).resume(first.run_id, "for q", interrupt="1.1.1.0")
    assert second.status == "waiting" and [i["id"] for i in second.interrupts] == ["1.0.1.0"]
    assert len(store.interrupts(first.run_id)) == 2  # the re-asked question is not recorded twice
    done = Runner(g, store).resume(first.run_id, "for p")  # the oldest open one: p
    assert done.status == "completed", done.error
    assert done.state["log"] == ["p got for p", "q got for q", "r", "after p", "after q", "after r"]
    assert replay_run(store, first.run_id, graph("questions")).identical


def test_several_answers_at_once_and_bad_ids(store: TraceStore) -> None:
    g = graph("questions")
    first = Runner(g, store).run({})
    with pytest.raises(InputError, match=r"no interrupt '9.9.9.9'; open: 1.0.1.0 \(p\), 1.1.1.0 \(q\)"):
        Runner(g, store).resume(first.run_id, answers={"9.9.9.9": "x"})
    with pytest.raises(InputError, match="not both"):
        Runner(g, store).resume(first.run_id, "x", answers={"1.0.1.0": "x"})
    with pytest.raises(InputError, match="both answered and closed"):
        Runner(g, store).resume(first.run_id, answers={"1.0.1.0": "x"}, close=["1.0.1.0"])
    with pytest.raises(InputError, match="answers: give an object of interrupt id to answer, got list"):
        Runner(g, store).resume(first.run_id, answers=[1])  # was a bare TypeError
    with pytest.raises(InputError, match="both answered and closed"):  # one id, not its characters
        Runner(g, store).resume(first.run_id, answers={"1.0.1.0": "x"}, close="1.0.1.0")
    assert store.get_run(first.run_id)["status"] == "waiting"  # nothing was claimed
    done = Runner(g, store).resume(first.run_id, answers={"1.1.1.0": "B", "1.0.1.0": "A"})
    assert done.status == "completed"
    assert done.state["log"][:2] == ["p got A", "q got B"]
    with pytest.raises(RunStateError, match="already completed"):
        Runner(g, store).resume(first.run_id, answers={"1.0.1.0": "again"})
    paused = Runner(g, store).run({}, break_before=["p"])
    with pytest.raises(RunStateError, match="paused, not waiting for input; resume it without answers"):
        Runner(g, store).resume(paused.run_id, answers={"1.0.1.0": "x"})


def test_closing_an_interrupt_drops_its_task_and_keeps_the_siblings(store: TraceStore) -> None:
    g = graph("questions")
    first = Runner(g, store).run({})
    res = Runner(g, store).resume(first.run_id, "for q", interrupt="1.1.1.0", close=["1.0.1.0"])
    assert res.status == "completed", res.error
    # p's branch ended where it was closed; q's and r's went on.
    assert res.state["log"] == ["q got for q", "r", "after q", "after r"]
    statuses = dict(store.query("SELECT interrupt_id, status FROM interrupts WHERE run_id = ?", [first.run_id]))
    assert statuses == {"1.0.1.0": "closed", "1.1.1.0": "answered"}
    step1 = store.query("SELECT node, status FROM steps WHERE run_id = ? AND step = 1 ORDER BY task, started_at",
                        [first.run_id])
    assert ("p", "closed") in step1 and ("r", "completed") in step1
    assert [r for r in step1 if r[0] == "r"] == [("r", "completed")]  # r ran once
    events = [e for e in store.events(first.run_id) if e["kind"] == "resumed"]
    assert events[-1]["detail"]["closed"] == ["1.0.1.0"] and events[-1]["detail"]["answered"] == ["1.1.1.0"]
    assert replay_run(store, first.run_id, graph("questions")).identical


def test_close_only_then_answer_the_rest(store: TraceStore) -> None:
    g = graph("questions")
    first = Runner(g, store).run({})
    mid = Runner(g, store).resume(first.run_id, close=["1.1.1.0"])
    assert mid.status == "waiting" and [i["id"] for i in mid.interrupts] == ["1.0.1.0"]
    done = Runner(g, store).resume(first.run_id, "P")
    assert done.status == "completed" and "q got" not in " ".join(done.state["log"])
    closed_rows = store.query("SELECT count(*) FROM steps WHERE run_id = ? AND status = 'closed'", [first.run_id])
    assert closed_rows == [(1,)]  # recorded once, by the resume that closed it


# ---------------------------------------------------------------- deferred nodes


def test_deferred_node_waits_for_the_longest_branch(store: TraceStore) -> None:
    res = Runner(graph("deferred"), store).run({})
    assert res.status == "completed", res.error
    assert res.state["log"] == ["a", "b1", "b2", "summary of 3"]
    nodes = store.query("SELECT step, node FROM steps WHERE run_id = ? ORDER BY step, task", [res.run_id])
    assert nodes == [(1, "a"), (1, "b1"), (2, "b2"), (3, "summary")]
    assert "deferred" in to_ascii(graph("deferred"))


def test_deferred_node_survives_a_pause(store: TraceStore) -> None:
    g = graph("deferred")
    paused = Runner(g, store).run({}, break_after=["b2"])
    assert paused.status == "paused"
    plan = store.plan(paused.run_id, 3)
    assert plan is not None and [t["node"] for t in plan["tasks"]] == ["summary"]
    done = Runner(graph("deferred"), store).resume(paused.run_id)
    assert done.state["log"] == ["a", "b1", "b2", "summary of 3"]
    assert replay_run(store, paused.run_id, graph("deferred")).identical


def test_deferred_node_held_while_others_run(store: TraceStore) -> None:
    g = graph("deferred")
    paused = Runner(g, store).run({}, break_before=["b2"])
    plan = store.plan(paused.run_id, 2)
    assert plan is not None and [t["node"] for t in plan["tasks"]] == ["b2"]
    assert plan["joins"]["deferred"] == [{"node": "summary"}]


# ---------------------------------------------------------------- Overwrite, lists of updates


def test_overwrite_and_several_updates_in_order(store: TraceStore) -> None:
    res = Runner(graph("trim"), store).run({})
    assert res.status == "completed", res.error
    assert res.state["log"] == ["two", "three"] and res.state["answer"] == "filled"
    updates = store.query("SELECT node, \"update\" FROM steps WHERE run_id = ? ORDER BY step", [res.run_id])
    assert updates[1][1].replace(" ", "") == '{"log":{"__overwrite__":["two","three"]}}'
    assert store.query("SELECT op FROM state_changes WHERE run_id = ? AND step = 2", [res.run_id]) == [("set",)]
    assert store.state_at(res.run_id, 2)["log"] == ["two", "three"]
    assert replay_run(store, res.run_id, graph("trim")).identical


def test_two_branches_overwriting_one_key_conflict(store: TraceStore) -> None:
    g = Graph("clash", State)

    @g.node
    def x(state: State) -> dict[str, Any]:
        return {"log": Overwrite(["x"])}

    @g.node
    def y(state: State) -> dict[str, Any]:
        return {"log": Overwrite(["y"])}

    g.edge(START, "x")
    g.edge(START, "y")
    g.edge("x", END)
    g.edge("y", END)
    res = Runner(g, store).run({})
    assert res.status == "failed"
    assert "nodes 'x' and 'y' both overwrote state key 'log' in the same step" in (res.error or "")


def test_overwrite_then_append_in_one_step_and_bad_values(store: TraceStore) -> None:
    g = Graph("trim_then_add", State)

    @g.node
    def first(state: State) -> dict[str, Any]:
        return {"log": Overwrite([])}

    @g.node
    def second(state: State) -> dict[str, Any]:
        return {"log": ["added"]}

    g.edge(START, "first")
    g.edge(START, "second")
    g.edge("first", END)
    g.edge("second", END)
    res = Runner(g, store).run({"log": ["old"]})
    assert res.state["log"] == ["added"]  # plan order: the overwrite, then the append on top
    assert store.state_at(res.run_id, 1)["log"] == ["added"]

    bad = Graph("bad_overwrite", State)
    bad.node(lambda s: {"log": Overwrite("not a list")}, name="n")
    bad.sequence(START, "n", END)
    failed = Runner(bad, store).run({})
    assert failed.status == "failed" and "state key 'log' holds a list, got str" in (failed.error or "")


# ---------------------------------------------------------------- cancelling siblings


def test_a_failing_branch_cancels_its_async_siblings(store: TraceStore) -> None:
    release = {"fixed": False}
    started: list[str] = []
    g = Graph("cancel", State)

    @g.node
    async def breaks(state: State) -> dict[str, Any]:
        started.append("breaks")
        if not release["fixed"]:
            raise RuntimeError("broken")
        return {"log": ["breaks fixed"]}

    @g.node
    async def slow(state: State) -> dict[str, Any]:
        started.append("slow")
        if not release["fixed"]:
            await asyncio.Event().wait()  # never set: only a cancellation ends it
        return {"log": ["slow done"]}

    g.edge(START, "breaks")
    g.edge(START, "slow")
    g.edge("breaks", END)
    g.edge("slow", END)
    res = Runner(g, store).run({})
    assert res.status == "failed" and "broken" in (res.error or "")
    rows = {t["node"]: t["status"] for t in store.tasks(res.run_id)}
    assert rows == {"breaks": "failed", "slow": "cancelled"}
    # On resume the cancelled sibling simply runs again, with the fixed one.
    release["fixed"] = True
    done = Runner(g, store).resume(res.run_id)
    assert done.status == "completed", done.error
    assert done.state["log"] == ["breaks fixed", "slow done"]
    assert started == ["breaks", "slow", "breaks", "slow"]


def test_a_handled_failure_does_not_cancel_siblings(store: TraceStore) -> None:
    g = Graph("handled", State)
    gate: dict[str, asyncio.Event] = {}

    @g.node(on_error="handler")
    async def breaks(state: State) -> dict[str, Any]:
        gate.setdefault("e", asyncio.Event())
        try:
            raise RuntimeError("handled")
        finally:
            gate["e"].set()

    @g.node
    async def waits(state: State) -> dict[str, Any]:
        gate.setdefault("e", asyncio.Event())
        await gate["e"].wait()
        return {"log": ["waited"]}

    @g.node
    def handler(state: State) -> dict[str, Any]:
        return {"log": ["handled"]}

    g.edge(START, "breaks")
    g.edge(START, "waits")
    g.edge("breaks", END)
    g.edge("waits", END)
    g.edge("handler", END)
    res = Runner(g, store).run({})
    assert res.status == "completed" and res.state["log"] == ["waited", "handled"]


# ---------------------------------------------------------------- retries


def test_first_matching_retry_policy_applies_and_resume_gives_a_fresh_budget(
        store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKBENCH_TEST_FIXED", raising=False)
    g = graph("flaky")
    res = Runner(g, store).run({})
    assert res.status == "failed" and "after 2 attempts" in (res.error or "")  # the ValueError policy
    again = Runner(g, store).resume(res.run_id)
    assert again.status == "failed" and "after 4 attempts" in (again.error or "")  # 2 more, not 0
    monkeypatch.setenv("WORKBENCH_TEST_FIXED", "1")
    done = Runner(g, store).resume(res.run_id)
    assert done.status == "completed"
    rows = store.tasks(res.run_id)
    assert [t["attempt"] for t in rows] == [1, 2, 3, 4, 5]
    # ctx.first_attempt_started is the first attempt's start, across retries and resumes.
    first = rows[0]["started_at"].isoformat()
    assert done.state["log"] == [f"fixed at attempt 5, first started {first}+00:00"]
    budgets = [e["detail"].get("fresh_retries") for e in store.events(res.run_id) if e["kind"] == "resumed"]
    assert budgets == [{"0": 3}, {"0": 5}]


def test_retry_policy_predicate_and_order() -> None:
    seen: list[int] = []
    g = Graph("predicate", State)

    @g.node(retry=[RetryPolicy(attempts=3, initial_delay=0, retry_on=lambda e: "transient" in str(e)),
                   RetryPolicy(attempts=1, retry_on=KeyError)])
    def n(state: State, ctx: Any) -> dict[str, Any]:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("transient glitch")
        raise KeyError("permanent")

    g.sequence(START, "n", END)
    res = Runner(g).run({})
    assert res.status == "failed" and "KeyError" in (res.error or "") and seen == [1, 2, 3]


@pytest.mark.parametrize("retry, message", [
    (3, "retry must be a RetryPolicy or a list of them, got int"),
    ([RetryPolicy(), "again"], "got a str in the list"),
    (RetryPolicy(retry_on="ValueError"), "retry_on must be an exception class"),
    (RetryPolicy(retry_on=(ValueError, 3)), "retry_on must be an exception class"),
    (RetryPolicy(attempts=0), "attempts must be a whole number >= 1"),
])
def test_wrong_retry_settings_are_refused_at_build_time(retry: Any, message: str) -> None:
    g = Graph("bad_retry", State)
    with pytest.raises(GraphDefinitionError, match=message):
        g.node(lambda s: None, name="n", retry=retry)


# ---------------------------------------------------------------- merge rules


class BadRule(TypedDict):
    items: Annotated[list[str], lambda current: current]


class FineRule(TypedDict):
    a: Annotated[int, operator.add]
    b: Annotated[list[int], lambda cur, new, extra=None: (cur or []) + new]


def test_merge_rule_with_the_wrong_arity_is_refused_when_declared() -> None:
    with pytest.raises(GraphDefinitionError, match=r"test_control.py:\d+: graph 'bad_rule': state key 'items': "
                       r"merge rule .* must take exactly two"):
        Graph("bad_rule", BadRule)
    Graph("fine_rule", FineRule)


def strict(current: Any, update: Any) -> Any:
    raise ValueError("no thanks")


class Picky(TypedDict):
    picky: Annotated[str, strict]


def test_a_merge_rule_that_raises_is_a_merge_failure_naming_the_key(store: TraceStore) -> None:
    g = Graph("picky", Picky)
    g.node(lambda s: {"picky": "x"}, name="writer")
    g.sequence(START, "writer", END)
    res = Runner(g, store).run({})
    assert res.status == "failed"
    assert "merge rule custom(strict) of state key 'picky' failed on the update of node 'writer'" in res.error
    assert "router failed" not in res.error and "ValueError: no thanks" in res.error


def test_send_in_a_command_needs_a_declared_destination(store: TraceStore) -> None:
    g = Graph("send_undeclared", State)

    @g.node(goto=["w"])
    def a(state: State) -> Command:
        return Command(goto=[Send("w", 1), Send("v", 2)])

    g.node(lambda s: None, name="w")
    g.node(lambda s: None, name="v")
    g.edge(START, "a")
    g.edge(START, "v")
    g.edge("w", END)
    g.edge("v", END)
    res = Runner(g, store).run({})
    assert res.status == "failed" and "Command sends to 'v'" in (res.error or "")


def test_export_and_import_keep_commands_and_closed_interrupts(store: TraceStore, tmp_path: Path) -> None:
    from workbench.transfer import export_runs, import_files

    g = graph("questions")
    first = Runner(g, store).run({})
    Runner(g, store).resume(first.run_id, "Q", interrupt="1.1.1.0", close=["1.0.1.0"])
    jumped = Runner(graph("jump"), store).run({"topic": "t"})
    Runner(graph("jump"), store).resume(jumped.run_id, "y")
    path = str(tmp_path / "out.jsonl")
    export_runs(store, [first.run_id, jumped.run_id], path)
    with TraceStore(str(tmp_path / "other.duckdb")) as other:
        import_files(other, [path])
        statuses = other.query("SELECT interrupt_id, status FROM interrupts WHERE run_id = ? ORDER BY 1",
                               [first.run_id])
        assert statuses == [("1.0.1.0", "closed"), ("1.1.1.0", "answered")]
        assert other.query("SELECT goto FROM steps WHERE run_id = ? AND goto IS NOT NULL", [jumped.run_id]) \
            == [('["yes"]',)]
        assert replay_run(other, first.run_id, graph("questions")).identical


def test_a_version_2_store_is_upgraded_in_place(tmp_path: Path) -> None:
    import duckdb

    db = str(tmp_path / "old.duckdb")
    with TraceStore(db) as st:
        old = Runner(graph("trim"), st).run({})
    con = duckdb.connect(db)  # make it look like a store written by schema version 2
    con.execute("DROP VIEW steps; DROP VIEW interrupts")
    con.execute("ALTER TABLE wb_tasks DROP COLUMN goto")
    con.execute("ALTER TABLE wb_interrupts DROP COLUMN closed")
    con.execute("UPDATE wb_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with TraceStore(db) as st:
        assert st.query("SELECT value FROM wb_meta WHERE key = 'schema_version'") == [("3",)]
        assert st.query("SELECT count(*) FROM steps WHERE run_id = ? AND goto IS NULL", [old.run_id]) == [(2,)]
        first = Runner(graph("questions"), st).run({})
        done = Runner(graph("questions"), st).resume(first.run_id, close=["1.0.1.0", "1.1.1.0"])
        assert done.status == "completed"
        assert [r[0] for r in st.query("SELECT status FROM interrupts WHERE run_id = ?", [first.run_id])] \
            == ["closed", "closed"]


# ---------------------------------------------------------------- a failure handed to on_error


def _handled_beside(sibling: Any, effects: list[str]) -> Graph:
    """``pay`` charges, then fails into its handler, beside ``sibling`` in the same step."""
    from workbench import tool

    @tool
    def charge(amount: int) -> str:
        effects.append(f"charged {amount}")
        return "ok"

    g = Graph("handled", State)

    @g.node(on_error="handler", retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=False))
    def pay(state: State) -> dict[str, Any]:
        charge(10)
        raise RuntimeError("gateway down")

    @g.node
    def handler(state: State, ctx: Any) -> dict[str, Any]:
        return {"log": [f"handled {ctx.error['type']}: {ctx.error['message']}"]}

    g.add_node("sibling", sibling)
    g.edge(START, "pay")
    g.edge(START, "sibling")
    for name in ("pay", "handler", "sibling"):
        g.edge(name, END)
    return g


def test_a_failure_handed_to_its_handler_is_not_run_again_when_its_step_resumes(store: TraceStore) -> None:
    """A node that failed for good into its on_error handler keeps that outcome when its step
    is resumed (a sibling waited for a human, or failed and was fixed): its side effects are not
    repeated, the handler gets the same failure, and the run replays identically."""
    effects: list[str] = []
    g = _handled_beside(lambda state: {"log": [f"human said {interrupt('ok?')}"]}, effects)
    runner = Runner(g, store)
    first = runner.run({})
    assert first.status == "waiting" and effects == ["charged 10", "charged 10"]  # two attempts
    done = runner.resume(first.run_id, "yes")
    assert done.status == "completed", done.error
    assert effects == ["charged 10", "charged 10"]  # pay did not run again
    assert sorted(done.state["log"]) == ["handled RuntimeError: RuntimeError: gateway down after 2 attempts",
                                         "human said yes"]
    assert replay_run(store, first.run_id, g).identical

    # The run failed beside it (a sibling failed for good); fixed and resumed, pay is not re-run.
    # The sibling fails once pay's failure is final (failing first, it would cancel pay's retry).
    effects.clear()
    broken = {"on": True}
    pay_final = threading.Event()

    def flaky(state: State) -> dict[str, Any]:
        if broken["on"]:
            assert pay_final.wait(timeout=60)
            raise ValueError("bug")
        return {"log": ["sibling ok"]}

    def listen(event: Any) -> None:
        if event.kind == "task_finished" and event.node == "pay" and event.data.get("attempt") == 2:
            pay_final.set()

    g2 = _handled_beside(flaky, effects)
    runner2 = Runner(g2, store, listener=listen)
    failed = runner2.run({})
    assert failed.status == "failed" and effects == ["charged 10", "charged 10"]
    broken["on"] = False
    fixed = runner2.resume(failed.run_id)
    assert fixed.status == "completed", fixed.error
    assert effects == ["charged 10", "charged 10"]
    assert sorted(fixed.state["log"])[0].startswith("handled RuntimeError")


def test_an_answer_to_a_run_another_process_is_recording_says_so() -> None:
    """Four processes answering one waiting run at once: the three that lost were told to
    "resume it without --input", which the live winner then refused. A run whose process died
    (interrupted) is still told to resume without the answer."""
    from workbench.runtime.interrupts import NO_VALUE, settle

    with pytest.raises(RunStateError, match=r"run r-1 is being recorded right now by another process \(it may "
                                            r"have just been answered from there\); see 'workbench show r-1'"):
        settle("r-1", "running", [], "an answer")
    with pytest.raises(RunStateError, match="run r-1 is interrupted, not waiting for input; resume it without value"):
        settle("r-1", "interrupted", [], "an answer")
    assert settle("r-1", "running", [], NO_VALUE) == []

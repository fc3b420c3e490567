"""Subgraphs recorded as child runs: inner steps with their paths, resume that continues inside
the subgraph, interrupts (parallel ones, and from a subgraph run in a node's body) routed to the
node that asked, breakpoints by path, replay divergences at the inner node, forks at an inner
step — through the Python API (the CLI is in test_subgraphs_cli.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, Overwrite, RetryPolicy, Runner, add, append, interrupt, merge
from workbench.errors import InputError, RunStateError
from workbench.replay import replay_run
from workbench.store import TraceStore

ECHO = "workbench-demo/echo"


class Inner(TypedDict):
    topic: str
    log: Annotated[list[str], append]
    verdict: str


class Outer(TypedDict):
    topic: str
    log: Annotated[list[str], append]
    verdict: str
    done: bool


def review_graph(execs: dict[str, int], *, prompt: str = "assess") -> Graph:
    sub = Graph("review_sub", Inner)

    @sub.node
    def assess(state: Inner, ctx: Any) -> dict[str, Any]:
        execs["assess"] = execs.get("assess", 0) + 1
        return {"log": [ctx.llm(f"{prompt} {state['topic']}", model=ECHO).text]}

    @sub.node
    def approve(state: Inner) -> dict[str, Any]:
        execs["approve"] = execs.get("approve", 0) + 1
        return {"verdict": str(interrupt({"approve": state["topic"]}))}

    @sub.node
    def note(state: Inner) -> dict[str, Any]:
        execs["note"] = execs.get("note", 0) + 1
        return {"log": [f"noted {state['verdict']}"]}

    sub.sequence(START, "assess", "approve", "note", END)
    return sub


def outer_graph(execs: dict[str, int], **kw: Any) -> Graph:
    g = Graph("outer_review", Outer)
    g.add_node("intake", lambda s: {"log": ["intake"]})
    g.add_node("review", review_graph(execs, **kw))
    g.add_node("finish", lambda s: {"done": True})
    g.sequence(START, "intake", "review", "finish", END)
    return g


def child_of(run_id: str, step: int, task: int = 0, call: int = 0) -> str:
    return f"{run_id}/{step}.{task}.{call}"


# ---------------------------------------------------------------- recording with paths


def test_inner_steps_are_recorded_with_paths(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(outer_graph(execs), store).run({"topic": "kettle"})
    assert (r.status, r.interrupt) == ("waiting", {"approve": "kettle"})
    child = child_of(r.run_id, 2)
    steps = store.query("SELECT run_id, step, node, path, root_run_id, status FROM steps ORDER BY ended_at")
    assert steps == [
        (r.run_id, 1, "intake", "intake", r.run_id, "completed"),
        (child, 1, "assess", "review/assess", r.run_id, "completed"),
        (child, 2, "approve", "review/approve", r.run_id, "interrupted"),
        (r.run_id, 2, "review", "review", r.run_id, "interrupted"),
    ]
    # Model calls and interrupts belong to the inner node.
    assert store.query("SELECT run_id, node, path, root_run_id FROM llm_calls") == [
        (child, "assess", "review/assess", r.run_id)]
    assert store.query("SELECT run_id, node, path, payload FROM interrupts") == [
        (child, "approve", "review/approve", '{"approve":"kettle"}')]
    # The runs a user started, and the subgraph's run apart.
    assert store.query("SELECT run_id, status FROM runs") == [(r.run_id, "waiting")]
    assert store.query("SELECT run_id, root_run_id, caller_run_id, caller_step, caller_task, path, graph, status "
                       "FROM subgraph_runs") == [(child, r.run_id, r.run_id, 2, 0, "review", "review_sub", "waiting")]
    assert [x["run_id"] for x in store.list_runs()] == [r.run_id]
    assert store.resolve_run_id("last") == r.run_id and store.resolve_run_id(r.run_id[:8]) == r.run_id
    assert store.resolve_run_id(child) == child
    # Its state after each inner step, like any run's.
    assert store.state_at(child, 1)["log"] == ["intake", "assess kettle"]


def test_resume_continues_inside_the_subgraph(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(outer_graph(execs), store).run({"topic": "kettle"})
    done = Runner(outer_graph(execs), store).resume(r.run_id, "yes")
    assert done.status == "completed", done.error
    assert done.state["verdict"] == "yes" and done.state["done"] is True
    assert done.state["log"] == ["intake", "assess kettle", "noted yes"]
    # Completed inner steps never run again; the model was asked once.
    assert execs == {"assess": 1, "approve": 2, "note": 1}
    assert store.query("SELECT count(*) FROM llm_calls")[0][0] == 1
    assert store.query("SELECT status FROM subgraph_runs") == [("completed",)]


def test_resuming_a_subgraph_run_directly_is_refused(store: TraceStore) -> None:
    r = Runner(outer_graph({}), store).run({"topic": "x"})
    with pytest.raises(RunStateError, match="is subgraph 'review' of run"):
        Runner(review_graph({}), store).resume(child_of(r.run_id, 2), "yes")


def test_failed_inner_step_resumes_without_rerunning_completed_ones(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    fail = {"on": True}
    sub = Graph("flaky_sub", Inner)

    @sub.node
    def first(state: Inner) -> dict[str, Any]:
        execs["first"] = execs.get("first", 0) + 1
        return {"log": ["first"]}

    @sub.node
    def second(state: Inner) -> dict[str, Any]:
        execs["second"] = execs.get("second", 0) + 1
        if fail["on"]:
            raise ConnectionError("flaky")
        return {"log": ["second"]}

    sub.sequence(START, "first", "second", END)
    g = Graph("outer_flaky", Outer)
    g.add_node("inner", sub)
    g.sequence(START, "inner", END)
    r = Runner(g, store).run({})
    assert r.status == "failed" and "ConnectionError: flaky" in (r.error or "")
    fail["on"] = False
    done = Runner(g, store).resume(r.run_id)
    assert done.status == "completed", done.error
    assert done.state["log"] == ["first", "second"]
    assert execs == {"first": 1, "second": 2}
    # The caller's retry policy continues the child too: 'first' is not run again.
    execs.clear()
    fail["on"] = True
    calls = {"n": 0}

    def flaky_then_ok(state: Inner) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("flaky")
        return {"log": ["second"]}

    sub2 = Graph("flaky_sub2", Inner)
    sub2.add_node("first", lambda s: execs.__setitem__("first", execs.get("first", 0) + 1) or {"log": ["first"]})
    sub2.add_node("second", flaky_then_ok)
    sub2.sequence(START, "first", "second", END)
    g2 = Graph("outer_retry", Outer)
    g2.add_node("inner", sub2, retry=RetryPolicy(attempts=2, initial_delay=0))
    g2.sequence(START, "inner", END)
    done = Runner(g2, store).run({})
    assert done.status == "completed", done.error
    assert done.state["log"] == ["first", "second"] and execs == {"first": 1}


# ---------------------------------------------------------------- parallel interrupts


def parallel_sub() -> Graph:
    sub = Graph("two_questions", Inner)

    @sub.node
    async def p(state: Inner) -> dict[str, Any]:
        await asyncio.sleep(0.05)  # p asks after q
        return {"log": [f"p={interrupt('question p')}"]}

    @sub.node
    async def q(state: Inner) -> dict[str, Any]:
        return {"log": [f"q={interrupt('question q')}"]}

    sub.add_node("join", lambda s: {"verdict": "+".join(s["log"])})
    sub.edge(START, "p")
    sub.edge(START, "q")
    sub.join(["p", "q"], "join")
    sub.edge("join", END)
    return sub


def test_parallel_interrupts_inside_a_subgraph_are_answered_in_order(store: TraceStore) -> None:
    g = Graph("outer_parallel", Outer)
    g.add_node("ask_both", parallel_sub())
    g.sequence(START, "ask_both", END)
    r = Runner(g, store).run({})
    # Oldest first by task order, whichever branch asked first: p is task 0.
    assert (r.status, r.interrupt) == ("waiting", "question p")
    r = Runner(g, store).resume(r.run_id, "A1")
    assert (r.status, r.interrupt) == ("waiting", "question q")
    done = Runner(g, store).resume(r.run_id, "A2")
    assert done.status == "completed", done.error
    assert done.state["log"] == ["p=A1", "q=A2"] and done.state["verdict"] == "p=A1+q=A2"
    answered = store.query("SELECT path, response FROM interrupts ORDER BY path")
    assert answered == [("ask_both/p", '"A1"'), ("ask_both/q", '"A2"')]


# ---------------------------------------------------------------- node bodies


def test_subgraph_run_from_a_node_body_pauses_the_whole_run(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    sub = review_graph(execs)
    after: list[Any] = []
    g = Graph("outer_body", Outer)

    @g.node
    async def delegate(state: Outer) -> dict[str, Any]:
        result = await Runner(sub).arun({"topic": state["topic"]})
        after.append(result.status)
        return {"verdict": result.state["verdict"], "log": ["delegated"]}

    g.sequence(START, "delegate", END)
    r = Runner(g, store).run({"topic": "lamp"})
    assert (r.status, r.interrupt) == ("waiting", {"approve": "lamp"})
    assert after == []  # the node body did not go on without the answer
    assert store.query("SELECT path FROM interrupts") == [("delegate/approve",)]
    done = Runner(g, store).resume(r.run_id, "approved")
    assert done.status == "completed", done.error
    assert done.state["verdict"] == "approved" and after == ["completed"]
    assert execs == {"assess": 1, "approve": 2, "note": 1}


def test_a_completed_child_is_not_run_again_when_its_caller_retries(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    sub = Graph("counted", Inner)
    sub.add_node("work", lambda s: execs.__setitem__("work", execs.get("work", 0) + 1) or {"log": ["w"]})
    sub.sequence(START, "work", END)
    g = Graph("outer_retry_body", Outer)

    @g.node(retry=RetryPolicy(attempts=2, initial_delay=0))
    async def caller(state: Outer, ctx: Any) -> dict[str, Any]:
        result = await Runner(sub).arun({})
        if ctx.attempt == 1:
            raise ConnectionError("after the subgraph")
        return {"log": result.state["log"]}

    g.sequence(START, "caller", END)
    done = Runner(g, store).run({})
    assert done.status == "completed", done.error
    assert execs == {"work": 1}


# ---------------------------------------------------------------- breakpoints


def test_breakpoints_by_path(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = outer_graph(execs)
    r = Runner(g, store).run({"topic": "t"}, break_before=["review/approve"])
    assert r.status == "paused" and r.paused == {"when": "before", "node": "review/approve", "step": 2}
    assert execs == {"assess": 1}
    r = Runner(g, store).resume(r.run_id)
    assert (r.status, r.interrupt) == ("waiting", {"approve": "t"})
    # Answering does not stop at the same breakpoint again; the next one is after review/approve.
    r = Runner(g, store).resume(r.run_id, "ok", break_after=["review/approve"])
    assert r.status == "paused" and r.paused["node"] == "review/approve" and r.paused["when"] == "after"
    done = Runner(g, store).resume(r.run_id)
    assert done.status == "completed", done.error
    assert execs == {"assess": 1, "approve": 2, "note": 1}
    events = store.query("SELECT run_id, kind, node, path FROM events WHERE kind = 'breakpoint' ORDER BY created_at")
    assert [e[3] for e in events] == ["review/approve", "review/approve", "review/approve", "review/approve"]


def test_break_condition_inside_a_subgraph(store: TraceStore) -> None:
    g = outer_graph({})
    r = Runner(g, store).run({"topic": "t"}, break_when={"review": lambda s: len(s["log"]) >= 2})
    assert r.status == "paused" and r.paused["when"] == "condition" and r.paused["node"] == "review"


def test_bad_breakpoint_path_is_refused(store: TraceStore) -> None:
    g = outer_graph({})
    with pytest.raises(InputError, match=r"subgraph 'review' .* has no node 'aprove'"):
        Runner(g, store).run({}, break_before=["review/aprove"])
    with pytest.raises(InputError, match=r"node 'intake' runs no subgraph .* declare it"):
        Runner(g, store).run({}, break_before=["intake/x"])
    assert store.query("SELECT count(*) FROM wb_runs")[0][0] == 0


# ---------------------------------------------------------------- replay


def test_replay_of_a_run_with_a_subgraph(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(outer_graph(execs), store).run({"topic": "kettle"})
    Runner(outer_graph(execs), store).resume(r.run_id, "yes")
    report = replay_run(store, r.run_id, outer_graph({}))
    assert report.identical, report.divergence
    changed = replay_run(store, r.run_id, outer_graph({}, prompt="judge"))
    assert changed.divergence is not None
    d = changed.divergence
    assert (d.step, d.kind, d.node, d.at) == (2, "request", "review/assess", "2/review/1")
    assert str(d).startswith("step 2/review/1, node 'review/assess': model call 1")


def test_replay_of_a_run_waiting_inside_a_subgraph(store: TraceStore) -> None:
    r = Runner(outer_graph({}), store).run({"topic": "kettle"})
    report = replay_run(store, r.run_id, outer_graph({}))
    assert report.identical and report.status == "waiting", report.divergence


# ---------------------------------------------------------------- fork at an inner step


def test_fork_at_an_inner_step_with_a_state_edit(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(outer_graph(execs), store).run({"topic": "kettle"})
    done = Runner(outer_graph(execs), store).resume(r.run_id, "yes")
    assert done.status == "completed"
    execs.clear()
    # Step 3 inside the review (note), with the verdict edited: assess and approve are shared.
    fork = Runner(outer_graph(execs), store).fork(r.run_id, "2/review/3", set_state={"verdict": "no"})
    assert fork.status == "completed", fork.error
    assert execs == {"note": 1}
    assert fork.state["verdict"] == "no" and fork.state["log"] == ["intake", "assess kettle", "noted no"]
    child = child_of(fork.run_id, 2)
    row = store.query("SELECT parent_run_id, fork_step, root_run_id, path, status FROM subgraph_runs "
                      "WHERE run_id = ?", [child])
    assert row == [(child_of(r.run_id, 2), 2, fork.run_id, "review", "completed")]
    assert store.query("SELECT parent_run_id, fork_step FROM runs WHERE run_id = ?", [fork.run_id]) == [(r.run_id, 1)]
    # The fork replays identically, through its shared history.
    assert replay_run(store, fork.run_id, outer_graph({})).identical


def test_an_inner_fork_editing_a_key_the_subgraph_never_writes_replays_identically(store: TraceStore) -> None:
    """The edit is a change of the subgraph's run, so its caller gets it, live and in the replay
    (which left it out and diverged); at the subgraph's first step too (its edited input)."""
    r = Runner(outer_graph({}), store).run({"topic": "kettle"})
    done = Runner(outer_graph({}), store).resume(r.run_id, "yes")
    assert done.status == "completed"
    later = Runner(outer_graph({}), store).fork(r.run_id, "2/review/3", set_state={"topic": "toaster"})
    assert later.status == "completed" and later.state["topic"] == "toaster"
    assert replay_run(store, later.run_id, outer_graph({})).identical
    first = Runner(outer_graph({}), store).fork(r.run_id, "2/review/1", set_state={"topic": "toaster"})
    assert first.status == "waiting" and first.interrupt == {"approve": "toaster"}  # ran on the edited input
    answered = Runner(outer_graph({}), store).resume(first.run_id, "no")
    assert answered.state["topic"] == "toaster"
    for fork in (first, answered):
        assert replay_run(store, fork.run_id, outer_graph({})).identical, fork.run_id


def test_fork_at_an_inner_step_with_a_model_answer(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(outer_graph(execs), store).run({"topic": "kettle"})
    fork = Runner(outer_graph(execs), store).fork(r.run_id, "2/review/1", llm_responses={1: "risky"})
    assert (fork.status, fork.interrupt) == ("waiting", {"approve": "kettle"})
    done = Runner(outer_graph(execs), store).resume(fork.run_id, "no")
    assert done.state["log"] == ["intake", "risky", "noted no"]


def test_bad_inner_fork_addresses_are_refused(store: TraceStore) -> None:
    r = Runner(outer_graph({}), store).run({"topic": "kettle"})
    g = outer_graph({})
    for at, message in [("2/review", "write STEP"), ("2/intake/1", "does not run 'intake'"),
                        ("2/review/9", "step 9 is out of range"),
                        ("1/intake/1", "recorded no subgraph run for 'intake'")]:
        with pytest.raises(InputError, match=message):
            Runner(g, store).fork(r.run_id, at)
    with pytest.raises(InputError, match="state key 'nope'"):
        Runner(g, store).fork(r.run_id, "2/review/2", set_state={"nope": 1})
    with pytest.raises(RunStateError, match="fork that run at STEP/review/INNER_STEP"):
        Runner(review_graph({}), store).fork(child_of(r.run_id, 2), 1)
    assert store.query("SELECT count(*) FROM wb_runs")[0][0] == 2


def test_questions_inside_a_subgraph_answered_by_id(store: TraceStore) -> None:
    g = Graph("outer_by_id", Outer)
    g.add_node("ask_both", parallel_sub())
    g.sequence(START, "ask_both", END)
    r = Runner(g, store).run({})
    assert [(i["id"], i["node"]) for i in r.interrupts] == [
        ("1.0.0/1.0.1.0", "ask_both/p"), ("1.0.0/1.1.1.0", "ask_both/q")]
    assert store.query("SELECT interrupt_id, path, status FROM interrupts ORDER BY interrupt_id") == [
        ("1.0.0/1.0.1.0", "ask_both/p", "open"), ("1.0.0/1.1.1.0", "ask_both/q", "open")]
    # q first, by its id; then p, the one left.
    r = Runner(g, store).resume(r.run_id, "Q", interrupt="1.0.0/1.1.1.0")
    assert (r.status, r.interrupt) == ("waiting", "question p")
    done = Runner(g, store).resume(r.run_id, answers={"1.0.0/1.0.1.0": "P"})
    assert done.status == "completed", done.error
    assert done.state["log"] == ["p=P", "q=Q"]


def test_a_question_inside_a_subgraph_closed_unanswered(store: TraceStore) -> None:
    g = Graph("outer_close", Outer)
    g.add_node("ask_both", parallel_sub())
    g.sequence(START, "ask_both", END)
    r = Runner(g, store).run({})
    r = Runner(g, store).resume(r.run_id, "Q", interrupt="1.0.0/1.1.1.0", close=["1.0.0/1.0.1.0"])
    assert r.status == "completed", r.error
    assert r.state["log"] == ["q=Q"]


def _overwriting_graphs() -> Graph:
    class S(TypedDict):
        log: Annotated[list[str], append]
        n: Annotated[int, add]
        d: Annotated[dict[str, int], merge]
        only_set: Annotated[list[str], append]

    inner = Graph("overwrite_inner", S)

    @inner.node
    def trim(state: S) -> dict[str, Any]:
        return {"log": Overwrite(["trimmed"]), "n": Overwrite(5), "d": Overwrite({"fresh": 1}),
                "only_set": Overwrite(["just this"])}

    @inner.node
    def more(state: S) -> dict[str, Any]:
        return {"log": ["after-trim"], "n": 1}

    inner.sequence(START, "trim", "more", END)
    outer = Graph("overwrite_outer", S)

    @outer.node
    def pre(state: S) -> dict[str, Any]:
        return {"log": ["p1", "p2"], "n": 100, "d": {"stale": 1}, "only_set": ["old"]}

    outer.add_node("sub", inner)
    outer.sequence(START, "pre", "sub", END)
    return outer


def test_an_overwrite_inside_a_subgraph_reaches_the_caller(store: TraceStore) -> None:
    """The caller's key ends as the subgraph left it: a trimmed append list is not appended to
    the caller's, a merge key that lost entries loses them, a list only overwritten is not added
    twice; an add key gets the difference (so a sibling's additions would still count)."""
    g = _overwriting_graphs()
    result = Runner(g, store).run({})
    want = {"log": ["trimmed", "after-trim"], "n": 6, "d": {"fresh": 1}, "only_set": ["just this"]}
    assert result.status == "completed", result.error
    assert result.state == want
    (child_output,) = store.query("SELECT output FROM subgraph_runs WHERE caller_run_id = ?", [result.run_id])[0]
    assert store.state_at(result.run_id, store.last_committed_step(result.run_id)) == want
    import json

    assert json.loads(child_output) == want
    assert replay_run(store, result.run_id, g).identical
    # Resumed after the child completed (its recorded changes read back from the store).
    resumed = Runner(g, store).fork(result.run_id, 2)
    assert resumed.state == want


class Fan(TypedDict):
    items: list[str]
    log: Annotated[list[str], append]


def _fan_inside() -> Graph:
    from workbench import Send

    inner = Graph("fan_inner", Fan)
    inner.add_node("plan", lambda s: {"log": ["planned"]})
    inner.add_node("w", lambda item: {"log": [f"w {item}"]})
    inner.edge(START, "plan")
    inner.route("plan", lambda s: [Send("w", i) for i in s["items"]], targets=["w"])
    inner.edge("w", END)
    outer = Graph("fan_outer", Fan)
    outer.add_node("intake", lambda s: {"log": ["intake"]})
    outer.add_node("sub", inner)
    outer.sequence(START, "intake", "sub", END)
    return outer


def test_a_state_edit_at_an_inner_step_routes_that_step_again(store: TraceStore) -> None:
    """As at a root step: --set at an inner step routes it again from the edited state (the
    fork ran the recorded branches a and b with items ["c"]), and the fork replays identically."""
    g = _fan_inside()
    parent = Runner(g, store).run({"items": ["a", "b"]})
    assert parent.state["log"] == ["intake", "planned", "w a", "w b"]
    fork = Runner(g, store).fork(parent.run_id, "2/sub/2", set_state={"items": ["c"]})
    assert fork.status == "completed", fork.error
    assert fork.state["log"] == ["intake", "planned", "w c"]
    [event] = [e for e in store.events(fork.run_id) if e["kind"] == "forked"]
    assert event["detail"]["rerouted"] == {"from": ["w", "w"], "to": ["w"], "where": "2/sub/2"}
    assert replay_run(store, fork.run_id, g).identical


class Notes(TypedDict):
    notes: Annotated[list[str], append]


def test_a_sync_node_inside_a_subgraph_never_holds_up_the_callers_siblings(store: TraceStore) -> None:
    """A plain (sync) node alone in its subgraph's step ran on the event loop, as a node alone
    in a root run's step does; but the subgraph's caller had siblings in its step, and they all
    stopped until it returned (a sibling's timeout was then charged the subgraph's time). Here
    the inner node waits for the sibling: it is given a worker thread, so the sibling runs."""
    import threading

    sibling_ran = threading.Event()
    inner = Graph("waits_inner", Notes)

    @inner.node
    def wait_for_sibling(state: Notes) -> dict[str, Any]:
        return {"notes": ["inner saw the sibling" if sibling_ran.wait(timeout=5) else "inner held the loop"]}

    inner.sequence(START, "wait_for_sibling", END)
    outer = Graph("waits", Notes)
    outer.add_node("sub", inner)

    @outer.node(timeout=3)
    async def sibling(state: Notes) -> dict[str, Any]:
        await asyncio.sleep(0)
        sibling_ran.set()
        return {"notes": ["sibling"]}

    outer.edge(START, "sub")
    outer.edge(START, "sibling")
    outer.edge("sub", END)
    outer.edge("sibling", END)
    result = Runner(outer, store).run({})
    assert result.status == "completed", result.error
    assert sorted(result.state["notes"]) == ["inner saw the sibling", "sibling"]
    assert replay_run(store, result.run_id, outer).identical


def test_a_subgraph_node_that_failed_for_good_then_resumed_replays_identically(store: TraceStore) -> None:
    """A retried node inside a subgraph that ran out of attempts failed its caller; a resume
    continued the child run with a fresh budget and it succeeded. Replay said "diverged: node now
    failed; the recording has it completed" (it started the child's budget over on the caller's
    second attempt); the same node at the top level replayed identically."""
    inner = Graph("pays_inner", Notes)

    @inner.node(retry=RetryPolicy(attempts=2, initial_delay=0.0))
    def pay(state: Notes, ctx: Any) -> dict[str, Any]:
        if ctx.attempt < 3:
            raise RuntimeError(f"pay failed on attempt {ctx.attempt}")
        return {"notes": [f"paid on attempt {ctx.attempt}"]}

    inner.sequence(START, "pay", END)
    outer = Graph("pays", Notes)
    outer.add_node("inner", inner)
    outer.sequence(START, "inner", END)
    runner = Runner(outer, store)
    failed = runner.run({})
    assert failed.status == "failed" and "pay failed on attempt 2" in (failed.error or "")
    done = runner.resume(failed.run_id)
    assert done.status == "completed" and done.state["notes"] == ["paid on attempt 3"]
    report = replay_run(store, done.run_id, outer)
    assert report.identical, report.divergence
    # A child replayed for the caller's failed attempt still has to fail where it failed then.
    broken = Graph("pays_inner", Notes)

    @broken.node(retry=RetryPolicy(attempts=2, initial_delay=0.0))
    def pay(state: Notes, ctx: Any) -> dict[str, Any]:  # noqa: F811 (the same node, changed)
        return {"notes": ["paid at once"]}

    broken.sequence(START, "pay", END)
    changed = Graph("pays", Notes)
    changed.add_node("inner", broken)
    changed.sequence(START, "inner", END)
    assert not replay_run(store, done.run_id, changed).identical

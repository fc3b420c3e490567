"""Subgraphs run from a node's body, addressed by path (breakpoints, forks at an inner step) once
the node declares them; closing an interrupt by a fork edit; and regressions: an append key's
single input item, a fork's input, the replay of a run that failed and was resumed — through the
Python API (the CLI side is in test_subgraphs_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_subgraphs import Inner, Outer, child_of, outer_graph, review_graph

from workbench import END, START, Graph, Runner
from workbench.errors import InputError
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.store import TraceStore
from workbench.tools import tool

CONTROL = Path(__file__).parent / "graphs" / "control.py"


def body_graph(execs: dict[str, int], *, declare: bool = True, twice: bool = False) -> Graph:
    """``delegate`` runs the review subgraph from its body (and, with ``twice``, a second graph
    first, so the review is its call 1)."""
    sub = review_graph(execs)
    warm = Graph("warm_up", Inner)
    warm.add_node("stretch", lambda s: {"log": ["stretched"]})
    warm.sequence(START, "stretch", END)
    g = Graph("outer_body_paths", Outer)

    async def delegate(state: Outer) -> dict[str, Any]:
        if twice:
            await Runner(warm).arun({})
        result = await Runner(sub).arun({"topic": state["topic"]})
        return {"verdict": result.state["verdict"], "log": ["delegated"]}

    g.add_node("delegate", delegate, subgraphs=[warm, sub] if declare else None)
    g.sequence(START, "delegate", END)
    return g


# ---------------------------------------------------------------- breakpoints through a node body


def test_breakpoint_inside_a_declared_node_body_subgraph(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = body_graph(execs)
    paused = Runner(g, store).run({"topic": "lamp"}, break_before=["delegate/approve"])
    assert paused.status == "paused" and paused.paused is not None
    assert paused.paused["node"] == "delegate/approve"
    assert execs == {"assess": 1}  # it stopped before approve ran
    waiting = Runner(g, store).resume(paused.run_id)
    assert (waiting.status, waiting.interrupt) == ("waiting", {"approve": "lamp"})
    done = Runner(g, store).resume(paused.run_id, "ok")
    assert done.status == "completed", done.error
    assert done.state["verdict"] == "ok" and execs == {"assess": 1, "approve": 2, "note": 1}


def test_break_after_applies_only_to_the_body_subgraph_that_has_the_node(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = body_graph(execs, twice=True)
    # warm_up has no 'assess': its run goes through; the review pauses after assess.
    paused = Runner(g, store).run({"topic": "lamp"}, break_after=["delegate/assess"])
    assert paused.status == "paused" and paused.paused is not None
    assert paused.paused["node"] == "delegate/assess"
    assert store.query("SELECT status FROM subgraph_runs ORDER BY run_id") == [("completed",), ("paused",)]


def test_undeclared_node_body_paths_are_refused_saying_why(store: TraceStore) -> None:
    g = body_graph({}, declare=False)
    with pytest.raises(InputError, match=r"node 'delegate' runs no subgraph .*declare it: "
                                         r"add_node\('delegate', fn, subgraphs=\[sub\]\)"):
        Runner(g, store).run({"topic": "x"}, break_before=["delegate/approve"])
    with pytest.raises(InputError, match="has no node 'aprove'"):
        Runner(body_graph({}), store).run({"topic": "x"}, break_before=["delegate/aprove"])
    assert store.query("SELECT count(*) FROM wb_runs") == [(0,)]  # refused before anything was recorded


def test_subgraphs_option_is_checked_when_the_graph_is_built() -> None:
    from workbench.errors import GraphDefinitionError

    g = Graph("bad_decl", Outer)
    with pytest.raises(GraphDefinitionError, match="subgraphs must be a list of Graphs"):
        g.add_node("x", lambda s: None, subgraphs=["review"])  # type: ignore[list-item]
    with pytest.raises(GraphDefinitionError, match="is a subgraph node"):
        g.add_node("y", review_graph({}), subgraphs=[review_graph({})])


# ---------------------------------------------------------------- forks inside a node body's subgraph


def test_fork_at_an_inner_step_of_a_node_body_subgraph(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = body_graph(execs)
    first = Runner(g, store).run({"topic": "lamp"})
    done = Runner(g, store).resume(first.run_id, "yes")
    assert done.state["verdict"] == "yes"
    # Fork at the review's approval step: it asks again, and is answered differently.
    fork = Runner(g, store).fork(first.run_id, "1/delegate/2")
    assert (fork.status, fork.interrupt) == ("waiting", {"approve": "lamp"})
    assert execs["assess"] == 1  # the inner step before the fork point is shared, not re-run
    declined = Runner(g, store).resume(fork.run_id, "no")
    assert declined.status == "completed" and declined.state["verdict"] == "no"
    child = store.get_run(child_of(fork.run_id, 1))
    assert child["parent_run_id"] == child_of(first.run_id, 1) and child["fork_step"] == 1


def test_fork_at_a_later_subgraph_call_of_a_node_body(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = body_graph(execs, twice=True)
    first = Runner(g, store).run({"topic": "lamp"})
    Runner(g, store).resume(first.run_id, "yes")
    fork = Runner(g, store).fork(first.run_id, "1/delegate#0.1/2", set_state={"topic": "desk"})
    assert (fork.status, fork.interrupt) == ("waiting", {"approve": "desk"})
    assert store.get_run(child_of(fork.run_id, 1, 0, 1))["parent_run_id"] == child_of(first.run_id, 1, 0, 1)
    with pytest.raises(InputError, match="recorded no subgraph call 2 of 'delegate'"):
        Runner(g, store).fork(first.run_id, "1/delegate#0.2/1")


def test_fork_inside_an_undeclared_node_body_subgraph_is_refused(store: TraceStore) -> None:
    g = body_graph({}, declare=False)
    first = Runner(g, store).run({"topic": "lamp"})
    with pytest.raises(InputError, match="ran subgraph 'review_sub' from its body; to fork inside it, declare"):
        Runner(g, store).fork(first.run_id, "1/delegate/2")
    assert store.query("SELECT count(*) FROM wb_runs WHERE parent_run_id IS NOT NULL") == [(0,)]


# ---------------------------------------------------------------- closing an interrupt by a fork edit


def test_fork_closes_an_interrupt_at_the_waiting_step(store: TraceStore) -> None:
    g = load_graph(f"{CONTROL}:questions")
    first = Runner(g, store).run({})
    assert sorted(i["id"] for i in first.interrupts) == ["1.0.1.0", "1.1.1.0"]
    fork = Runner(g, store).fork(first.run_id, 1, close=["1.0.1.0"])
    # p's task is dropped in the fork: only q asks there.
    assert fork.status == "waiting" and [i["node"] for i in fork.interrupts] == ["q"]
    row = store.query("SELECT status, error FROM steps WHERE run_id = ? AND node = 'p'", [fork.run_id])
    assert row == [("closed", f"closed by a fork edit: interrupt 1.0.1.0 of run {first.run_id} is not answered "
                              "in this fork")]
    forked = [e for e in store.events(fork.run_id) if e["kind"] == "forked"]
    assert forked[0]["detail"]["closed"] == ["1.0.1.0"]
    # The parent's question is untouched: only the fork closed it.
    assert store.query("SELECT status FROM interrupts WHERE run_id = ? ORDER BY interrupt_id",
                       [first.run_id]) == [("open",), ("open",)]
    done = Runner(g, store).resume(fork.run_id, "Q")
    assert done.status == "completed", done.error
    assert "q got Q" in done.state["log"] and not any(x.startswith("p got") for x in done.state["log"])
    assert store.query("SELECT count(*) FROM steps WHERE run_id = ? AND status = 'closed'", [fork.run_id]) == [(1,)]
    assert replay_run(store, fork.run_id, g).identical


def test_fork_close_refuses_what_was_not_asked_there(store: TraceStore) -> None:
    g = load_graph(f"{CONTROL}:questions")
    first = Runner(g, store).run({})
    with pytest.raises(InputError, match=r"close 9.9.9.9: step 1 of run .* asked no interrupt 9.9.9.9 "
                                         r"\(asked there: 1.0.1.0 \(p\), 1.1.1.0 \(q\)\)"):
        Runner(g, store).fork(first.run_id, 1, close=["9.9.9.9"])
    inner = Runner(outer_graph({}), store).run({"topic": "kettle"})
    with pytest.raises(InputError, match="asked inside a subgraph; fork at the inner step"):
        Runner(outer_graph({}), store).fork(inner.run_id, 2, close=["2.0.0/2.0.1.0"])
    assert store.query("SELECT count(*) FROM wb_runs WHERE parent_run_id IS NOT NULL") == [(0,)]


def test_fork_closes_an_interrupt_inside_a_subgraph(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = outer_graph(execs)
    first = Runner(g, store).run({"topic": "kettle"})
    fork = Runner(g, store).fork(first.run_id, "2/review/2", close=["2.0.1.0"])
    assert fork.status == "completed", fork.error
    # approve was dropped in the fork's review, and its branch ended there (note did not run);
    # the review completed without a verdict and the outer graph went on.
    assert fork.state["verdict"] == "" and fork.state["done"] is True
    assert fork.state["log"] == ["intake", "assess kettle"] and execs.get("note") is None
    child = child_of(fork.run_id, 2)
    assert store.query("SELECT status FROM steps WHERE run_id = ? AND node = 'approve'", [child]) == [("closed",)]


# ---------------------------------------------------------------- regressions


def test_a_single_item_for_an_append_key_is_stored_as_a_list(store: TraceStore) -> None:
    g = outer_graph({})
    r = Runner(g, store).run({"topic": "kettle", "log": "first"})
    assert store.query("SELECT value FROM wb_changes WHERE run_id = ? AND step = 0 AND key = 'log'",
                       [r.run_id]) == [('["first"]',)]
    assert store.state_at(r.run_id, 0)["log"] == ["first"]
    assert store.state_at(r.run_id, 1)["log"] == ["first", "intake"]


def test_a_forks_input_is_what_it_was_given(store: TraceStore) -> None:
    g = outer_graph({})
    first = Runner(g, store).run({"topic": "kettle"})
    plain = Runner(g, store).fork(first.run_id, 1)
    edited = Runner(g, store).fork(first.run_id, 1, set_state={"topic": "desk"})
    inputs = dict(store.query("SELECT run_id, input FROM wb_runs WHERE parent_run_id = ?", [first.run_id]))
    assert json.loads(inputs[plain.run_id]) == {}
    assert json.loads(inputs[edited.run_id]) == {"topic": "desk"}
    # What it started from is the parent's state before the fork step, edits applied.
    assert store.state_at(edited.run_id, 0)["topic"] == "desk"
    inner = Runner(g, store).fork(first.run_id, "2/review/2", set_state={"verdict": "maybe"})
    assert store.get_run(inner.run_id)["input"] == {}
    assert store.get_run(child_of(inner.run_id, 2))["input"] == {"verdict": "maybe"}


FAILS = {"n": 0}


@tool
def flaky_lookup(x: int) -> int:
    if FAILS["n"] > 0:
        FAILS["n"] -= 1
        raise ConnectionError("service down")
    return x + 1


def test_replay_of_a_failed_then_resumed_run_reports_no_divergence(store: TraceStore) -> None:
    g = Graph("flaky_then_resumed", Outer)
    g.add_node("look", lambda s: {"log": [f"got {flaky_lookup(1)}"]})
    g.sequence(START, "look", END)
    FAILS["n"] = 1
    failed = Runner(g, store).run({})
    assert failed.status == "failed"
    done = Runner(g, store).resume(failed.run_id)
    assert done.status == "completed" and done.state["log"] == ["got 2"]
    FAILS["n"] = 1  # the replay is served the recorded failure, then the resumed attempt
    report = replay_run(store, failed.run_id, g)
    assert report.identical, report.to_json()
    assert FAILS["n"] == 1  # served from the recording: the tool was not called

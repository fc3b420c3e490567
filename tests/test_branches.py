"""A fan-out's branches: where their sync bodies run (the loop or a worker thread) and how
their task rows reach the journal (in groups, before the step's commit)."""

from __future__ import annotations

import threading
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, RetryPolicy, Runner, Send, append, interrupt, tool
from workbench.runtime import calls
from workbench.runtime.calls import INLINE_AFTER
from workbench.store import TraceStore
from workbench.store.journal import read_frames


class Fan(TypedDict):
    width: int
    results: Annotated[list[int], append]
    threads: Annotated[list[str], append]


def fan_graph(body: Any, name: str = "fan", **options: Any) -> Graph:
    """``plan`` sends ``width`` branches of ``work`` (``body(i)`` returns the update)."""
    g = Graph(name, Fan)

    @g.node
    def plan(state: Fan) -> None:
        return None

    g.add_node("work", body, **options)
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("work", i) for i in range(s["width"])], targets=["work"])
    g.edge("work", END)
    return g


def where(i: int) -> dict[str, Any]:
    return {"results": [i], "threads": [threading.current_thread().name]}


def journal_frames(store: TraceStore) -> list[list[tuple[str, dict[str, Any]]]]:
    """The records of every frame this process wrote, in order."""
    journal = store._journal
    assert journal is not None
    return [f.records for f in read_frames(journal.path).frames]


# ---------------------------------------------------------------- where a body runs


def test_a_cheap_branch_body_moves_from_the_pool_to_the_loop(store: TraceStore,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "INLINE_BELOW_S", 60.0)  # "quick" whatever the machine's load
    g = fan_graph(where)
    first = Runner(g, store, max_concurrency=INLINE_AFTER).run({"width": INLINE_AFTER})
    assert first.status == "completed", first.error
    assert all(name.startswith("workbench-node") for name in first.state["threads"])  # not known yet
    assert g.nodes["work"].quick_bodies == INLINE_AFTER
    second = Runner(g, store).run({"width": 5})
    assert second.state["results"] == [0, 1, 2, 3, 4]  # plan order, whichever ran first
    assert set(second.state["threads"]) == {threading.current_thread().name}  # on the loop's thread
    rows = [r for r in store.tasks(second.run_id) if r["node"] == "work"]
    assert [(r["task"], r["status"]) for r in rows] == [(i, "completed") for i in range(5)]
    assert all(r["duration_ms"] >= 0 for r in rows)


def test_a_threaded_node_keeps_its_worker_threads_however_quick(store: TraceStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``threaded=True``: a body that uses thread-local state or calls ``asyncio.run`` is never
    moved onto the event loop."""
    monkeypatch.setattr(calls, "INLINE_BELOW_S", 60.0)
    g = fan_graph(where, threaded=True)
    for _ in range(2):
        result = Runner(g, store, max_concurrency=INLINE_AFTER).run({"width": INLINE_AFTER})
        assert result.status == "completed", result.error
        assert threading.current_thread().name not in result.state["threads"]
        assert all(name.startswith("workbench-node") for name in result.state["threads"])
    assert not calls.never_waits(g.nodes["work"])


def test_a_body_that_calls_a_tool_keeps_its_thread(store: TraceStore) -> None:
    @tool
    def lookup(i: int) -> int:
        """A tool: recorded, maybe slow (a network call)."""
        return i * 10

    def body(i: int) -> dict[str, Any]:
        return {"results": [lookup(i)], "threads": [threading.current_thread().name]}

    g = fan_graph(body, "fan_tool")
    for _ in range(2):
        result = Runner(g, store).run({"width": 3})
        assert result.state["results"] == [0, 10, 20]
        assert all(name.startswith("workbench-node") for name in result.state["threads"])
    assert g.nodes["work"].quick_bodies == 0


def test_a_slow_body_goes_back_to_the_pool(store: TraceStore) -> None:
    gate = threading.Event()

    def body(i: int) -> dict[str, Any]:
        if i == 0:
            gate.wait(0.002)  # never set: this body takes at least 2 ms, far above the limit
        return where(i)

    g = fan_graph(body, "fan_slow")
    g.nodes["work"].quick_bodies = INLINE_AFTER  # as if earlier runs had been quick
    result = Runner(g, store).run({"width": 2})
    assert result.status == "completed", result.error
    assert result.state["threads"][0] == threading.current_thread().name  # the slow one, inline
    assert result.state["threads"][1].startswith("workbench-node")  # its sibling: back in the pool
    after = Runner(g, store).run({"width": 2})
    assert all(name.startswith("workbench-node") for name in after.state["threads"])
    assert g.nodes["work"].quick_bodies < INLINE_AFTER


def test_inline_branches_retry_fail_and_interrupt_as_threaded_ones(store: TraceStore) -> None:
    tries: dict[int, int] = {}

    def body(i: int) -> dict[str, Any]:
        tries[i] = tries.get(i, 0) + 1
        if i == 1 and tries[i] == 1:
            raise ValueError("flaky")
        if i == 2:
            return {"results": [interrupt("two?")]}
        return {"results": [i]}

    g = fan_graph(body, "fan_inline_semantics")
    g.nodes["work"].retries = (RetryPolicy(attempts=2, initial_delay=0),)
    g.nodes["work"].quick_bodies = INLINE_AFTER
    first = Runner(g, store).run({"width": 4})
    assert first.status == "waiting" and first.interrupt == "two?"
    recorded = [(r["task"], r["attempt"], r["status"]) for r in store.tasks(first.run_id) if r["node"] == "work"]
    assert sorted(recorded) == [(0, 1, "completed"), (1, 1, "failed"), (1, 2, "completed"),
                                (2, 1, "interrupted"), (3, 1, "completed")]
    done = Runner(g, store).resume(first.run_id, 22)
    assert done.status == "completed", done.error
    assert done.state["results"] == [0, 1, 22, 3]
    assert tries == {0: 1, 1: 2, 2: 2, 3: 1}  # finished siblings were not run again


def test_an_inline_branch_that_fails_for_good_fails_the_run(store: TraceStore) -> None:
    def body(i: int) -> dict[str, Any]:
        if i == 0:
            raise RuntimeError("broken")
        return {"results": [i]}

    g = fan_graph(body, "fan_inline_fails")
    g.nodes["work"].quick_bodies = INLINE_AFTER
    result = Runner(g, store, max_concurrency=2).run({"width": 6})
    assert result.status == "failed" and "broken" in (result.error or "")
    statuses = {r["task"]: r["status"] for r in store.tasks(result.run_id) if r["node"] == "work"}
    assert statuses[0] == "failed"
    assert len(statuses) < 6  # the branches still waiting for a place were not started
    assert all(s == "completed" for t, s in statuses.items() if t != 0)


def test_an_inline_sync_branch_can_run_a_graph_of_its_own(store: TraceStore) -> None:
    class Inner(TypedDict):
        n: int

    sub = Graph("inner", Inner)

    @sub.node
    def double(state: Inner) -> dict[str, Any]:
        return {"n": state["n"] * 2}

    sub.edge(START, "double")
    sub.edge("double", END)

    def body(i: int) -> dict[str, Any]:
        return {"results": [Runner(sub).run({"n": i}).state["n"]]}

    g = fan_graph(body, "fan_nested")
    g.nodes["work"].quick_bodies = INLINE_AFTER
    result = Runner(g, store).run({"width": 3})
    assert result.status == "completed", result.error
    assert result.state["results"] == [0, 2, 4]
    assert g.nodes["work"].quick_bodies == 0  # it ran graphs: back to a thread next time


# ---------------------------------------------------------------- how rows reach the journal


@pytest.mark.parametrize("inline", [False, True])
def test_branch_rows_share_frames_and_come_before_the_commit(store: TraceStore, inline: bool) -> None:
    g = fan_graph(lambda i: {"results": [i]}, f"fan_rows_{inline}")
    g.nodes["work"].quick_bodies = INLINE_AFTER if inline else 0
    result = Runner(g, store).run({"width": 40})
    assert result.status == "completed", result.error
    frames = journal_frames(store)
    branch_frames = [n for n, f in enumerate(frames) if any(k == "task" and r["node"] == "work" for k, r in f)]
    rows = [r for f in frames for k, r in f if k == "task" and r["node"] == "work"]
    assert sorted(r["task"] for r in rows) == list(range(40))  # every branch, once
    assert len(branch_frames) < 40  # rows of branches that finished together went together
    commit = next(n for n, f in enumerate(frames) if any(k == "plan" and r["step"] == 3 for k, r in f))
    assert max(branch_frames) < commit  # no step is committed before its branches' rows


def test_a_question_from_a_branch_on_the_loop_waits_with_its_siblings_kept(store: TraceStore) -> None:
    runs: dict[int, int] = {}

    def body(i: int) -> dict[str, Any]:
        runs[i] = runs.get(i, 0) + 1
        return {"results": [interrupt("one?") if i == 1 else i]}

    g = fan_graph(body, "fan_inline_question")
    g.nodes["work"].quick_bodies = INLINE_AFTER
    first = Runner(g, store).run({"width": 3})
    assert first.status == "waiting" and first.interrupt == "one?"
    statuses = {r["task"]: r["status"] for r in store.tasks(first.run_id) if r["node"] == "work"}
    assert statuses == {0: "completed", 1: "interrupted", 2: "completed"}
    done = Runner(g, store).resume(first.run_id, 11)
    assert done.status == "completed", done.error
    assert done.state["results"] == [0, 11, 2]
    assert runs == {0: 1, 1: 2, 2: 1}

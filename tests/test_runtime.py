"""Runtime semantics: nodes and context, retries, timeouts, error routes, resuming failed runs,
breakpoints, concurrency, and what the trace store holds (deltas; any step's state)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, NO_VALUE, START, Graph, RetryPolicy, Runner, add, append, merge
from workbench.errors import RunNotFoundError, RunStateError
from workbench.store import TraceStore


class S(TypedDict):
    value: int
    path: Annotated[list[str], append]
    count: Annotated[int, add]
    info: dict[str, Any]
    result: str


def attempts(store: TraceStore, run_id: str, node: str | None = None) -> list[tuple[int, str, int, str]]:
    """(step, node, attempt, status) of every recorded execution."""
    return [(r["step"], r["node"], r["attempt"], r["status"]) for r in store.tasks(run_id)
            if node is None or r["node"] == node]


# ---------------------------------------------------------------- nodes and context


def test_sync_and_async_nodes_with_and_without_context(store: TraceStore) -> None:
    seen: dict[str, Any] = {}
    g = Graph("ctxgraph", S)

    @g.node
    def plain(state: S) -> dict[str, Any]:
        return {"path": "plain"}

    @g.node
    def with_ctx(state: S, ctx: Any) -> dict[str, Any]:
        seen["sync"] = (ctx.graph, ctx.step, ctx.node, ctx.task, ctx.attempt, ctx.run_id)
        return {"path": "with_ctx"}

    @g.node
    async def async_plain(state: S) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"path": "async_plain"}

    @g.node
    async def async_ctx(state: S, ctx: Any) -> dict[str, Any]:
        seen["async"] = (ctx.graph, ctx.step, ctx.node, ctx.task, ctx.attempt, ctx.run_id)
        return {"path": "async_ctx"}

    g.sequence(START, "plain", "with_ctx", "async_plain", "async_ctx", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["path"] == ["plain", "with_ctx", "async_plain", "async_ctx"]
    assert seen["sync"] == ("ctxgraph", 2, "with_ctx", 0, 1, result.run_id)
    assert seen["async"] == ("ctxgraph", 4, "async_ctx", 0, 1, result.run_id)


def test_task_index_and_listener_events(store: TraceStore) -> None:
    events: list[Any] = []
    tasks: dict[str, int] = {}
    g = Graph("events", S)

    def make(name: str) -> Any:
        def fn(state: S, ctx: Any) -> dict[str, Any]:
            tasks[name] = ctx.task
            ctx.emit("output", f"hello from {name}")
            return {"path": name}

        return fn

    for n in ("x", "y"):
        g.add_node(n, make(n))
        g.edge(START, n)
        g.edge(n, END)
    result = Runner(g, store, listener=events.append).run({})
    assert result.status == "completed"
    assert tasks == {"x": 0, "y": 1}
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("task_finished") == 2 and "step_committed" in kinds
    outputs = sorted(e.data["data"] for e in events if e.kind == "output")
    assert outputs == ["hello from x", "hello from y"]
    assert events[-1].data["status"] == "completed"


def test_parallel_sync_nodes_run_concurrently(store: TraceStore) -> None:
    barrier = threading.Barrier(3, timeout=10)
    g = Graph("threads", S)
    def make(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            barrier.wait()  # only passes when all three run at the same time
            return {"path": name}

        return fn

    for n in ("p", "q", "r"):
        g.add_node(n, make(n))
        g.edge(START, n)
        g.edge(n, END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["path"] == ["p", "q", "r"]


def test_max_concurrency_limits_parallel_tasks(store: TraceStore) -> None:
    active = {"now": 0, "max": 0}
    g = Graph("limited", S)
    names = [f"n{i}" for i in range(6)]
    def make(name: str) -> Any:
        async def fn(state: S) -> dict[str, Any]:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
            await asyncio.sleep(0.005)
            active["now"] -= 1
            return {"path": name}

        return fn

    for n in names:
        g.add_node(n, make(n))
        g.edge(START, n)
        g.edge(n, END)
    result = Runner(g, store, max_concurrency=2).run({})
    assert result.status == "completed"
    assert result.state["path"] == names
    assert 1 <= active["max"] <= 2


def test_run_row_records_graph_input_output_and_version(store: TraceStore) -> None:
    g = Graph("rec", S)
    g.add_node("a", lambda s: {"result": "done", "count": 2})
    g.sequence(START, "a", END)
    result = Runner(g, store).run({"value": 7}, run_id="my-run-1")
    assert result.run_id == "my-run-1"
    run = store.get_run("my-run-1")
    assert run["graph"] == "rec" and run["status"] == "completed"
    assert run["input"] == {"value": 7}
    assert run["output"] == result.state
    assert run["code_version"] == g.code_version and len(run["code_version"]) == 16
    assert run["graph_file"].endswith("test_runtime.py")
    assert run["started_at"] <= run["ended_at"]
    view = store.query_dicts("SELECT * FROM runs WHERE run_id = ?", ["my-run-1"])[0]
    assert view["status"] == "completed" and json.loads(view["output"]) == result.state
    steps = store.query_dicts("SELECT * FROM steps WHERE run_id = ?", ["my-run-1"])
    assert [(s["step"], s["node"], s["attempt"], s["status"]) for s in steps] == [(1, "a", 1, "completed")]
    assert json.loads(steps[0]["update"]) == {"result": "done", "count": 2}
    assert steps[0]["duration_ms"] >= 0


def test_unrecorded_run_without_store() -> None:
    g = Graph("nostore", S)
    g.add_node("a", lambda s: {"count": 1})
    g.sequence(START, "a", END)
    result = Runner(g).run({})
    assert result.status == "completed" and result.state["count"] == 1
    with pytest.raises(RunStateError, match="trace store"):
        Runner(g).resume(result.run_id)


def test_arun_inside_an_event_loop(store: TraceStore) -> None:
    g = Graph("arun", S)
    g.add_node("a", lambda s: {"count": 1})
    g.sequence(START, "a", END)

    async def main() -> Any:
        runner = Runner(g, store)
        with pytest.raises(RuntimeError, match="arun"):
            runner.run({})
        return await runner.arun({})

    assert asyncio.run(main()).state["count"] == 1


# ---------------------------------------------------------------- retries


def test_retry_policy_delay_backoff_cap_and_jitter() -> None:
    p = RetryPolicy(attempts=5, initial_delay=1.0, backoff=2.0, max_delay=3.0, jitter=False)
    assert [p.delay(n) for n in (2, 3, 4, 5)] == [1.0, 2.0, 3.0, 3.0]
    j = RetryPolicy(initial_delay=1.0, backoff=2.0, max_delay=30.0, jitter=True)
    rng = random.Random(1)
    for n in (2, 3, 4):
        d = j.delay(n, rng)
        base = 2.0 ** (n - 2)
        assert 0.5 * base <= d <= base
    assert p.should_retry(ValueError(), 4) and not p.should_retry(ValueError(), 5)
    only = RetryPolicy(retry_on=(KeyError,))
    assert only.should_retry(KeyError(), 1) and not only.should_retry(ValueError(), 1)


def test_retry_until_success_records_every_attempt(store: TraceStore) -> None:
    seen: list[int] = []
    g = Graph("retry", S)

    @g.node(retry=RetryPolicy(attempts=4, initial_delay=0, jitter=False))
    def flaky(state: S, ctx: Any) -> dict[str, Any]:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ValueError(f"flake {ctx.attempt}")
        return {"result": f"ok on {ctx.attempt}"}

    g.sequence(START, "flaky", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["result"] == "ok on 3"
    assert seen == [1, 2, 3]
    rows = store.tasks(result.run_id)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert rows[0]["error"] == "ValueError: flake 1" and rows[1]["error"] == "ValueError: flake 2"
    assert "Traceback" in rows[0]["traceback"] and "flake 1" in rows[0]["traceback"]
    assert rows[2]["error"] is None


def test_retries_exhausted_fail_the_run(store: TraceStore) -> None:
    g = Graph("exhaust", S)

    @g.node(retry=RetryPolicy(attempts=3, initial_delay=0.001, jitter=True))
    def always(state: S) -> None:
        raise ConnectionError("down")

    g.sequence(START, "always", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "'always'" in result.error and "ConnectionError: down" in result.error and "3 attempts" in result.error
    assert attempts(store, result.run_id) == [(1, "always", n, "failed") for n in (1, 2, 3)]


def test_retry_on_filters_exceptions(store: TraceStore) -> None:
    calls = {"n": 0}
    g = Graph("filtered", S)

    @g.node(retry=RetryPolicy(attempts=5, initial_delay=0, retry_on=(ConnectionError,)))
    def picky(state: S) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("transient")
        raise ValueError("a real bug")

    g.sequence(START, "picky", END)
    result = Runner(g, store).run({})
    assert result.status == "failed" and "ValueError: a real bug" in result.error
    assert calls["n"] == 2  # retried the ConnectionError, not the ValueError
    assert [r["error"] for r in store.tasks(result.run_id)] == ["ConnectionError: transient",
                                                               "ValueError: a real bug"]


def test_no_retry_policy_means_one_attempt(store: TraceStore) -> None:
    calls = {"n": 0}
    g = Graph("once", S)

    def once(state: S) -> None:
        calls["n"] += 1
        raise ValueError("x")

    g.add_node("once", once)
    g.sequence(START, "once", END)
    assert Runner(g, store).run({}).status == "failed"
    assert calls["n"] == 1


# ---------------------------------------------------------------- timeouts


def test_async_node_timeout(store: TraceStore) -> None:
    g = Graph("atimeout", S)

    @g.node(timeout=0.05, retry=RetryPolicy(attempts=2, initial_delay=0))
    async def stuck(state: S) -> None:
        await asyncio.Event().wait()  # never set

    g.sequence(START, "stuck", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "NodeTimeoutError" in result.error and "'stuck'" in result.error and "0.05s" in result.error
    rows = store.tasks(result.run_id)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "failed")]
    assert all(r["error"].startswith("NodeTimeoutError") for r in rows)


def test_sync_node_timeout(store: TraceStore) -> None:
    release = threading.Event()
    g = Graph("stimeout", S)

    @g.node(timeout=0.05)
    def blocking(state: S) -> None:
        release.wait(30)

    def listen(event: Any) -> None:
        # The timed-out thread cannot be killed; let it end once the timeout is recorded.
        if event.kind == "task_finished" and event.node == "blocking":
            release.set()

    g.sequence(START, "blocking", END)
    result = Runner(g, store, listener=listen).run({})
    release.set()
    assert result.status == "failed"
    assert "NodeTimeoutError" in result.error and "'blocking'" in result.error
    rows = store.tasks(result.run_id)
    assert len(rows) == 1 and rows[0]["status"] == "failed" and "timed out" in rows[0]["error"]


def test_node_within_timeout_succeeds(store: TraceStore) -> None:
    g = Graph("fast", S)
    g.add_node("quick", lambda s: {"result": "ok"}, timeout=30)
    g.sequence(START, "quick", END)
    assert Runner(g, store).run({}).state["result"] == "ok"


# ---------------------------------------------------------------- error routes


def test_on_error_routes_to_handler_that_sees_the_error(store: TraceStore) -> None:
    seen: list[Any] = []
    g = Graph("onerr", S)

    @g.node(on_error="recover", retry=RetryPolicy(attempts=2, initial_delay=0))
    def risky(state: S) -> dict[str, Any]:
        raise ValueError("the API said no")

    @g.node
    def recover(state: S, ctx: Any) -> dict[str, Any]:
        seen.append(ctx.error)
        return {"result": f"recovered from {ctx.error['node']}", "info": ctx.error}

    g.sequence(START, "risky", "after", END)
    g.add_node("after", lambda s: {"path": "after"})
    g.edge("recover", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["result"] == "recovered from risky"
    assert seen[0]["node"] == "risky" and seen[0]["type"] == "ValueError"
    assert "the API said no" in seen[0]["message"]
    assert result.state["path"] == []  # the normal successor did not run
    assert attempts(store, result.run_id) == [(1, "risky", 1, "failed"), (1, "risky", 2, "failed"),
                                              (2, "recover", 1, "completed")]
    plan = store.plan(result.run_id, 2)
    assert plan is not None and plan["tasks"][0]["node"] == "recover" and plan["tasks"][0]["error"]["node"] == "risky"


def test_on_error_handler_sibling_branch_still_merges(store: TraceStore) -> None:
    g = Graph("onerr_par", S)

    def bad(state: S) -> None:
        raise RuntimeError("nope")

    g.add_node("bad", bad, on_error="fix")
    g.add_node("good", lambda s: {"path": "good"})
    g.add_node("fix", lambda s, ctx: {"path": "fixed " + ctx.error["type"]})
    g.edge(START, "bad")
    g.edge(START, "good")
    g.edge("bad", END)
    g.edge("good", END)
    g.edge("fix", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["path"] == ["good", "fixed RuntimeError"]


# ---------------------------------------------------------------- resuming failed runs


def _branchy(flags: dict[str, bool], counts: dict[str, int]) -> Graph:
    g = Graph("branchy", S)

    def make(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            counts[name] = counts.get(name, 0) + 1
            if flags.get(name):
                raise RuntimeError(f"{name} is broken")
            return {"path": name, "count": 1}

        return fn

    for n in ("left", "middle", "right", "finish"):
        g.add_node(n, make(n))
    g.add_node("begin", lambda s: {"path": "begin"})
    g.edge(START, "begin")
    for n in ("left", "middle", "right"):
        g.edge("begin", n)
        g.edge(n, "finish")
    g.edge("finish", END)
    return g


def test_failed_branch_rerun_alone_on_resume(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    flags = {"middle": True}
    counts: dict[str, int] = {}
    with TraceStore(db) as st:
        first = Runner(_branchy(flags, counts), st).run({})
        assert first.status == "failed"
        assert "'middle'" in first.error and "middle is broken" in first.error
        assert st.get_run(first.run_id)["status"] == "failed"
    assert counts == {"left": 1, "middle": 1, "right": 1}

    flags["middle"] = False  # the fix
    with TraceStore(db) as st:
        result = Runner(_branchy(flags, counts), st).resume(first.run_id)
        assert result.status == "completed", result.error
        assert counts == {"left": 1, "middle": 2, "right": 1, "finish": 1}
        assert result.state["path"] == ["begin", "left", "middle", "right", "finish"]
        assert result.state["count"] == 4
        assert attempts(st, first.run_id, "middle") == [(2, "middle", 1, "failed"), (2, "middle", 2, "completed")]
        run = st.get_run(first.run_id)
        assert run["status"] == "completed" and run["error"] is None

    # The same state as a run that never failed.
    fresh = Runner(_branchy({}, {})).run({})
    assert fresh.state == result.state


def test_resume_failed_run_that_fails_again(store: TraceStore) -> None:
    flags = {"right": True}
    counts: dict[str, int] = {}
    first = Runner(_branchy(flags, counts), store).run({})
    again = Runner(_branchy(flags, counts), store).resume(first.run_id)
    assert again.status == "failed"
    assert counts == {"left": 1, "middle": 1, "right": 2}
    assert store.get_run(first.run_id)["status"] == "failed"


def test_resume_unknown_run(store: TraceStore) -> None:
    g = _branchy({}, {})
    with pytest.raises(RunNotFoundError):
        Runner(g, store).resume("no-such-run")


def test_resume_run_of_another_graph_refused(store: TraceStore) -> None:
    first = Runner(_branchy({"left": True}, {}), store).run({})
    other = Graph("other", S)
    other.add_node("a", lambda s: None)
    other.sequence(START, "a", END)
    with pytest.raises(RunStateError, match="branchy"):
        Runner(other, store).resume(first.run_id)


# ---------------------------------------------------------------- breakpoints


def _line(counts: dict[str, int] | None = None) -> Graph:
    counts = counts if counts is not None else {}
    g = Graph("line", S)

    def make(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            counts[name] = counts.get(name, 0) + 1
            return {"path": name, "count": 1}

        return fn

    for n in ("a", "b", "c"):
        g.add_node(n, make(n))
    g.sequence(START, "a", "b", "c", END)
    return g


def test_break_before_pauses_and_resumes_to_same_state(tmp_path: Path) -> None:
    db = str(tmp_path / "b.duckdb")
    counts: dict[str, int] = {}
    with TraceStore(db) as st:
        paused = Runner(_line(counts), st).run({}, break_before=["b"])
        assert paused.status == "paused"
        assert paused.paused is not None and paused.paused["when"] == "before" and paused.paused["node"] == "b"
        assert paused.state["path"] == ["a"]
        assert st.get_run(paused.run_id)["status"] == "paused"
        assert [e["kind"] for e in st.events(paused.run_id)] == ["breakpoint"]
    assert counts == {"a": 1}
    with TraceStore(db) as st:
        done = Runner(_line(counts), st).resume(paused.run_id)
        assert done.status == "completed", done.error
        assert st.get_run(paused.run_id)["status"] == "completed"
    assert counts == {"a": 1, "b": 1, "c": 1}
    assert done.state == Runner(_line()).run({}).state


def test_break_before_first_node(store: TraceStore) -> None:
    counts: dict[str, int] = {}
    paused = Runner(_line(counts), store).run({}, break_before=["a"])
    assert paused.status == "paused" and counts == {}
    done = Runner(_line(counts), store).resume(paused.run_id)
    assert done.status == "completed" and counts == {"a": 1, "b": 1, "c": 1}


def test_break_after(store: TraceStore) -> None:
    counts: dict[str, int] = {}
    paused = Runner(_line(counts), store).run({}, break_after=["a", "b"])
    assert paused.status == "paused" and paused.paused["when"] == "after" and paused.paused["node"] == "a"
    assert paused.state["path"] == ["a"] and counts == {"a": 1}
    second = Runner(_line(counts), store).resume(paused.run_id)
    assert second.status == "paused" and second.paused["node"] == "b"
    assert second.state["path"] == ["a", "b"]
    done = Runner(_line(counts), store).resume(paused.run_id)
    assert done.status == "completed"
    assert done.state == Runner(_line()).run({}).state
    assert counts == {"a": 1, "b": 1, "c": 1}


def test_break_before_node_in_loop_pauses_every_time(store: TraceStore) -> None:
    g = Graph("loopbp", S)
    g.add_node("a", lambda s: {"count": 1})
    g.add_node("b", lambda s: {"path": f"b{s['count']}"})
    g.edge(START, "a")
    g.edge("a", "b")
    g.route("b", lambda s: "a" if s["count"] < 3 else END, targets=["a", END])
    result = Runner(g, store).run({}, break_before=["b"])
    pauses = 0
    while result.status == "paused":
        pauses += 1
        result = Runner(g, store).resume(result.run_id)
    assert result.status == "completed"
    assert pauses == 3
    assert result.state["path"] == ["b1", "b2", "b3"]


def test_break_when_predicate(store: TraceStore) -> None:
    g = Graph("bw", S)
    g.add_node("inc", lambda s: {"count": 1, "path": str(s["count"] + 1)})
    g.edge(START, "inc")
    g.route("inc", lambda s: "inc" if s["count"] < 5 else END, targets=["inc", END])
    paused = Runner(g, store).run({}, break_when=lambda s: s["count"] == 2)
    assert paused.status == "paused" and paused.paused["when"] == "condition"
    assert paused.state["count"] == 2 and paused.step == 2
    assert store.get_run(paused.run_id)["status"] == "paused"
    with pytest.raises(RunStateError):
        Runner(g, store).resume(paused.run_id, {"an": "answer"})
    done = Runner(g, store).resume(paused.run_id)
    assert done.status == "completed"
    assert done.state == Runner(g).run({}).state
    assert done.state["path"] == ["1", "2", "3", "4", "5"]


def test_break_when_not_checked_after_last_step(store: TraceStore) -> None:
    result = Runner(_line(), store).run({}, break_when=lambda s: s["count"] == 3)
    assert result.status == "completed"


def test_resume_completed_run_refused(store: TraceStore) -> None:
    result = Runner(_line(), store).run({})
    with pytest.raises(RunStateError, match="completed"):
        Runner(_line(), store).resume(result.run_id)
    with pytest.raises(RunStateError):
        Runner(_line(), store).resume(result.run_id, NO_VALUE)


# ---------------------------------------------------------------- storage grows with the change


class Big(TypedDict):
    items: Annotated[list[str], append]
    n: Annotated[int, add]
    label: str


STEPS = 1000


def _ticker() -> Graph:
    g = Graph("ticker", Big, max_steps=STEPS + 10)

    @g.node
    def tick(state: Big) -> dict[str, Any]:
        n = state["n"]
        update: dict[str, Any] = {"items": f"item-{n}", "n": 1}
        if n % 250 == 0:
            update["label"] = f"label at {n}"
        return update

    g.edge(START, "tick")
    g.route("tick", lambda s: "tick" if s["n"] < STEPS else END, targets=["tick", END])
    return g


def _expected(k: int) -> dict[str, Any]:
    labels = [i for i in range(k) if i % 250 == 0]
    return {"items": [f"item-{i}" for i in range(k)], "n": k,
            "label": f"label at {labels[-1]}" if labels else ""}


@pytest.fixture(scope="module")
def ticker_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = str(tmp_path_factory.mktemp("ticker") / "t.duckdb")
    st = TraceStore(db)
    result = Runner(_ticker(), st).run({})
    yield st, result
    st.close()


def test_long_loop_completes(ticker_run: Any) -> None:
    _, result = ticker_run
    assert result.status == "completed", result.error
    assert result.state == _expected(STEPS)
    assert result.step == STEPS


def test_long_loop_stores_changes_not_copies(ticker_run: Any) -> None:
    st, result = ticker_run
    rows = st.query("SELECT step, key, op, value FROM state_changes WHERE run_id = ? ORDER BY step, key",
                    [result.run_id])
    extends = [r for r in rows if r[1] == "items"]
    assert len(extends) == STEPS + 1  # the initial value, then one row per step
    assert extends[0][:3] == (0, "items", "set")
    for step, _, op, value in extends[1:]:
        assert op == "extend"
        assert json.loads(value) == [f"item-{step - 1}"]
    # Every step stores a handful of short rows: the total is proportional to the steps, not
    # quadratic as whole-list copies would be (which would take > 5 MB here).
    assert len(rows) <= 3 * (STEPS + 1)
    total = st.query("SELECT sum(length(value::VARCHAR)) FROM state_changes WHERE run_id = ?",
                     [result.run_id])[0][0]
    assert total < 40 * (STEPS + 1)
    # The step rows hold the update each node returned, not the state.
    updates = st.query("SELECT max(length(\"update\"::VARCHAR)) FROM steps WHERE run_id = ?", [result.run_id])[0][0]
    assert updates < 80


@pytest.mark.parametrize("k", [0, 1, 2, 249, 250, 251, 500, 999, STEPS])
def test_state_at_any_step_python(ticker_run: Any, k: int) -> None:
    st, result = ticker_run
    assert st.state_at(result.run_id, k) == _expected(k)


@pytest.mark.parametrize("k", [0, 1, 2, 250, 251, 777, STEPS])
def test_state_at_any_step_sql_macro(ticker_run: Any, k: int) -> None:
    st, result = ticker_run
    rows = st.query("SELECT state FROM state_at(?, ?)", [result.run_id, k])
    assert len(rows) == 1
    assert json.loads(rows[0][0]) == _expected(k)


def test_states_of_every_step(ticker_run: Any) -> None:
    st, result = ticker_run
    states = st.states(result.run_id)
    assert sorted(states) == list(range(STEPS + 1))
    for k in (0, 3, 500, STEPS):
        assert states[k] == _expected(k)


class M(TypedDict):
    items: Annotated[list[Any], append]
    meta: Annotated[dict[str, Any], merge]
    total: Annotated[int, add]
    name: str


def test_state_at_with_mixed_rules(store: TraceStore) -> None:
    """Replace, merge, add and append keys rebuilt at every step, in Python and in SQL."""

    g = Graph("mixed", M)
    g.add_node("one", lambda s: {"items": [{"k": 1}, [1, 2]], "meta": {"a": 1}, "name": "x"})
    g.add_node("two", lambda s: {"total": 5, "meta": {"b": None}})
    g.add_node("three", lambda s: {"items": "s", "name": "y", "total": -1})
    g.sequence(START, "one", "two", "three", END)
    result = Runner(g, store).run({"items": ["start"]})
    assert result.status == "completed", result.error
    expected = {
        0: {"items": ["start"], "meta": {}, "total": 0, "name": ""},
        1: {"items": ["start", {"k": 1}, [1, 2]], "meta": {"a": 1}, "total": 0, "name": "x"},
        2: {"items": ["start", {"k": 1}, [1, 2]], "meta": {"a": 1, "b": None}, "total": 5, "name": "x"},
        3: {"items": ["start", {"k": 1}, [1, 2], "s"], "meta": {"a": 1, "b": None}, "total": 4, "name": "y"},
    }
    for k, want in expected.items():
        assert store.state_at(result.run_id, k) == want
        sql = store.query("SELECT state FROM state_at(?, ?)", [result.run_id, k])[0][0]
        assert json.loads(sql) == want
    assert expected[3] == result.state


# ---------------------------------------------------------------- failures after the tasks finished


def test_wrong_typed_update_fails_its_task_and_resume_reruns_it(store: TraceStore) -> None:
    flags = {"bad": True}
    g = Graph("typed_fix", S)
    g.add_node("count_it", lambda s: {"count": "three" if flags["bad"] else 3})
    g.sequence(START, "count_it", END)
    first = Runner(g, store).run({})
    assert first.status == "failed" and "'count'" in first.error
    assert attempts(store, first.run_id) == [(1, "count_it", 1, "failed")]
    flags["bad"] = False
    done = Runner(g, store).resume(first.run_id)
    assert done.status == "completed", done.error
    assert done.state["count"] == 3


def test_router_failure_resumes_without_rerunning_the_node(store: TraceStore) -> None:
    runs = {"n": 0}
    flags = {"bad": True}
    g = Graph("router_fix", S)

    def work(state: S) -> dict[str, Any]:
        runs["n"] += 1
        return {"count": 1}

    def router(state: S) -> str:
        if flags["bad"]:
            raise KeyError("missing label")
        return END

    g.add_node("work", work)
    g.edge(START, "work")
    g.route("work", router, targets=[END])
    first = Runner(g, store).run({})
    assert first.status == "failed" and "KeyError" in first.error
    flags["bad"] = False
    done = Runner(g, store).resume(first.run_id)
    assert done.status == "completed", done.error
    assert done.state["count"] == 1 and runs["n"] == 1


def test_join_progress_survives_a_pause(tmp_path: Path) -> None:
    runs: dict[str, int] = {}

    def build() -> Graph:
        g = Graph("join_pause", S)

        def make(name: str) -> Any:
            def fn(state: S) -> dict[str, Any]:
                runs[name] = runs.get(name, 0) + 1
                return {"path": name}

            return fn

        for n in ("short", "l1", "l2", "l3", "merge"):
            g.add_node(n, make(n))
        g.edge(START, "short")
        g.sequence(START, "l1", "l2", "l3")
        g.join(["short", "l3"], "merge")
        g.edge("merge", END)
        return g

    db = str(tmp_path / "j.duckdb")
    with TraceStore(db) as st:
        paused = Runner(build(), st).run({}, break_after=["l1"])
        assert paused.status == "paused"
    with TraceStore(db) as st:
        done = Runner(build(), st).resume(paused.run_id)
        assert done.status == "completed", done.error
    assert runs == {"short": 1, "l1": 1, "l2": 1, "l3": 1, "merge": 1}
    assert done.state["path"] == ["short", "l1", "l2", "l3", "merge"]


class Odd(TypedDict):
    items: Annotated[list[Any], append]
    name: str
    meta: Annotated[dict[str, Any], merge]


def test_state_at_with_awkward_json_values(store: TraceStore) -> None:
    weird: list[Any] = ['ü "quoted" \\ back', "", None, 1.5, True, {"a": [1, {"b": None}]}, "line\nbreak", "🎉"]
    g = Graph("awkward", Odd)
    g.add_node("a", lambda s: {"items": weird[:4], "name": 'x "y" \\ z ü', "meta": {'k"ey': "v"}})
    g.add_node("b", lambda s: {"items": weird[4:]})
    g.sequence(START, "a", "b", END)
    result = Runner(g, store).run({})
    assert result.state["items"] == weird
    for k in (0, 1, 2, 9):
        py = store.state_at(result.run_id, k)
        sql = json.loads(store.query("SELECT state FROM state_at(?, ?)", [result.run_id, k])[0][0])
        assert py == sql
    assert store.state_at(result.run_id, 2) == result.state
    assert store.state_at(result.run_id, 1)["items"] == weird[:4]


def test_concurrent_runs_in_one_process_share_a_store(store: TraceStore) -> None:
    g = _line()

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(Runner(g, store).arun({"value": i}) for i in range(5))))

    results = asyncio.run(main())
    assert [r.status for r in results] == ["completed"] * 5
    assert len({r.run_id for r in results}) == 5
    for i, r in enumerate(results):
        assert store.state_at(r.run_id, 3) == r.state and r.state["value"] == i
        assert len(store.tasks(r.run_id)) == 3


def test_breakpoints_around_a_send_fanout(store: TraceStore) -> None:
    from workbench import Send

    runs = {"work": 0}
    g = Graph("bp_send", S)
    g.add_node("plan", lambda s: {"value": 3})

    def work(arg: dict[str, Any]) -> dict[str, Any]:
        runs["work"] += 1
        return {"path": f"w{arg['i']}"}

    g.add_node("work", work)
    g.add_node("end", lambda s: {"result": ",".join(s["path"])})
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("work", {"i": i}) for i in range(s["value"])], targets=["work"])
    g.edge("work", "end")
    g.edge("end", END)
    r = Runner(g, store).run({}, break_before=["work"], break_after=["work"])
    assert r.status == "paused" and r.paused["when"] == "before" and runs["work"] == 0
    r = Runner(g, store).resume(r.run_id)
    assert r.status == "paused" and r.paused["when"] == "after" and runs["work"] == 3
    r = Runner(g, store).resume(r.run_id)
    assert r.status == "completed" and r.state["result"] == "w0,w1,w2" and runs["work"] == 3

"""Graph building and validation, and the control flow a graph describes: sequencing, routing,
loops with a step limit, Send fan-out, joins, subgraphs, and order-independent merging."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, Runner, Send, add, append
from workbench.errors import GraphDefinitionError, InputError, RoutingError
from workbench.render import to_ascii, to_mermaid
from workbench.store import TraceStore

THIS_FILE = "test_graph.py"


class S(TypedDict):
    value: int
    path: Annotated[list[str], append]
    notes: Annotated[list[str], append]
    topics: list[str]
    count: Annotated[int, add]


def noop(state: Any) -> None:
    return None


def visit(name: str) -> Any:
    def fn(state: Any) -> dict[str, Any]:
        return {"path": name}

    fn.__name__ = name
    return fn


def order(store: TraceStore, run_id: str) -> list[tuple[int, str]]:
    """(step, node) of every completed task, in order."""
    return [(r["step"], r["node"]) for r in store.tasks(run_id) if r["status"] == "completed"]


# ---------------------------------------------------------------- validation


def _graph_with(*nodes: str) -> Graph:
    g = Graph("v", S)
    for n in nodes:
        g.add_node(n, noop)
    return g


def _check_message(msg: str, node: str | None, problem: str) -> None:
    assert THIS_FILE in msg, msg
    assert "'v'" in msg, msg  # the graph
    if node is not None:
        assert f"'{node}'" in msg, msg
    assert re.search(problem, msg), msg


def test_valid_graph_passes() -> None:
    g = _graph_with("a", "b")
    g.sequence(START, "a", "b", END)
    assert g.validate() is g


def test_edge_to_unknown_node() -> None:
    g = _graph_with("classify", "draft")
    g.sequence(START, "classify", "draft", END)
    g.edge("classify", "drfat")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "classify", r"unknown node 'drfat'")
    assert "did you mean 'draft'" in str(info.value)


def test_route_to_unknown_node() -> None:
    """The message names the line that declared the route, where the typo is (it named the
    node's definition)."""
    import inspect

    g = _graph_with("a", "b")
    g.edge(START, "a")
    route_line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    g.route("a", lambda s: "b", targets=["b", "ghost"])
    g.edge("b", END)
    g.edge("a", "gohst")
    edge_line = route_line + 2
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "a", r"edge to unknown node 'gohst'")
    assert f"{THIS_FILE}:{edge_line}:" in str(info.value)
    g.edges["a"].remove("gohst")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "a", r"route to unknown node 'ghost'")
    assert f"{THIS_FILE}:{route_line}:" in str(info.value)


def test_edge_from_unknown_node() -> None:
    g = _graph_with("a")
    g.sequence(START, "a", END)
    g.edge("nowhere", "a")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "nowhere", "unknown node")


def test_unreachable_node() -> None:
    g = _graph_with("a", "orphan")
    g.sequence(START, "a", END)
    g.edge("orphan", END)
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "orphan", "unreachable")


def test_no_entry() -> None:
    g = _graph_with("a")
    g.edge("a", END)
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), None, "no entry")


def test_node_with_no_outgoing_edge() -> None:
    g = _graph_with("a", "dead_end")
    g.sequence(START, "a", "dead_end")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "dead_end", "no outgoing edge")


def test_node_that_can_never_reach_end() -> None:
    g = _graph_with("a", "b", "c")
    g.sequence(START, "a", END)
    g.edge("a", "b")
    g.edge("b", "c")
    g.edge("c", "b")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    msg = str(info.value)
    assert THIS_FILE in msg and ("'b'" in msg or "'c'" in msg) and "never reach END" in msg


def test_no_path_to_end_names_a_node() -> None:
    g = _graph_with("a", "b")
    g.sequence(START, "a", "b")
    g.edge("b", "a")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    msg = str(info.value)
    assert THIS_FILE in msg
    assert "'a'" in msg or "'b'" in msg


def test_no_path_to_end_is_refused() -> None:
    g = _graph_with("a", "b")
    g.sequence(START, "a", "b")
    g.edge("b", "a")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    assert THIS_FILE in str(info.value) and "END" in str(info.value)


def test_duplicate_node() -> None:
    g = _graph_with("a")

    def second(state: Any) -> None:
        return None

    with pytest.raises(GraphDefinitionError) as info:
        g.add_node("a", second)
    _check_message(str(info.value), "a", "already exists")
    # Named where the second definition is, and where the first one was.
    line = second.__code__.co_firstlineno
    assert f"{THIS_FILE}:{line}:" in str(info.value)
    assert f"first defined at line {noop.__code__.co_firstlineno}" in str(info.value)


def test_an_edge_from_end_is_refused_by_name() -> None:
    g = _graph_with("a")
    g.sequence(START, "a", END)
    g.edge(END, "a")
    with pytest.raises(GraphDefinitionError, match=r"an edge from END .* is not allowed: END is where a run stops"):
        g.validate()


def test_a_node_function_that_cannot_be_called_so_is_refused_when_added() -> None:
    """A node is called with the state (and the context, if it asks): a function that takes
    nothing, or needs more, is refused when added, not when its step runs."""
    g = Graph("v", S)
    with pytest.raises(GraphDefinitionError, match=r"takes no parameter; .*def NAME\(state\)"):
        g.add_node("a", lambda: None)
    with pytest.raises(GraphDefinitionError, match=r"needs 3 arguments \(state, ctx, extra\)"):
        g.add_node("b", lambda state, ctx, extra: None)
    with pytest.raises(GraphDefinitionError, match=r"needs 3 arguments \(state, ctx, extra\)"):
        g.add_node("b", lambda state, ctx, *, extra: None)
    # A loop's closure idiom keeps its default; a parameter named ctx gets the context.
    seen: list[Any] = []
    for name in ("c1", "c2"):
        g.add_node(name, lambda state, _n=name: seen.append(_n))
    g.add_node("d", lambda state, ctx=None: seen.append(type(ctx).__name__))
    g.add_node("e", lambda *args: seen.append(len(args)))
    g.sequence(START, "c1", "c2", "d", "e", END)
    assert Runner(g).run({}).status == "completed"
    assert seen == ["c1", "c2", "Context", 1]


@pytest.mark.parametrize(("annotation", "rule"), [("int", "append"), ("str", "merge"), ("list", "merge"),
                                                 ("dict", "add"), ("int", "merge")])
def test_a_merge_rule_on_a_type_it_cannot_hold_is_refused(annotation: str, rule: str) -> None:
    from workbench import merge

    hint = {"int": int, "str": str, "list": list, "dict": dict}[annotation]
    rules = {"append": append, "merge": merge, "add": add}
    schema = TypedDict("Wrong", {"k": Annotated[hint, rules[rule]]})  # type: ignore[misc]  # noqa: UP013 (built per case)
    with pytest.raises(GraphDefinitionError, match=f"state key 'k' is declared {annotation} with the {rule} rule"):
        Graph("wrong", schema)


@pytest.mark.parametrize("name", [START, END, "__private"])  # "": test_graph_declarations.py
def test_reserved_node_names(name: str) -> None:
    g = Graph("v", S)
    with pytest.raises(GraphDefinitionError, match="reserved"):
        g.add_node(name, noop)


def test_non_callable_node() -> None:
    g = Graph("v", S)
    with pytest.raises(GraphDefinitionError, match="not a function"):
        g.add_node("x", 42)  # type: ignore[arg-type]


def test_second_router_on_same_node() -> None:
    g = _graph_with("a")
    g.route("a", lambda s: END, targets=[END])
    with pytest.raises(GraphDefinitionError, match="already has a router"):
        g.route("a", lambda s: END, targets=[END])


def test_join_from_unknown_node() -> None:
    g = _graph_with("a", "c")
    g.sequence(START, "a", "c", END)
    g.join(["a", "zz"], "c")
    with pytest.raises(GraphDefinitionError, match="'zz'"):
        g.validate()


def test_on_error_to_unknown_node() -> None:
    g = Graph("v", S)
    g.add_node("a", noop, on_error="handler")
    g.sequence(START, "a", END)
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    _check_message(str(info.value), "a", "unknown node 'handler'")


def test_message_gives_line_of_the_node() -> None:
    g = Graph("v", S)

    @g.node
    def lonely(state: S) -> None:
        return None

    g.edge(START, "lonely")
    with pytest.raises(GraphDefinitionError) as info:
        g.validate()
    line = lonely.__code__.co_firstlineno
    assert f"{THIS_FILE}:{line}" in str(info.value)


def test_runner_validates_the_graph() -> None:
    g = _graph_with("a")
    g.edge(START, "a")
    with pytest.raises(GraphDefinitionError):
        Runner(g)


def test_invalid_breakpoint_name_refused() -> None:
    g = _graph_with("a")
    g.sequence(START, "a", END)
    with pytest.raises(InputError, match="'nope'"):
        Runner(g).run({}, break_before=["nope"])


def test_render_ascii_and_mermaid() -> None:
    g = _graph_with("a", "b", "c")
    g.edge(START, "a")
    g.route("a", lambda s: "b", targets=["b", "c"])
    g.edge("b", "a")
    g.edge("c", END)
    art = to_ascii(g)
    for name in ("a", "b", "c", "START", "END"):
        assert name in art
    assert "↺" in art  # the b → a loop is marked
    mer = to_mermaid(g)
    assert mer.startswith("flowchart TD")
    assert "n_a -.-> n_b" in mer and "n_b --> n_a" in mer and "n_c --> __end__" in mer


# ---------------------------------------------------------------- sequencing and routing


def test_sequence_runs_in_order(store: TraceStore) -> None:
    g = Graph("seq", S)
    for n in ("one", "two", "three"):
        g.add_node(n, visit(n))
    g.sequence(START, "one", "two", "three", END)
    result = Runner(g, store).run({})
    assert result.status == "completed"
    assert result.state["path"] == ["one", "two", "three"]
    assert order(store, result.run_id) == [(1, "one"), (2, "two"), (3, "three")]
    assert result.step == 3


def test_conditional_routing_on_state(store: TraceStore) -> None:
    def build() -> Graph:
        g = Graph("route", S)
        g.add_node("check", visit("check"))
        g.add_node("small", visit("small"))
        g.add_node("large", visit("large"))
        g.edge(START, "check")
        g.route("check", lambda s: "big" if s["value"] > 10 else "little", targets={"big": "large",
                                                                                  "little": "small"})
        g.edge("small", END)
        g.edge("large", END)
        return g

    assert Runner(build(), store).run({"value": 3}).state["path"] == ["check", "small"]
    assert Runner(build(), store).run({"value": 30}).state["path"] == ["check", "large"]


def test_router_may_return_end_or_a_list(store: TraceStore) -> None:
    g = Graph("multi", S)
    for n in ("a", "b", "c"):
        g.add_node(n, visit(n))
    g.edge(START, "a")
    g.route("a", lambda s: ["b", "c"] if s["value"] else END, targets=["b", "c", END])
    g.edge("b", END)
    g.edge("c", END)
    assert Runner(g, store).run({"value": 0}).state["path"] == ["a"]
    both = Runner(g, store).run({"value": 1})
    assert both.state["path"] == ["a", "b", "c"]
    assert order(store, both.run_id) == [(1, "a"), (2, "b"), (2, "c")]


def test_router_receives_state_after_merge(store: TraceStore) -> None:
    seen: list[int] = []
    g = Graph("after", S)
    g.add_node("inc", lambda s: {"count": 5})

    def router(s: S) -> str:
        seen.append(s["count"])
        return END

    g.edge(START, "inc")
    g.route("inc", router, targets=[END])
    Runner(g, store).run({"count": 1})
    assert seen == [6]


def test_router_returning_unknown_node_fails_with_routing_error(store: TraceStore) -> None:
    g = Graph("badroute", S)
    g.add_node("pick", noop)
    g.add_node("ok", noop)
    g.edge(START, "pick")
    g.route("pick", lambda s: "elsewhere", targets=["ok"])
    g.edge("ok", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert THIS_FILE in result.error
    assert "'pick'" in result.error and "'elsewhere'" in result.error and "'badroute'" in result.error
    assert store.get_run(result.run_id)["error"] == result.error


def test_routing_error_is_a_routing_error(store: TraceStore) -> None:
    # Inside a subgraph the original exception reaches the parent's task, whose error names its type.
    sub = Graph("badroute_inner", S)
    sub.add_node("pick", noop)
    sub.add_node("ok", noop)
    sub.edge(START, "pick")
    sub.route("pick", lambda s: "elsewhere", targets=["ok"])
    sub.edge("ok", END)
    g = Graph("badroute_outer", S)
    g.add_node("inner", sub)
    g.sequence(START, "inner", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    row = store.tasks(result.run_id)[0]
    assert row["error"].startswith("RoutingError:") and "'elsewhere'" in row["error"]
    assert issubclass(RoutingError, Exception)


def test_router_returning_undeclared_existing_node_fails(store: TraceStore) -> None:
    g = Graph("undeclared", S)
    g.add_node("pick", noop)
    g.add_node("ok", noop)
    g.add_node("secret", noop)
    g.edge(START, "pick")
    g.route("pick", lambda s: "secret", targets=["ok"])
    g.edge("ok", "secret")
    g.edge("secret", END)
    result = Runner(g, store).run({})
    assert result.status == "failed" and "'secret'" in result.error and "'pick'" in result.error


def test_route_labels_may_map_to_end(store: TraceStore) -> None:
    g = Graph("labels", S)
    g.add_node("pick", visit("pick"))
    g.add_node("more", visit("more"))
    g.edge(START, "pick")
    g.route("pick", lambda s: "stop" if s["value"] else "go", targets={"stop": END, "go": "more"})
    g.edge("more", END)
    assert Runner(g, store).run({"value": 1}).state["path"] == ["pick"]
    assert Runner(g, store).run({"value": 0}).state["path"] == ["pick", "more"]


def test_router_returning_non_string_fails(store: TraceStore) -> None:
    g = Graph("badroute3", S)
    g.add_node("pick", noop)
    g.add_node("ok", noop)
    g.edge(START, "pick")
    g.route("pick", lambda s: 42, targets=["ok"])
    g.edge("ok", END)
    result = Runner(g, store).run({})
    assert result.status == "failed" and "'pick'" in result.error and "42" in result.error


def test_send_to_undeclared_node_fails(store: TraceStore) -> None:
    g = Graph("badsend", S)
    g.add_node("pick", noop)
    g.add_node("ok", noop)
    g.add_node("other", noop)
    g.edge(START, "pick")
    g.route("pick", lambda s: [Send("other", {})], targets=["ok"])
    g.edge("ok", "other")
    g.edge("other", END)
    result = Runner(g, store).run({})
    assert result.status == "failed" and "'other'" in result.error and THIS_FILE in result.error


def test_router_that_raises_fails_the_run(store: TraceStore) -> None:
    g = Graph("raising", S)
    g.add_node("pick", noop)
    g.edge(START, "pick")

    def router(s: S) -> str:
        raise KeyError("missing")

    g.route("pick", router, targets=[END])
    result = Runner(g, store).run({})
    assert result.status == "failed" and "KeyError" in result.error


# ---------------------------------------------------------------- loops and the step limit


def _loop_graph(limit_value: int, max_steps: int = 100) -> Graph:
    g = Graph("loop", S, max_steps=max_steps)
    g.add_node("a", lambda s: {"count": 1, "path": "a"})
    g.add_node("b", lambda s: {"path": "b"})
    g.edge(START, "a")
    g.edge("a", "b")
    g.route("b", lambda s: "a" if s["count"] < limit_value else END, targets=["a", END])
    return g


def test_loop_runs_until_its_condition(store: TraceStore) -> None:
    result = Runner(_loop_graph(3), store).run({})
    assert result.status == "completed"
    assert result.state["path"] == ["a", "b"] * 3
    assert result.state["count"] == 3
    assert result.step == 6


def test_unbounded_loop_stops_at_step_limit_naming_limit_and_loop(store: TraceStore) -> None:
    result = Runner(_loop_graph(10**9, max_steps=8), store).run({})
    assert result.status == "failed"
    assert "step limit of 8" in result.error
    assert "a → b → a" in result.error
    assert THIS_FILE in result.error
    run = store.get_run(result.run_id)
    assert run["status"] == "failed" and "step limit of 8" in run["error"]
    # Exactly the allowed steps ran.
    assert max(s for s, _ in order(store, result.run_id)) == 8


def test_step_limit_per_run_overrides_graph(store: TraceStore) -> None:
    result = Runner(_loop_graph(10**9, max_steps=100), store).run({}, max_steps=4)
    assert result.status == "failed" and "step limit of 4" in result.error
    ok = Runner(_loop_graph(3, max_steps=2), store).run({}, max_steps=6)
    assert ok.status == "completed"


def test_self_loop_named(store: TraceStore) -> None:
    g = Graph("selfloop", S, max_steps=5)
    g.add_node("spin", lambda s: {"count": 1})
    g.edge(START, "spin")
    g.route("spin", lambda s: "spin", targets=["spin", END])
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "step limit of 5" in result.error and "spin → spin" in result.error


# ---------------------------------------------------------------- Send fan-out and joins


def _fanout_graph(counter: dict[str, int]) -> Graph:
    g = Graph("fan", S)

    @g.node
    def plan(state: S) -> dict[str, Any]:
        return {"topics": [f"t{i}" for i in range(state["value"])]}

    @g.node
    def work(arg: dict[str, Any]) -> dict[str, Any]:
        counter["work"] = counter.get("work", 0) + 1
        return {"notes": f"{arg['topic']}#{arg['i']}"}

    @g.node
    def combine(state: S) -> dict[str, Any]:
        counter["combine"] = counter.get("combine", 0) + 1
        return {"path": f"combined {len(state['notes'])}"}

    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("work", {"topic": t, "i": i}) for i, t in enumerate(s["topics"])],
            targets=["work"])
    g.edge("work", "combine")
    g.edge("combine", END)
    return g


@pytest.mark.parametrize("width", [1, 3, 7])
def test_send_fanout_width_known_at_run_time(width: int, store: TraceStore) -> None:
    counter: dict[str, int] = {}
    result = Runner(_fanout_graph(counter), store).run({"value": width})
    assert result.status == "completed", result.error
    assert counter == {"work": width, "combine": 1}  # the edge work→combine is deduplicated
    assert result.state["notes"] == [f"t{i}#{i}" for i in range(width)]
    assert result.state["path"] == [f"combined {width}"]
    rows = [r for r in store.tasks(result.run_id) if r["node"] == "work"]
    assert [r["arg"] for r in rows] == [{"topic": f"t{i}", "i": i} for i in range(width)]
    assert {r["step"] for r in rows} == {2}
    plan = store.plan(result.run_id, 2)
    assert plan is not None and len(plan["tasks"]) == width


def test_send_fanout_of_zero_width_ends(store: TraceStore) -> None:
    counter: dict[str, int] = {}
    result = Runner(_fanout_graph(counter), store).run({"value": 0})
    assert result.status == "completed"
    assert counter == {}


def test_join_waits_for_branches_of_different_lengths(store: TraceStore) -> None:
    runs: dict[str, int] = {}
    seen_at_join: list[list[str]] = []
    g = Graph("join", S)

    def track(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            runs[name] = runs.get(name, 0) + 1
            if name == "merge":
                seen_at_join.append(list(state["path"]))
            return {"path": name}

        return fn

    for n in ("short", "long1", "long2", "long3", "merge"):
        g.add_node(n, track(n))
    g.edge(START, "short")
    g.sequence(START, "long1", "long2", "long3")
    g.join(["short", "long3"], "merge")
    g.edge("merge", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert runs == {"short": 1, "long1": 1, "long2": 1, "long3": 1, "merge": 1}
    assert order(store, result.run_id) == [(1, "short"), (1, "long1"), (2, "long2"), (3, "long3"), (4, "merge")]
    assert seen_at_join == [["short", "long1", "long2", "long3"]]


def test_join_runs_again_each_time_all_sources_finish(store: TraceStore) -> None:
    g = Graph("join_loop", S)
    g.add_node("split", lambda s: {"count": 1})
    g.add_node("x", visit("x"))
    g.add_node("y", visit("y"))
    g.add_node("both", visit("both"))
    g.edge(START, "split")
    g.edge("split", "x")
    g.edge("split", "y")
    g.join(["x", "y"], "both")
    g.route("both", lambda s: "split" if s["count"] < 2 else END, targets=["split", END])
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["path"] == ["x", "y", "both", "x", "y", "both"]


# ---------------------------------------------------------------- determinism


def _racing_graph(finish_order: list[str], delays: dict[str, float]) -> Graph:
    """Three parallel branches; each finishes only after the one before it in ``finish_order``."""
    g = Graph("race", S)
    events: dict[str, asyncio.Event] = {}

    def make(name: str) -> Any:
        async def fn(state: S) -> dict[str, Any]:
            await asyncio.sleep(delays.get(name, 0))  # workload of varying length
            pos = finish_order.index(name)
            if pos:
                await events[finish_order[pos - 1]].wait()
            events[name].set()
            return {"notes": name, "count": 1}

        fn.__name__ = name
        return fn

    g.add_node("init", lambda s: None)

    async def setup(state: S) -> None:
        for n in ("alpha", "beta", "gamma"):
            events[n] = asyncio.Event()
        return None

    g.add_node("setup", setup)
    for n in ("alpha", "beta", "gamma"):
        g.add_node(n, make(n))
        g.edge("setup", n)
        g.edge(n, "done")
    g.add_node("done", lambda s: {"path": ",".join(s["notes"])})
    g.sequence(START, "init", "setup")
    g.edge("done", END)
    return g


@pytest.mark.parametrize(
    ("finish_order", "delays"),
    [(["alpha", "beta", "gamma"], {"alpha": 0.0, "beta": 0.01, "gamma": 0.02}),
     (["gamma", "beta", "alpha"], {"alpha": 0.02, "beta": 0.01, "gamma": 0.0}),
     (["beta", "gamma", "alpha"], {})],
)
def test_merge_order_does_not_depend_on_finish_order(finish_order: list[str], delays: dict[str, float],
                                                     store: TraceStore) -> None:
    finished: list[str] = []

    def listen(event: Any) -> None:
        if event.kind == "task_finished" and event.node in ("alpha", "beta", "gamma"):
            finished.append(event.node)

    result = Runner(_racing_graph(finish_order, delays), store, listener=listen).run({})
    assert result.status == "completed", result.error
    assert finished == finish_order  # they really did finish in this order
    assert result.state["notes"] == ["alpha", "beta", "gamma"]
    assert result.state["path"] == ["alpha,beta,gamma"]
    changes = [c for c in store.changes(result.run_id) if c[0] == 3]
    assert ("notes" in [k for _, k, _, _ in changes])
    assert [v for _, k, _, v in changes if k == "notes"] == [["alpha", "beta", "gamma"]]


def test_send_branches_merge_in_send_order_whatever_finishes_first(store: TraceStore) -> None:
    g = Graph("sendrace", S)
    gate: dict[int, threading.Event] = {}
    g.add_node("plan", lambda s: None)

    def work(arg: dict[str, Any]) -> dict[str, Any]:
        i = arg["i"]
        # Sync nodes run in threads: branch i waits for branch i+1, so the last finishes first.
        if i + 1 in gate:
            assert gate[i + 1].wait(10)
        gate[i].set()
        return {"notes": f"n{i}"}

    g.add_node("work", work)
    g.edge(START, "plan")

    def fan(s: S) -> list[Send]:
        for i in range(5):
            gate[i] = threading.Event()
        return [Send("work", {"i": i}) for i in range(5)]

    g.route("plan", fan, targets=["work"])
    g.edge("work", END)
    result = Runner(g, store, max_concurrency=5).run({})
    assert result.status == "completed", result.error
    assert result.state["notes"] == [f"n{i}" for i in range(5)]


def test_same_input_gives_same_steps_and_state(store: TraceStore) -> None:
    def trace(run_id: str) -> list[tuple[int, str, Any]]:
        return [(r["step"], r["node"], r["update"]) for r in store.tasks(run_id)]

    a = Runner(_racing_graph(["beta", "alpha", "gamma"], {}), store).run({})
    b = Runner(_racing_graph(["gamma", "alpha", "beta"], {}), store).run({})
    assert a.state == b.state
    assert trace(a.run_id) == trace(b.run_id)
    assert store.states(a.run_id) == store.states(b.run_id)


# ---------------------------------------------------------------- subgraphs


class Sub(TypedDict):
    topic: str
    notes: Annotated[list[str], append]
    count: Annotated[int, add]


def _subgraph() -> Graph:
    sub = Graph("inner", Sub)
    sub.add_node("s1", lambda s: {"notes": f"{s['topic']}-1", "count": 1})
    sub.add_node("s2", lambda s: {"notes": [f"{s['topic']}-2"], "count": 1})
    sub.sequence(START, "s1", "s2", END)
    return sub


def test_subgraph_as_node(store: TraceStore) -> None:
    g = Graph("outer", S)
    g.add_node("before", lambda s: {"notes": "before"})
    g.add_node("inner", _subgraph())
    g.add_node("after", lambda s: {"path": f"{len(s['notes'])} notes, count {s['count']}"})
    g.sequence(START, "before", "inner", "after", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    # The subgraph starts from the parent's values for its keys; only what it appended comes back.
    assert result.state["notes"] == ["before", "-1", "-2"]
    assert result.state["count"] == 2
    assert result.state["path"] == ["3 notes, count 2"]
    rows = store.tasks(result.run_id)
    assert [(r["step"], r["node"]) for r in rows] == [(1, "before"), (2, "inner"), (3, "after")]
    assert rows[1]["update"] == {"notes": ["-1", "-2"], "count": 2}


def test_subgraph_add_key_is_not_counted_twice(store: TraceStore) -> None:
    g = Graph("outer_add", S)
    g.add_node("inner", _subgraph())
    g.sequence(START, "inner", END)
    result = Runner(g, store).run({"count": 10})
    assert result.status == "completed", result.error
    assert result.state["count"] == 12


def test_fanout_into_subgraph(store: TraceStore) -> None:
    g = Graph("outer_fan", S)
    g.add_node("plan", lambda s: {"topics": ["x", "y", "z"]})
    g.add_node("inner", _subgraph())
    g.add_node("done", lambda s: {"path": "done"})
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("inner", {"topic": t}) for t in s["topics"]], targets=["inner"])
    g.edge("inner", "done")
    g.edge("done", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["notes"] == ["x-1", "x-2", "y-1", "y-2", "z-1", "z-2"]
    assert result.state["count"] == 6
    assert result.state["path"] == ["done"]
    inner_rows = [r for r in store.tasks(result.run_id) if r["node"] == "inner"]
    assert len(inner_rows) == 3 and {r["step"] for r in inner_rows} == {2}


def test_failing_subgraph_fails_the_parent_node(store: TraceStore) -> None:
    sub = Graph("inner_bad", Sub)

    def boom(s: Sub) -> None:
        raise ValueError("inner trouble")

    sub.add_node("boom", boom)
    sub.sequence(START, "boom", END)
    g = Graph("outer_bad", S)
    g.add_node("inner_bad", sub)
    g.sequence(START, "inner_bad", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "inner_bad" in result.error and "inner trouble" in result.error


def test_subgraph_is_validated_with_parent() -> None:
    sub = Graph("broken_inner", Sub)
    sub.add_node("s", noop)
    sub.edge(START, "s")  # no way out
    g = Graph("outer", S)
    g.add_node("inner", sub)
    g.sequence(START, "inner", END)
    with pytest.raises(GraphDefinitionError, match="'s'"):
        g.validate()

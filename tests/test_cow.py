"""Nodes read the state's own lists and dicts (copy-on-write, workbench/cow.py): whatever a
node, a router or a break condition changes in place never reaches the runtime's state or the
record, and the append rule grows lists in place without leaking a failed step's items."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, Runner, append, merge
from workbench.cow import SharedDict, SharedList, own, reclaim
from workbench.store.store import TraceStore


class S(TypedDict):
    items: Annotated[list[str], append]
    tags: list[str]
    meta: Annotated[dict[str, Any], merge]
    n: int


MUTATIONS: dict[str, Callable[[S], None]] = {
    "append": lambda s: s["items"].append("bad"),
    "extend": lambda s: s["items"].extend(["bad"]),
    "insert": lambda s: s["items"].insert(0, "bad"),
    "setitem": lambda s: s["items"].__setitem__(0, "bad"),
    "slice": lambda s: s["items"].__setitem__(slice(None), ["bad"]),
    "delitem": lambda s: s["items"].__delitem__(0),
    "pop": lambda s: s["items"].pop(),
    "remove": lambda s: s["items"].remove("a"),
    "clear": lambda s: s["items"].clear(),
    "sort": lambda s: s["items"].sort(reverse=True),
    "reverse": lambda s: s["items"].reverse(),
    "iadd": lambda s: s["items"].__iadd__(["bad"]),
    "imul": lambda s: s["items"].__imul__(2),
    "replace-key list": lambda s: s["tags"].append("bad"),
    "dict setitem": lambda s: s["meta"].__setitem__("k", "bad"),
    "dict update": lambda s: s["meta"].update(bad=1),
    "dict pop": lambda s: s["meta"].pop("k"),
    "dict clear": lambda s: s["meta"].clear(),
    "dict setdefault": lambda s: s["meta"].setdefault("new", 1),
    "heapq (bypasses the methods)": lambda s: heapq.heappush(s["items"], "bad"),
}


@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = TraceStore(str(tmp_path / "t.duckdb"))
    yield s
    s.close()


def _graph(mutate: Callable[[S], None], where: str) -> Graph:
    g = Graph(f"cow_{where}", S)

    def grow(s: S) -> dict[str, Any]:
        n = len(s["items"])  # what it read before changing it (it sees its own changes)
        if where == "node":
            mutate(s)
        return {"items": [f"i{n}"]}

    def again(s: S) -> str:
        n = len(s["items"])
        if where == "router":
            mutate(s)
        return "grow" if n < 4 else END

    g.add_node("grow", grow)
    g.add_node("first", lambda s: {"items": ["b"]})
    g.sequence(START, "first", "grow")
    g.route("grow", again, targets=["grow", END])
    return g


@pytest.mark.parametrize("how", list(MUTATIONS))
@pytest.mark.parametrize("where", ["node", "router", "break_when"])
def test_in_place_changes_never_reach_the_state_or_the_record(store: Any, how: str, where: str) -> None:
    mutate = MUTATIONS[how]

    def cond(s: S) -> bool:
        mutate(s)
        return False

    result = Runner(_graph(mutate, where), store).run(
        {"items": ["a"], "tags": ["t"], "meta": {"k": "v"}}, break_when=cond if where == "break_when" else None)
    assert result.status == "completed", result.error
    assert result.state["items"] == ["a", "b", "i2", "i3"]
    assert result.state["tags"] == ["t"] and result.state["meta"] == {"k": "v"}
    recorded = store.state_at(result.run_id, result.step)
    assert recorded == result.state
    assert store.get_run(result.run_id)["output"] == recorded


def test_the_callers_input_is_not_the_runtimes(store: Any) -> None:
    items = ["a"]
    result = Runner(_graph(lambda s: None, "none"), store).run({"items": items})
    assert items == ["a"]
    assert result.state["items"] == ["a", "b", "i2", "i3"]


def test_a_failed_step_leaves_no_appended_items_in_the_output(store: Any) -> None:
    g = Graph("cow_fail", S)
    g.add_node("grow", lambda s: {"items": ["new"]})

    def router(s: S) -> str:
        s["items"].append("router")  # changed in place, then the router fails
        raise RuntimeError("no route")

    g.edge(START, "grow")
    g.route("grow", router, targets=[END])
    result = Runner(g, store).run({"items": ["a"]})
    assert result.status == "failed"
    assert result.state["items"] == ["a"]
    # Resumed with a working router, the step runs again from the state before it.


def test_a_node_returning_the_list_it_changed_records_its_value(store: Any) -> None:
    g = Graph("cow_return", S)

    def node(s: S) -> dict[str, Any]:
        tags = s["tags"]
        tags.append("x")
        return {"tags": tags}

    g.add_node("node", node)
    g.add_node("again", lambda s: {"tags": [*s["tags"], "y"]})
    g.sequence(START, "node", "again", END)
    result = Runner(g, store).run({"tags": ["t"]})
    assert result.state["tags"] == ["t", "x", "y"]
    assert store.state_at(result.run_id, result.step)["tags"] == ["t", "x", "y"]


def test_shared_containers_behave_as_plain_ones() -> None:
    xs = own(["a", "b"])
    assert isinstance(xs, SharedList) and isinstance(xs, list)
    assert xs == ["a", "b"] and xs + ["c"] == ["a", "b", "c"] and xs[1:] == ["b"]  # noqa: RUF005
    assert type(xs.copy()) is list
    d = own({"k": 1})
    assert isinstance(d, SharedDict) and d == {"k": 1} and type(d.copy()) is dict
    import copy
    import json
    import pickle

    assert json.dumps({"xs": xs, "d": d}) == '{"xs": ["a", "b"], "d": {"k": 1}}'
    assert type(copy.deepcopy(xs)) is list and pickle.loads(pickle.dumps(d)) == {"k": 1}
    state = {"xs": xs}
    xs.append("c")
    reclaim(state)
    assert state["xs"] == ["a", "b"] and state["xs"] is not xs and xs == ["a", "b", "c"]

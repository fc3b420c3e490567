"""Break conditions typed by a person (workbench/breakcondition.py) and the reason a
``break_when`` may give for a pause: edge-triggered, so a continue gets past them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

from workbench import END, START, Graph, add
from workbench.breakcondition import BreakCondition, becomes_true
from workbench.registry import GraphRegistry
from workbench.runtime import Runner
from workbench.store import TraceStore


class S(TypedDict):
    count: Annotated[int, add]


def _counter(limit: int) -> Graph:
    g = Graph("count", S)
    g.add_node("inc", lambda s: {"count": 1})
    g.edge(START, "inc")
    g.route("inc", lambda s: "inc" if s["count"] < limit else END, targets=["inc", END])
    return g


def test_becomes_true_fires_on_the_rising_edge_only() -> None:
    check = becomes_true(lambda s: s >= 2)
    assert [check(n) for n in (0, 1, 2, 3, 4, 1, 5)] == [False, False, True, False, False, False, True]


def test_a_condition_true_at_the_start_waits_for_it_to_turn_false_and_true_again() -> None:
    check = becomes_true(lambda s: s != 1, initially=True)
    assert [check(n) for n in (0, 1, 2)] == [False, False, True]


def test_a_raising_condition_raises_and_then_counts_as_not_holding() -> None:
    cond = BreakCondition("state['x'] > 1")
    check = becomes_true(cond.holds, initially=True)
    with pytest.raises(KeyError):
        check({})
    assert check({"x": 2}) is True  # not "still true": the error reset it
    assert cond.holds_quietly({}) is False and cond.holds_quietly(None) is False


def test_the_expression_sees_only_safe_builtins() -> None:
    assert BreakCondition("len(state['a']) == 2").holds({"a": [1, 2]})
    with pytest.raises(NameError):
        BreakCondition("open('/etc/passwd')").holds({})
    with pytest.raises(SyntaxError):
        BreakCondition("1 +")


def test_continue_gets_past_an_edge_triggered_condition(store: TraceStore) -> None:
    g = _counter(6)
    cond = BreakCondition("state['count'] >= 2")
    paused = Runner(g, store).run({}, break_when=becomes_true(cond.holds))
    assert paused.status == "paused" and paused.step == 2
    state = store.state_at(paused.run_id, store.last_committed_step(paused.run_id))
    done = Runner(g, store).resume(paused.run_id, break_when=becomes_true(cond.holds,
                                                                          initially=cond.holds(state)))
    assert done.status == "completed" and done.state["count"] == 6


def test_a_level_predicate_still_pauses_on_every_step_while_true(store: TraceStore) -> None:
    g = _counter(4)
    paused = Runner(g, store).run({}, break_when=lambda s: s["count"] >= 2)
    again = Runner(g, store).resume(paused.run_id, break_when=lambda s: s["count"] >= 2)
    assert (paused.status, paused.step, again.status, again.step) == ("paused", 2, "paused", 3)


def test_a_string_from_break_when_is_recorded_as_the_reason(store: TraceStore) -> None:
    paused = Runner(_counter(4), store).run({}, break_when=lambda s: "stop")
    assert paused.paused == {"when": "condition", "node": None, "step": 1, "reason": "stop"}
    assert store.get_run(paused.run_id)["config"]["paused"]["reason"] == "stop"
    (detail,) = store.query("SELECT detail FROM events WHERE run_id = ? AND kind = 'breakpoint'", [paused.run_id])
    assert "stop" in str(detail)


GRAPH = '''
from workbench import END, START, Graph
graph = Graph("g", dict)

@graph.node
def a(state):
    return {VALUE}

@graph.node
def b(state):
    return {}

graph.sequence(START, "a", "b", END)
'''


def test_hot_reload_compares_with_the_version_loaded_first(tmp_path: Path) -> None:
    path = tmp_path / "g.py"
    path.write_text(GRAPH.replace("{VALUE}", "{}"))
    registry = GraphRegistry(str(tmp_path))
    registry.load_all()
    assert registry.entries["g"].changed_nodes == set()
    path.write_text(GRAPH.replace("{VALUE}", "{'x': 1}"))
    assert registry.reload_file(str(path)).changed == {"g": {"a"}}
    path.write_text(GRAPH.replace("{VALUE}", "{'x': 1}").replace("def b(state):", "def b(state)"))
    broken = registry.reload_file(str(path))
    assert broken.error and registry.entries["g"].changed_nodes == {"a"}
    path.write_text(GRAPH.replace("{VALUE}", "{'x': 1}"))  # the fix: a still differs from the start
    assert registry.reload_file(str(path)).changed == {"g": {"a"}}
    assert registry.entries["g"].changed_nodes == {"a"}
    path.write_text(GRAPH.replace("{VALUE}", "{}"))  # back to the first version: nothing changed
    assert registry.reload_file(os.fspath(path)).changed == {"g": set()}

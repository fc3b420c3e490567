"""Bad declarations in a graph file are refused where they are written.

A wrong type or value given to ``Graph``, ``node``/``add_node``, ``edge``, ``route`` or ``join``
gets a one-line ``GraphDefinitionError`` naming the file and line that declared it — never an
internal error, and never a graph that loads and then fails at run time. A single name where a
list of names is expected is a list of one, never split into characters.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from workbench import END, START, Graph, Runner
from workbench.errors import GraphDefinitionError
from workbench.graph import Join
from workbench.store import TraceStore

THIS_FILE = "test_graph_declarations.py"


def noop(state: Any) -> None:
    return None


def _two_nodes(**graph_options: Any) -> Graph:
    g = Graph("v", **graph_options)
    g.add_node("a", noop)
    g.add_node("b", noop)
    g.edge(START, "a")
    return g


def _refused(declare: Callable[[], Any], problem: str, line: int = 0) -> str:
    """``declare()`` raises a GraphDefinitionError naming this file, ``line`` (by default the
    caller's) and ``problem`` (a regex) on one line."""
    line = line or sys._getframe(1).f_lineno
    with pytest.raises(GraphDefinitionError) as info:
        declare()
    msg = str(info.value)
    assert f"{THIS_FILE}:{line}: graph 'v'" in msg, msg
    assert re.search(problem, msg), msg
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------ defect 1: internal errors


def test_an_empty_join_is_refused_when_declared() -> None:
    g = _two_nodes()
    _refused(lambda: g.join([], "a"), r"a join needs at least one source node, e\.g\. graph\.join\(\['a', 'b'\], 'c'\)")


def test_a_join_built_by_hand_without_sources_fails_validation_not_with_an_index_error() -> None:
    g = _two_nodes()
    g.edge("a", "b")
    g.edge("b", END)
    g.joins.append(Join((), "b"))
    with pytest.raises(GraphDefinitionError, match="the join to 'b' has no source nodes"):
        g.validate()


def test_none_among_route_targets_is_refused_with_a_hint() -> None:
    g = _two_nodes()
    _refused(lambda: g.route("a", lambda s: "b", targets=[None]),  # type: ignore[list-item]
             r"node 'a': route targets must be a list of node names \(or END\), got None in the list; write END")


@pytest.mark.parametrize("on_error", [123, ["b"], ""])
def test_an_on_error_that_is_not_a_node_name_is_refused(on_error: Any) -> None:
    g = Graph("v")
    _refused(lambda: g.add_node("a", noop, on_error=on_error),
             r"node 'a': on_error must name the node to go to when this one still fails \(or END\), got ")


def test_on_error_in_the_decorator_names_the_decorator_line() -> None:
    g = Graph("v")
    line = sys._getframe().f_lineno + 3
    with pytest.raises(GraphDefinitionError) as info:

        @g.node(on_error=123)  # type: ignore[arg-type]
        def a(state: Any) -> None:
            return None

    assert f"{THIS_FILE}:{line}: graph 'v', node 'a': on_error must name" in str(info.value)


@pytest.mark.parametrize(("name", "shown"), [(42, "42"), (None, "None"), (b"a", r"b'a' \(a bytes\)")])
def test_a_node_name_that_is_not_a_string_is_refused(name: Any, shown: str) -> None:
    g = Graph("v")
    _refused(lambda: g.add_node(name, noop), f"a node name must be a string, got {shown}$")


def test_a_name_that_is_not_a_string_given_to_the_decorator_is_refused() -> None:
    g = Graph("v")
    _refused(lambda: g.node(noop, name=7), "a node name must be a string, got 7")  # type: ignore[arg-type]


# ------------------------------------------------------------ defect 2: refused before run time


@pytest.mark.parametrize(("timeout", "shown"), [("5", "'5'"), (-1, "-1"), (0, "0"), (0.0, "0.0"), (True, "True"),
                                                (float("nan"), "nan"), (float("inf"), "inf"), ([5], r"\[5\]")])
def test_a_timeout_must_be_seconds_above_zero(timeout: Any, shown: str) -> None:
    g = Graph("v")
    _refused(lambda: g.add_node("a", noop, timeout=timeout),
             rf"node 'a': timeout must be a number of seconds greater than 0 \(or None for no timeout\), got {shown}")


def test_a_subgraph_node_timeout_is_checked_too() -> None:
    inner = Graph("inner")
    inner.add_node("x", noop)
    inner.sequence(START, "x", END)
    g = Graph("v")
    _refused(lambda: g.add_node("sub", inner, timeout=-3), "node 'sub': timeout must be a number of seconds")


@pytest.mark.parametrize("timeout", [None, 1, 0.05, 30])
def test_good_timeouts_are_kept(timeout: float | None) -> None:
    g = Graph("v")
    g.add_node("a", noop, timeout=timeout)
    assert g.nodes["a"].timeout == timeout


@pytest.mark.parametrize(("max_steps", "shown"), [(0, "0"), (-2, "-2"), ("3", "'3'"), (2.5, "2.5"), (True, "True")])
def test_max_steps_must_be_a_whole_number_of_one_or_more(max_steps: Any, shown: str) -> None:
    _refused(lambda: Graph("v", max_steps=max_steps), f"max_steps must be a whole number of 1 or more, got {shown}$")


def test_a_router_that_is_not_callable_is_refused() -> None:
    g = _two_nodes()
    _refused(lambda: g.route("a", "notcallable", targets=["b"]),  # type: ignore[arg-type]
             "node 'a': the router must be a function of the state that returns the next node\\(s\\), "
             "got 'notcallable'")


@pytest.mark.parametrize(("call", "problem"), [
    (lambda g: g.edge(42, "a"), r"an edge's source must be a node name \(or START\), got 42"),
    (lambda g: g.edge("a", None), r"an edge's target must be a node name \(or END\), got None"),
    (lambda g: g.route(None, noop, targets=["b"]), r"a router's source must be a node name \(or START\), got None"),
    (lambda g: g.route("a", noop, targets=42), "node 'a': route targets must be a list of node names"),
    (lambda g: g.route("a", noop, targets={1: "b"}), "a label must be a string .* got 1"),
    (lambda g: g.route("a", noop, targets={"go": None}), r"route target 'go' must be a node name \(or END\)"),
    (lambda g: g.join(["a"], 3), r"a join's target must be a node name \(or END\), got 3"),
    (lambda g: g.join(["a", None], "b"), "join sources must be a list of node names, got None in the list"),
    (lambda g: g.join({"a": 1}, "b"), "join sources must be a list of node names"),
    (lambda g: g.sequence(["a", "b"]), r"sequence takes node names as separate arguments"),
])
def test_wrong_types_in_wiring_are_refused(call: Callable[[Graph], Any], problem: str) -> None:
    g = _two_nodes()
    _refused(lambda: call(g), problem, call.__code__.co_firstlineno)  # the line declaring it


def test_inputs_must_be_state_keys() -> None:
    _refused(lambda: Graph("v", inputs=[1]), r"inputs must be a list of state keys, got \[1\]")  # type: ignore[list-item]


# ------------------------------------------------------------ defect 3: one name, not its letters


def test_a_single_route_target_string_is_one_target() -> None:
    g = Graph("v")
    g.add_node("pick", noop)
    g.add_node("answer", noop)
    g.edge(START, "pick")
    g.route("pick", lambda s: "answer", targets="answer")
    g.edge("answer", END)
    g.validate()
    assert g.routes["pick"].targets == {"answer": "answer"}
    result = Runner(g, TraceStore(":memory:")).run({})
    assert result.status == "completed"


def test_a_single_join_source_string_is_one_source() -> None:
    g = Graph("v")
    g.add_node("alpha", noop)
    g.add_node("b", noop)
    g.edge(START, "alpha")
    g.join("alpha", "b")
    g.edge("b", END)
    g.validate()
    assert g.joins[0].sources == ("alpha",)


def test_a_join_source_set_or_generator_still_works() -> None:
    g = _two_nodes()
    g.join((n for n in ["a"]), "b")
    g.join({"a"}, "b")
    assert [j.sources for j in g.joins] == [("a",), ("a",)]


def test_a_single_inputs_string_is_one_key() -> None:
    from typing import TypedDict

    class St(TypedDict):
        question: str
        answer: str

    assert Graph("v", St, inputs="question").inputs == ["question"]


# ------------------------------------------------------------ defect 4: node names


@pytest.mark.parametrize(("name", "char"), [("re/view", "'/'"), ("fan#1", "'#'"), ("a/b#c", "'/' and '#'")])
def test_names_with_address_separators_are_refused(name: str, char: str) -> None:
    g = Graph("v")
    fixed = re.sub("[/#]", "_", name)
    _refused(lambda: g.add_node(name, noop),
             rf"node name {re.escape(repr(name))} contains {char}, which node names may not hold: '/' separates "
             rf"subgraph paths .* '#' picks a fan-out task .*rename it, e\.g\. '{fixed}'")


@pytest.mark.parametrize("name", ["x\ny", "tab\there", "bell\x07", "nul\x00", "del\x7f", "c1\x85", "bidi\u202e",
                                  "line\u2028sep"])
def test_names_with_control_characters_are_refused(name: str) -> None:
    g = Graph("v")
    _refused(lambda: g.add_node(name, noop),
             r"contains the control character .*; node names are shown on one line .* use printable characters only")


@pytest.mark.parametrize("name", ["", " ", "  \t "])
def test_empty_or_blank_names_are_refused(name: str) -> None:
    g = Graph("v")
    _refused(lambda: g.add_node(name, noop), "a node name must not be empty or only spaces")


def test_a_bad_name_given_to_the_decorator_is_refused() -> None:
    g = Graph("v")
    _refused(lambda: g.node(noop, name="re/view"), "node name 're/view' contains '/'")


@pytest.mark.parametrize("name", ["review", "draft-2", "step.one", "naïve", "with space", "ask?"])
def test_ordinary_names_are_accepted(name: str) -> None:
    g = Graph("v")
    g.add_node(name, noop)
    g.sequence(START, name, END)
    g.validate()


# ------------------------------------------------------------ what the CLI shows


@pytest.mark.parametrize(("declaration", "line", "problem"), [
    ('graph.join([], "a")', 9, "a join needs at least one source node"),
    ('graph.route("a", lambda s: "b", targets=[None])', 9, "route targets must be a list of node names"),
    ('graph.add_node(42, noop)', 9, "a node name must be a string, got 42"),
    ('graph.add_node("re/view", noop)', 9, "node name 're/view' contains '/'"),
    ('graph.add_node("a2", noop, timeout="5")', 9, "timeout must be a number of seconds greater than 0"),
])
def test_the_cli_shows_one_line_with_file_and_line(tmp_path: Path, declaration: str, line: int,
                                                  problem: str) -> None:
    (tmp_path / "bad.py").write_text(textwrap.dedent("""\
        from workbench import END, START, Graph
        graph = Graph("g")
        def noop(state):
            return {}
        graph.add_node("a", noop)
        graph.add_node("b", noop)
        graph.sequence(START, "a", "b", END)

        """) + declaration + "\n")
    for command in ("graph", "run"):
        res = run_cli(command, "bad.py", cwd=tmp_path)
        assert res.returncode == 2, res
        err = res.stderr.strip()
        assert err.startswith(f"workbench: error: bad.py:{line}: graph 'g'"), err
        assert problem in err and "internal error" not in err and "\n" not in err, err

"""The layered graph layout (workbench/graph_layout.py): where boxes go and how edges are drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench import END, START, Graph, Send
from workbench.graph_layout import Drawing, Edge, draw, graph_edges, layout, local_name, path_edges, to_text
from workbench.loader import load_graph
from workbench.runtime import subgraph

DEMOS = sorted((Path(__file__).parent.parent / "graphs").glob("*.py"))


def _noop(state: Any) -> dict[str, Any]:
    return {}


def build(wiring: list[tuple[str, str]], routes: dict[str, list[str]] | None = None,
          joins: list[tuple[list[str], str]] | None = None) -> Graph:
    g = Graph("t")
    names = {n for pair in wiring for n in pair} | {n for ts in (routes or {}).values() for n in ts}
    names |= set(routes or {}) | {n for srcs, t in (joins or []) for n in [*srcs, t]}
    for n in sorted(names - {START, END}):
        g.add_node(n, _noop)
    for a, b in wiring:
        g.edge(a, b)
    for src, targets in (routes or {}).items():
        g.route(src, lambda s: END, targets=targets)
    for srcs, t in joins or []:
        g.join(srcs, t)
    return g


def assert_no_overlap(d: Drawing) -> None:
    boxes = list(d.boxes.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)
            assert apart, f"{a.name} overlaps {b.name}"
    # Every cell of a box is the box's own: no edge runs through a box.
    for box in boxes:
        for y in range(box.y, box.y + box.h):
            for x in range(box.x, box.x + box.w):
                assert d.owners[y][x] == "n:" + box.name, (box.name, x, y, d.text())


def test_a_chain_is_one_column_top_to_bottom() -> None:
    d = draw(build([(START, "a"), ("a", "b"), ("b", END)]))
    assert [b.layer for b in (d.boxes[START], d.boxes["a"], d.boxes["b"], d.boxes[END])] == [0, 1, 2, 3]
    assert d.boxes["a"].centre == d.boxes["b"].centre  # straight down
    assert d.boxes["a"].y < d.boxes["b"].y
    assert "▼" in d.text() and "┊" not in d.text()  # no loop, no dotted line
    assert_no_overlap(d)


def test_branches_sit_side_by_side_and_their_join_below_both() -> None:
    g = build([(START, "a"), ("a", "left"), ("a", "right"), ("done", END)], joins=[(["left", "right"], "done")])
    d = draw(g)
    left, right, done = d.boxes["left"], d.boxes["right"], d.boxes["done"]
    assert left.layer == right.layer and left.y == right.y
    assert left.x + left.w <= right.x or right.x + right.w <= left.x
    assert done.layer == left.layer + 1
    assert ["left", "right"] in [sorted(layer) for layer in d.layers]
    # The join's edges are marked where they leave their boxes.
    below = d.rows[left.y + left.h]
    assert below[left.x:left.x + left.w].strip() == "&"
    assert_no_overlap(d)


def test_a_join_waits_below_the_longest_branch() -> None:
    g = build([(START, "a"), ("a", "short"), ("a", "long1"), ("long1", "long2"), ("j", END)],
              joins=[(["short", "long2"], "j")])
    d = draw(g)
    assert d.boxes["j"].layer == d.boxes["long2"].layer + 1
    assert_no_overlap(d)  # the short branch's edge passes the long2 layer beside the box


def test_a_join_waiting_a_step_longer_is_lit_from_every_branch() -> None:
    """short ran at step 2, long2 at step 3, the join j at step 4: both branches led to j."""
    steps = [["a"], ["short", "long1"], ["long2"], ["j"]]
    joins = [(["short", "long2"], "j")]
    taken = path_edges(steps, finished=True, joins=joins)
    assert {("short", "j"), ("long2", "j"), ("long1", "long2"), ("j", END)} <= taken
    assert ("short", "j") not in path_edges(steps, finished=True)  # the step-to-step rule alone


def test_a_loop_is_drawn_up_the_right_side_dotted() -> None:
    g = build([(START, "draft"), ("draft", "check")], routes={"check": ["draft", END]})
    d = draw(g)
    assert d.back_edges == [Edge("check", "draft", "route")]
    assert d.boxes["draft"].layer < d.boxes["check"].layer  # the loop does not push draft down
    right = max(b.x + b.w for b in d.boxes.values())
    column = [row[right:] for row in d.rows]
    assert any("┊" in c for c in column)
    back_cells = {(x, y) for y, row in enumerate(d.owners) for x, o in enumerate(row) if o == "e:back"}
    assert back_cells and all(x >= d.boxes["draft"].x for x, _ in back_cells)
    assert_no_overlap(d)


def test_a_self_loop_is_a_back_edge() -> None:
    g = build([(START, "poll")], routes={"poll": ["poll", END]})
    d = draw(g)
    assert [(e.src, e.dst) for e in d.back_edges] == [("poll", "poll")]
    assert_no_overlap(d)


def test_labelled_routes_and_send_fan_out() -> None:
    g = build([(START, "a"), ("b", END), ("c", END)])
    g.route("a", lambda s: "yes", targets={"yes": "b", "no": "c"})
    edges = {(e.src, e.dst): e for e in graph_edges(g)}
    assert edges[("a", "b")].label == "yes" and edges[("a", "c")].kind == "route"
    assert "yes" in draw(g).text() and "no" in draw(g).text()

    def fan(state: Any) -> list[Send]:
        return [Send("b", {})]

    g2 = build([(START, "a"), ("b", END)])
    g2.route("a", fan, targets=["b"])
    assert [e.kind for e in graph_edges(g2) if e.src == "a"] == ["send"]
    d = draw(g2)
    assert d.rows[d.boxes["a"].y + d.boxes["a"].h][d.boxes["a"].x:].strip() == "*"


def test_subgraph_nodes_have_a_double_border() -> None:
    inner = build([(START, "x"), ("x", END)])
    g = Graph("outer")
    g.add_node("sub", inner)
    g.sequence(START, "sub", END)
    d = draw(g)
    box = d.boxes["sub"]
    assert d.rows[box.y][box.x] == "╔" and "subgraph t" in d.text()


def test_crossings_are_reduced_by_ordering() -> None:
    # Declared so that the naive order crosses: a→y, b→x with x declared before y.
    g = build([(START, "a"), (START, "b"), ("a", "y"), ("b", "x"), ("x", END), ("y", END)])
    d = draw(g)
    order = {n: i for layer in d.layers for i, n in enumerate(layer)}
    assert (order["a"] < order["b"]) == (order["y"] < order["x"])


def test_layout_takes_plain_names_and_edges() -> None:
    d = layout(["s", "t"], [Edge("s", "t"), Edge("t", "missing")], {"s": ["source"], "t": ["target"]})
    assert "source" in d.text() and "target" in d.text()
    assert d.node_at(d.boxes["t"].x, d.boxes["t"].y) == "t" and d.node_at(-1, -1) is None


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_every_demo_graph_renders_without_overlap(path: Path) -> None:
    graph = load_graph(str(path))
    d = draw(graph)
    assert_no_overlap(d)
    text = to_text(graph)
    for name in graph.nodes:
        assert name in text
    # Every node of every subgraph too.
    for node in graph.nodes.values():
        if node.subgraph is not None:
            assert_no_overlap(draw(node.subgraph))


def test_local_names_follow_the_runners_path_spelling() -> None:
    assert subgraph.SEP == "/"
    assert local_name("review/approve", "") == "review"
    assert local_name("review/approve", "review/") == "approve"
    assert local_name("review/inner/x", "review/") == "inner"
    assert local_name("intake", "review/") is None
    assert local_name("review", "review/") is None

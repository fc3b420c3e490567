"""The graph view: a layered drawing that follows the node cursor, opens subgraphs, sets
breakpoints by path and lights a run's path. The real app, driven with ``App.run_test()``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.graph_view import GraphView

from .conftest import Project, busy, final_state, make_project, notes, plain, run_row, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    proj = make_project(tmp_path / "proj", ["chain", "demo:support", "demo:warranty"])
    monkeypatch.chdir(proj.root)
    return proj


@asynccontextmanager
async def opened(project: Project, size: tuple[int, int]) -> AsyncIterator[tuple[Any, Any]]:
    app = project.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: not busy(app) and app.registry.entries, what="start-up")
        yield app, pilot


async def show(pilot: Any, name: str) -> GraphView:
    app = pilot.app
    await pilot.press("G")
    names = app.registry.names()
    graphs = app.query_one("#graphs", GraphList)
    for _ in range(len(names) + 2):
        if app.selected_graph == name:
            break
        await pilot.press("down" if (graphs.highlighted or 0) < names.index(name) else "up")
        await pilot.pause()
    assert app.selected_graph == name
    await pilot.press("1")
    await pilot.pause()
    return app.query_one("#graph-view", GraphView)


def visible(view: GraphView, node: str) -> bool:
    """Whether node's whole box is inside the view's window on the drawing."""
    assert view.drawing is not None
    box = view.drawing.boxes[node]
    top = box.y + view._head
    sx, sy = view.scroll_offset
    return (sy <= top and top + box.h <= sy + view.size.height
            and sx <= box.x and box.x + box.w <= sx + view.size.width)


def lit(view: GraphView, node: str) -> bool:
    """Whether node's name is drawn on yellow (the node a run is at)."""
    assert view.drawing is not None
    box = view.drawing.boxes[node]
    x = 0
    for seg in view._lines[view._head + box.y + 1]:
        if x <= box.x + 2 < x + len(seg.text):
            return bool(seg.style and seg.style.bgcolor and seg.style.bgcolor.name == "yellow")
        x += len(seg.text)
    return False


SIZES = [(160, 45), (80, 24)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_cursor_moves_in_two_dimensions_and_stays_in_view(demo: Project, size: tuple[int, int]) -> None:
    async with opened(demo, size) as (_app, pilot):
        view = await show(pilot, "support")
        assert view.drawing is not None
        layers = view._layers()
        assert ["send", "handoff"] in [sorted(layer, key=lambda n: n != "send") for layer in layers]
        assert view.selected == "classify" and visible(view, "classify")
        # The drawing is taller than the view at both sizes: the cursor has to scroll it.
        assert view.virtual_size.height > view.size.height
        for _ in range(7):  # j past the last layer stays on it
            await pilot.press("j")
            await pilot.pause()
            assert visible(view, view.selected), view.selected
        assert view.selected in ("send", "handoff")
        assert view.scroll_offset.y > 0
        bottom = view.selected
        await pilot.press("l" if bottom == "send" else "h")
        await pilot.pause()
        assert {bottom, view.selected} == {"send", "handoff"} and visible(view, view.selected)
        await pilot.press("home")
        await pilot.pause()
        assert view.selected == "classify" and visible(view, "classify")
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.selected == layers[3][0] and visible(view, view.selected)
        await pilot.press("end")
        await pilot.pause()
        assert view.selected == view._order()[-1] and visible(view, view.selected)
        await pilot.press("pageup")
        await pilot.pause()
        assert view.selected in layers[-4] and visible(view, view.selected)
        await pilot.press("k", "k", "k", "k", "k", "k")
        await pilot.pause()
        assert view.selected == "classify" and view.scroll_offset.y == 0


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_breakpoint_lands_on_the_node_the_cursor_shows(demo: Project, size: tuple[int, int]) -> None:
    async with opened(demo, size) as (app, pilot):
        view = await show(pilot, "support")
        await pilot.press(*"jjjjjjj")
        await pilot.pause()
        target = view.selected
        assert target in ("send", "handoff") and visible(view, target)
        await pilot.press("b")
        await pilot.pause()
        assert app.breaks["support"]["before"] == {target}
        assert f"breakpoint before {target} set" in "\n".join(notes(app))
        # The mark is drawn on that node's box, which is on screen.
        box = view.drawing.boxes[target]
        assert f"● {target}" in view.drawing.rows[box.y + 1]
        assert visible(view, target)


async def test_a_subgraph_opens_and_takes_breakpoints_by_path(demo: Project) -> None:
    async with opened(demo, (160, 45)) as (app, pilot):
        view = await show(pilot, "warranty")
        assert "╔" in plain(view.content) and "subgraph refund_review" in plain(view.content)
        await pilot.press("enter")  # intake is not a subgraph: nothing opens
        await pilot.pause()
        assert view.path == [] and "intake is not a subgraph node" in "\n".join(notes(app))
        await pilot.press("j", "enter")
        await pilot.pause()
        assert view.path == ["review"] and view.border_title == "warranty › review"
        drawing = plain(view.content)
        assert "warranty › review" in drawing and "review/NODE" in drawing
        assert all(f"│ {n}" in drawing for n in ("assess", "approve", "record"))
        assert "intake" not in drawing
        assert view.selected == "assess"
        await pilot.press("j", "b")
        await pilot.pause()
        assert view.selected == "approve"
        assert app.breaks["warranty"]["before"] == {"review/approve"}
        assert "breakpoint before review/approve set" in "\n".join(notes(app))
        assert "│ ● approve │" in plain(view.content)
        await pilot.press("escape")
        await pilot.pause()
        assert view.path == [] and view.selected == "review" and view.border_title == "warranty"
        assert "● " not in plain(view.content)  # the mark is inside the subgraph, not on review
        assert "║ review (●)" in plain(view.content)  # which says it holds one

        # A run with that breakpoint stops inside the subgraph; the graph view lights the node.
        await pilot.press("r")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "RunInputScreen", what="the run form")
        app.screen.query_one("#field-message", Input).value = "My kettle broke, refund $120 please"
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: app.live is None and app.open_run and app.open_run["status"] == "paused"
                     and not busy(app), what="a paused run")
        paused = (app.open_run.get("config") or {}).get("paused") or {}
        assert paused.get("node") == "review/approve"
        await pilot.press("1")
        await settle(pilot, lambda: "review/approve" in view.current, what="the paused node lit")
        assert view.selected == "review"
        assert lit(view, "review") and not lit(view, "intake")
        await pilot.press("enter")
        await settle(pilot, lambda: view.inner.get("review/assess") == 1, what="the inner steps read")
        assert "│ assess ×1 │" in plain(view.content)
        assert lit(view, "approve") and not lit(view, "assess")


async def test_the_running_node_is_lit_while_stepping_through_a_run(demo: Project) -> None:
    async with opened(demo, (160, 45)) as (app, pilot):
        view = await show(pilot, "chain")
        await pilot.press("j", "b")  # before b
        await pilot.pause()
        await pilot.press("r")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "RunInputScreen", what="the run form")
        await pilot.press("ctrl+r")

        def paused_after(log: list[str]) -> bool:
            run = app.open_run
            return bool(app.live is None and run and not busy(app) and run["status"] == "paused"
                        and run_row(app, run["run_id"])["status"] == "paused"
                        and final_state(app, run["run_id"])["log"] == log)

        await settle(pilot, lambda: paused_after(["a"]), what="paused before b")
        await pilot.press("1")
        await settle(pilot, lambda: view.current == {"b"})
        assert lit(view, "b") and not lit(view, "a")
        assert view.executed == {"a"} and view.visits == {"a": 1}
        await pilot.press("s")
        await settle(pilot, lambda: paused_after(["a", "b"]), what="one step")
        await settle(pilot, lambda: view.current == {"c"})
        assert lit(view, "c") and not lit(view, "b")
        assert view.executed == {"a", "b"}
        assert "│ ● b ×1  │" in plain(view.content)  # its break mark, and it ran once


async def test_a_click_selects_a_node_and_a_double_click_opens_a_subgraph(demo: Project) -> None:
    async with opened(demo, (160, 45)) as (_app, pilot):
        view = await show(pilot, "warranty")
        assert view.drawing is not None and view.selected == "intake"

        def inside(node: str) -> tuple[int, int]:
            box = view.drawing.boxes[node]
            region = view.content_region
            return (region.x - view.region.x + box.x + 2 - view.scroll_offset.x,
                    region.y - view.region.y + view._head + box.y + 1 - view.scroll_offset.y)

        await pilot.click("#graph-view", offset=inside("reply"))
        await pilot.pause()
        assert view.selected == "reply"
        await pilot.click("#graph-view", offset=inside("review"), times=2)
        await pilot.pause()
        assert view.path == ["review"] and view.selected == "assess"
        await pilot.press("backspace")
        await pilot.pause()
        assert view.path == [] and view.selected == "review"


def edge_style(view: GraphView, pair: tuple[str, str], leave: frozenset[tuple[int, int]] = frozenset()) -> list[Any]:
    """The styles of the cells edge ``pair`` is drawn with (but cells in ``leave``)."""
    assert view.drawing is not None
    out = []
    for x, y in view.drawing.edges[pair]:
        if (x, y) in leave:
            continue
        col = 0
        for seg in view._lines[view._head + y]:
            if col <= x < col + len(seg.text):
                out.append(seg.style)
                break
            col += len(seg.text)
    return out


async def test_the_edges_a_run_took_are_lit_not_only_its_nodes(demo: Project) -> None:
    from workbench.graph import END, START

    from .test_pilot import open_run

    # The refund message: the first draft fails the safety check and loops back once.
    rid = demo.run("support", {"message": "I was charged twice, I want a refund of $40"}).run_id
    async with opened(demo, (160, 45)) as (_app, pilot):
        view = await show(pilot, "support")
        await open_run(pilot, rid)
        await settle(pilot, lambda: view.taken, what="the path drawn")
        assert view.drawing is not None
        taken = [(START, "classify"), ("classify", "fetch_account"), ("retrieve_policy", "draft"),
                 ("draft", "check"), ("check", "draft"), ("check", "send"), ("send", END)]
        for pair in taken:
            styles = edge_style(view, pair)
            assert styles and all(s is not None and s.color and s.color.name == "green" for s in styles), pair
        # Edges not taken: their own cells (not those they share with a taken edge) stay unlit.
        shared = frozenset(c for pair in taken for c in view.drawing.edges[pair])
        for pair in [("retrieve_policy", "handoff"), ("handoff", END), ("check", "handoff")]:
            styles = edge_style(view, pair, shared)
            assert styles and not any(s is not None and s.color and s.color.name == "green" for s in styles), pair

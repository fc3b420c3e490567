"""The graph view: a layered drawing that follows the node cursor, opens subgraphs, sets
breakpoints by path and lights a run's path. The real app, driven with ``App.run_test()``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.graph_view import GraphView

from .conftest import Project, busy, make_project, notes, plain, settle

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


async def test_explore(demo: Project) -> None:
    async with opened(demo, (160, 45)) as (app, pilot):
        view = await show(pilot, "support")
        print(plain(view.content))
        print(view.size, view.virtual_size, view.scroll_offset)
        await pilot.press(*"jjjjjjj")
        print(view.selected, view.scroll_offset)
        app.save_screenshot("/tmp/gv/a.svg")

"""SVG snapshots of the Compare tab, the value viewers and the SQL console with its schema
browser, at 160×45 and 80×24 (fixture data as in test_snapshots.py)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, TextArea

from workbench.tui.screens.value_viewer import DiffScreen, ValueScreen
from workbench.tui.widgets.schema_browser import SchemaBrowser

from .conftest import settle
from .test_snapshots import _freeze, _open, _ready, snap_app  # noqa: F401  (the fixture)

SIZES = [pytest.param((160, 45), id="160x45"), pytest.param((80, 24), id="80x24")]


async def _compare(pilot: Any) -> None:
    await _ready(pilot)
    await _open(pilot, "snap-fork")
    await pilot.press("d")
    await settle(pilot, lambda: pilot.app.query_one("#compare-table", DataTable).row_count > 0)


@pytest.mark.parametrize("size", SIZES)
def test_compare_side_by_side(snap_app: Any, snap_compare: Any, size: tuple[int, int]) -> None:  # noqa: F811
    async def run_before(pilot: Any) -> None:
        await _compare(pilot)
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_compare_full_diff(snap_app: Any, snap_compare: Any, size: tuple[int, int]) -> None:  # noqa: F811
    async def run_before(pilot: Any) -> None:
        await _compare(pilot)
        view = pilot.app.query_one("#compare")
        index = next(i for i, r in enumerate(view.rows) if r.openable and r.what == "draft")
        view.open_row(index)
        await settle(pilot, lambda: isinstance(pilot.app.screen, DiffScreen))
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_value_viewer(snap_app: Any, snap_compare: Any, size: tuple[int, int]) -> None:  # noqa: F811
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _open(pilot, "snap-billing", step=4)
        view = pilot.app.query_one("#inspector").view
        pilot.app.push_screen(ValueScreen("state after this step", view.state_after))
        await settle(pilot, lambda: isinstance(pilot.app.screen, ValueScreen))
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_sql_console_with_schema_browser(snap_app: Any, snap_compare: Any, size: tuple[int, int]) -> None:  # noqa: F811
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("5")
        browser = pilot.app.query_one("#sql-schema", SchemaBrowser)
        await settle(pilot, lambda: len(browser.root.children) >= 10)
        pilot.app.query_one("#sql-editor", TextArea).text = (
            "SELECT run_id, graph, status, input\nFROM runs ORDER BY run_id")
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: pilot.app.query_one("#sql-results", DataTable).row_count == 3)
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)

"""SVG snapshots of the workbench's main screens at a fixed terminal size.

The data comes from fixtures/snapshot_trace.jsonl (fixed run ids and times; regenerate it with
fixtures/make_snapshot_trace.py) imported into a fresh store, with the frozen support graph it was
recorded from. No file watcher, no animations, cursors not blinking, no clock-dependent text.
Update the snapshots with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import DataTable, Input, TextArea

from workbench.tui.screens.fork_editor import ForkScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.human_input import HumanInputScreen
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.timeline import Timeline

from .conftest import DB, FIXTURES, busy, settle

SIZE = (140, 40)


@pytest.fixture
def snap_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot_traces: Path) -> Any:
    """The workbench on a project holding the fixture runs (imported once: conftest)."""
    root = tmp_path / "proj"
    shutil.copytree(FIXTURES / "snapshot_project" / "graphs", root / "graphs")
    shutil.copytree(snapshot_traces, root / "traces")
    monkeypatch.chdir(root)
    # The SQL console reports how long a query took: freeze the clock it reads.
    monkeypatch.setattr("workbench.sqlquery.time", SimpleNamespace(perf_counter=lambda: 0.0))
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(DB, "graphs", watch=False)
    app.animation_level = "none"
    return app


async def _ready(pilot: Any) -> None:
    app = pilot.app
    await settle(pilot, lambda: not busy(app) and app.registry.entries and app.runs, what="start-up")


async def _freeze(pilot: Any) -> None:
    """Let everything finish, then stop cursors blinking (a screenshot must not catch a blink)."""
    app = pilot.app
    await settle(pilot)
    for screen in app.screen_stack:
        for widget in screen.query("Input, TextArea"):
            assert isinstance(widget, (Input, TextArea))
            widget.cursor_blink = False
            if isinstance(widget, TextArea):
                # A TextArea whose cursor was in its visible phase keeps the cursor line it
                # cached: drop it, or the screenshot shows a cursor some of the time.
                widget.notify_style_update()
                widget.refresh()
    await pilot.pause()


async def _open(pilot: Any, run_id: str, step: int | None = None) -> None:
    app = pilot.app
    await pilot.press("2")
    await settle(pilot)
    table = app.query_one("#runs-table", RunsTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(run_id))
    await pilot.press("enter")
    await settle(pilot, lambda: app.open_run and app.open_run["run_id"] == run_id and not busy(app))
    if step is not None:
        timeline = app.query_one("#timeline", Timeline)
        while timeline.current is not None and timeline.current.step < step:
            await pilot.press("j")
        await settle(pilot, lambda: app.selected_step == step and not busy(app))


def test_graph_view(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("1", "j", "j", "b")  # a breakpoint before retrieve_policy
        pilot.app.clear_notifications()
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("size", [(160, 45), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_graph_view_with_a_run_and_the_cursor_at_the_bottom(snap_app: Any, snap_compare: Any,
                                                             size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _open(pilot, "snap-billing")  # its path and visit counts are drawn
        await pilot.press("1", "j", "j", "b", "end")  # a breakpoint, then the cursor to the last node
        pilot.app.clear_notifications()
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


def test_runs_tab(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("2")
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_timeline_and_inspector(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _open(pilot, "snap-billing", step=1)  # classify: a model call
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_compare_fork_with_parent(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _open(pilot, "snap-fork")
        await pilot.press("d")
        await settle(pilot, lambda: pilot.app.query_one("#compare-table", DataTable).row_count > 0)
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_sql_console(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("5")
        pilot.app.query_one("#sql-editor", TextArea).text = (
            "SELECT run_id, graph, status, parent_run_id\nFROM runs ORDER BY run_id")
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: pilot.app.query_one("#sql-results", DataTable).row_count == 3)
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_help(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_human_input_modal(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HumanInputScreen))
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)


def test_fork_modal(snap_app: Any, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _open(pilot, "snap-billing", step=4)  # draft: its model answer can be replaced
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(pilot.app.screen, ForkScreen))
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=run_before)

"""SVG snapshots of every screen issue 10's layout and keys touch, at 160×45 and at 80×24
(the narrow layout: sidebar hidden, timeline over inspector, priority columns, fitting footer).

Same data and rules as test_snapshots.py. Update with ``--snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, TextArea

from workbench.tui.screens.condition import ConditionScreen
from workbench.tui.screens.fork_editor import ForkScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.human_input import HumanInputScreen

from .conftest import settle
from .test_snapshots import _freeze, _open, _ready, snap_app  # noqa: F401  (a fixture)

SIZES = {"wide": (160, 45), "small": (80, 24)}


async def _graph(pilot: Any) -> None:
    await pilot.press("1")


async def _runs(pilot: Any) -> None:
    await pilot.press("2")


async def _timeline(pilot: Any) -> None:
    await _open(pilot, "snap-billing", step=1)


async def _compare(pilot: Any) -> None:
    await _open(pilot, "snap-fork")
    await pilot.press("d")
    await settle(pilot, lambda: pilot.app.query_one("#compare-table", DataTable).row_count > 0)


async def _sql(pilot: Any) -> None:
    await pilot.press("5")
    pilot.app.query_one("#sql-editor", TextArea).text = "SELECT run_id, graph, status FROM runs ORDER BY run_id"
    await pilot.press("ctrl+r")
    await settle(pilot, lambda: pilot.app.query_one("#sql-results", DataTable).row_count == 3)
    await pilot.press("escape")  # focus on the results: the editor's cursor line is not drawn


async def _fork(pilot: Any) -> None:
    await _open(pilot, "snap-billing", step=4)
    await pilot.press("f")
    await settle(pilot, lambda: isinstance(pilot.app.screen, ForkScreen))


async def _human(pilot: Any) -> None:
    await pilot.press("i")
    await settle(pilot, lambda: isinstance(pilot.app.screen, HumanInputScreen))


async def _condition(pilot: Any) -> None:
    pilot.app.condition = "state['drafts'] >= 1"
    await pilot.press("w")
    await settle(pilot, lambda: isinstance(pilot.app.screen, ConditionScreen))


async def _help(pilot: Any) -> None:
    await pilot.press("question_mark")
    await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))


async def _zoomed(pilot: Any) -> None:
    await _open(pilot, "snap-billing", step=1)
    await pilot.press("z")


SCREENS = {"graph": _graph, "runs": _runs, "timeline": _timeline, "compare": _compare, "sql": _sql,
           "fork": _fork, "human_input": _human, "condition": _condition, "help": _help, "zoom": _zoomed}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_app: Any, snap_compare: Any, screen: str, size: str) -> None:  # noqa: F811
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await SCREENS[screen](pilot)
        pilot.app.clear_notifications()
        await _freeze(pilot)

    assert snap_compare(snap_app, terminal_size=SIZES[size], run_before=run_before)

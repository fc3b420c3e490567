"""SVG snapshots of a timeline with subgraph steps nested under their calling steps (one
unfolded, one folded, the cursor on an inner step), at 160×45 and 80×24.

The rows are made here (fixed times, no store), so the picture never depends on a clock; the
pilot tests (test_live_view.py) check that a recorded run produces such rows.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.containers import Horizontal

from workbench.history import TimelineRow
from workbench.tui.widgets.inspector import Inspector
from workbench.tui.widgets.timeline import Timeline

CHILD = "snap-nested/2.0.0"
CHECK = "snap-nested/3.0.0"


def rows() -> list[TimelineRow]:
    def row(step: int, node: str, start: float, dur: float, **kw: Any) -> TimelineRow:
        return TimelineRow(step, [node], kw.pop("status", "completed"), start, dur, 1, None,
                           kw.pop("tokens", 0), False, **kw)

    return [
        row(1, "intake", 0.0, 1.2),
        row(2, "review", 1.2, 905.0, inner=3),
        row(1, "assess", 1.4, 640.0, depth=1, run_id=CHILD, tokens=58),
        row(2, "approve", 642.0, 250.1, depth=1, run_id=CHILD, status="interrupted"),
        row(3, "record", 893.0, 12.0, depth=1, run_id=CHILD),
        row(3, "check", 906.5, 40.0, inner=2),
        row(1, "lookup", 907.0, 20.0, depth=1, run_id=CHECK),
        row(2, "verify", 927.0, 19.0, depth=1, run_id=CHECK),
        row(4, "reply", 947.0, 402.3, tokens=71),
    ]


class NestedTimelineApp(App[None]):
    CSS = """
    #timeline { width: 1fr; border: round $accent; }
    #inspector { width: 1fr; border: round $secondary; padding: 0 1; }
    """

    def compose(self):  # type: ignore[no-untyped-def]
        with Horizontal():
            yield Timeline(id="timeline")
            yield Inspector(id="inspector")

    def on_mount(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.border_title = "run snap-nested · warranty"
        timeline.show_rows("snap-nested", rows())
        timeline.cursor = 5  # the second subgraph step: folded
        timeline.action_fold(True)
        timeline.cursor = 0
        timeline.focus()


@pytest.mark.parametrize("size", [(160, 45), (80, 24)], ids=["160x45", "80x24"])
def test_nested_timeline(size: tuple[int, int], snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await pilot.press("j", "j", "j")  # review/approve: an inner step
        await pilot.pause()
        pilot.app.query_one(Inspector).show_message("step 2 of review (snap-nested/2.0.0): approve")
        await pilot.pause()

    assert snap_compare(NestedTimelineApp(), terminal_size=size, run_before=run_before)

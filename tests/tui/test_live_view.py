"""The open run kept live and true: a live run's timeline grows by what is new (constant work per
step), the inspector never shows a run or step the user has left, a subgraph's inner steps
nest and fold, help opens from a prebuilt text, and quitting waits for nothing it need not."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from workbench.history import TimelineRow, timeline
from workbench.timeline_feed import TimelineFeed
from workbench.tui.lifecycle import DaemonExecutor
from workbench.tui.messages import RunChosen, StepLoaded
from workbench.tui.screens.fork_editor import ForkScreen
from workbench.tui.widgets.timeline import Timeline

from .conftest import Project, busy, choose_run, db_query, make_project, opened, poll, settle, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    proj = make_project(tmp_path / "proj", ["chain", "counter", "gate", "demo:warranty"])
    monkeypatch.chdir(proj.root)
    return proj


def inspector(app: Any) -> str:
    return text_of(app, "#inspector-body", width=110)


# ---------------------------------------------------------------------- live runs append


async def test_a_live_run_appends_to_the_timeline_reading_only_what_is_new(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[int, int, int]] = []  # (rows kept, rows after, rows the store returned)
    real_refresh = TimelineFeed.refresh

    def counting(self: TimelineFeed, store: Any) -> Any:
        # Count every row the store hands this refresh (the work it does), in this thread only.
        me, fetched = threading.get_ident(), [0]
        real_query, real_dicts = store._query, store._query_dicts

        def query(sql: str, params: Any = None) -> Any:
            rows = real_query(sql, params)
            fetched[0] += len(rows) if threading.get_ident() == me else 0
            return rows

        def query_dicts(sql: str, params: Any = None) -> Any:
            rows = real_dicts(sql, params)
            fetched[0] += len(rows) if threading.get_ident() == me else 0
            return rows

        store._query, store._query_dicts = query, query_dicts
        try:
            update = real_refresh(self, store)
        finally:
            del store._query, store._query_dicts
        reads.append((update.keep, update.total, fetched[0]))
        return update

    monkeypatch.setattr(TimelineFeed, "refresh", counting)
    # A long run so far (paused at step 100), then stepped on live, a step at a time.
    other = project.run("counter", {"limit": 200}, break_when=lambda s: s["count"] >= 100)
    assert other.status == "paused"
    async with opened(project) as (app, pilot):
        await choose_run(pilot, other.run_id)
        for _ in range(8):
            await pilot.press("s")  # one more step, recorded live by the workbench
            await settle(pilot, lambda: app.live is None and not busy(app), what="the step")
        shown = app.query_one("#timeline", Timeline)
        with app.shared.lease() as store:
            assert shown.rows == timeline(store, other.run_id)  # the same as reading it whole
        assert shown.rows[-1].status == "pending" and shown.current is shown.rows[-1]  # following it
    first, incremental = reads[0], reads[1:]
    assert first[0] == 0 and first[2] > 100  # opening it read it whole
    assert len(shown.rows) == 109
    assert len(incremental) >= 8 and all(keep > 0 for keep, _, _ in incremental), reads
    for keep, total, fetched in incremental:
        # What a refresh reads is the new step (and the last one again), never the whole run.
        assert total - keep <= 3 and fetched <= 12, (keep, total, fetched)


# ---------------------------------------------------------------------- never stale


async def test_the_inspector_never_shows_the_run_left_behind(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    a = project.run("chain", {"flaky": True, "fail": True})
    b = project.run("counter", {"limit": 3})
    real_refresh = TimelineFeed.refresh
    release = threading.Event()

    def slow_for_b(self: TimelineFeed, store: Any) -> Any:
        if self.run_id == b.run_id:
            release.wait(timeout=20)  # B is slow to read: what shows meanwhile?
        return real_refresh(self, store)

    monkeypatch.setattr(TimelineFeed, "refresh", slow_for_b)
    async with opened(project) as (app, pilot):
        await choose_run(pilot, a.run_id)
        await settle(pilot, lambda: "c failed on purpose" in inspector(app) or "step 1" in inspector(app))
        assert "step 1: a" in inspector(app)
        a_view = app.step_loader.views[(a.run_id, 1)]
        old_gen = app.step_loader.gen
        try:
            app.post_message(RunChosen(b.run_id))
            await poll(pilot, lambda: "Loading run" in inspector(app), what="the inspector cleared")
            # Nothing of A is on screen while B is read: not its step, not its timeline.
            assert b.run_id in inspector(app) and "step 1: a" not in inspector(app)
            assert app.query_one("#timeline", Timeline).rows == []
            # A late answer for A's step (asked before B was chosen) is dropped.
            app.post_message(StepLoaded(a.run_id, a_view, [], old_gen))
            await pilot.pause()
            assert "step 1: a" not in inspector(app)
        finally:
            release.set()
        await settle(pilot, lambda: "step 1: tick" in inspector(app) and not busy(app))
        assert app.open_run["run_id"] == b.run_id


async def test_moving_the_cursor_shows_each_step_once_read(project: Project) -> None:
    run = project.run("counter", {"limit": 40})
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        timeline_widget = app.query_one("#timeline", Timeline)
        timeline_widget.focus()
        await pilot.press(*["j"] * 25)  # faster than the steps are read: only the newest counts
        await settle(pilot, lambda: "step 26:" in inspector(app) and not busy(app))
        assert app.selected_step == 26 and app.query_one("#inspector").border_subtitle == ""
        # Back to a step read before: shown at once, from what was read.
        await pilot.press("g")
        assert "step 1:" in inspector(app)
        # The cursor's row stays in sight, above the horizontal scroll bar (it went under it).
        visible = timeline_widget.scrollable_content_region.height
        assert timeline_widget.virtual_size.width > timeline_widget.size.width and visible < 40
        for keys in (["G"], ["g", *["j"] * visible]):
            await pilot.press(*keys)
            top = timeline_widget.scroll_offset.y
            assert top <= timeline_widget.cursor < top + visible, (keys, top, timeline_widget.cursor, visible)


# ---------------------------------------------------------------------- subgraphs nest and fold


async def test_subgraph_steps_nest_under_their_step_and_fold(project: Project) -> None:
    run = project.run("warranty", {"message": "My kettle broke, refund $30 please", "customer_id": "C-1"})
    assert run.status == "completed"
    child = f"{run.run_id}/2.0.0"
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        widget = app.query_one("#timeline", Timeline)
        lines = [(widget.rows[i].depth, widget.rows[i].label) for i in widget.shown]
        assert lines == [(0, "intake"), (0, "review"), (1, "assess"), (1, "approve"), (1, "record"), (0, "reply")]
        assert "completed  3 steps" in text_of(app, "#timeline-head")  # as the Runs table counts (it said 6)
        widget.focus()
        await pilot.press("j", "j", "j")  # review/approve: an inner step
        await settle(pilot, lambda: app.selected_inner == (child, 2) and "step 2: approve" in inspector(app))
        assert "approved automatically" in inspector(app)  # the inner step's own update and state
        assert app.selected_step is None
        await pilot.press("left")  # fold from inside: the cursor goes to the calling step
        await settle(pilot)
        assert [widget.rows[i].label for i in widget.shown] == ["intake", "review", "reply"]
        assert widget.current is not None and widget.current.label == "review"
        assert app.selected_step == 2
        await pilot.press("enter")  # unfold
        await settle(pilot)
        assert len(widget.shown) == 6
        await pilot.press("enter")  # and fold again
        await settle(pilot)
        assert len(widget.shown) == 3


async def test_fork_at_a_step_inside_a_subgraph_from_the_timeline(project: Project) -> None:
    run = project.run("warranty", {"message": "My kettle broke, refund $30 please", "customer_id": "C-1"})
    child = f"{run.run_id}/2.0.0"
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        widget = app.query_one("#timeline", Timeline)
        widget.focus()
        await pilot.press("j", "j", "j")  # review/approve: inner step 2 of the subgraph run
        await settle(pilot, lambda: app.selected_inner == (child, 2) and "step 2: approve" in inspector(app))
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
        assert "2/review#0.0/2" in text_of(app.screen, "Label", width=150)  # the inner address
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: app.live is None and not busy(app) and db_query(
            app, "SELECT count(*) FROM runs WHERE parent_run_id = ?", [run.run_id])[0][0] == 1,
            what="the fork")
        forks = db_query(app, "SELECT run_id, fork_step, status FROM runs WHERE parent_run_id = ?", [run.run_id])
        assert [(f[1], f[2]) for f in forks] == [(1, "completed")]  # forked at the calling step (2)
        inner = db_query(app, "SELECT caller_run_id, parent_run_id, fork_step FROM subgraph_runs "
                              "WHERE parent_run_id = ?", [child])
        assert inner == [(forks[0][0], child, 1)]  # the subgraph run forked at its own step 2


# ---------------------------------------------------------------------- help and quit


async def test_help_is_drawn_from_one_prebuilt_text(project: Project) -> None:
    from textual.widgets import Markdown

    from workbench.tui.screens.help import HelpScreen

    async with opened(project) as (app, pilot):
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert not app.screen.query(Markdown)  # no widget per block to build
        assert "fold / unfold" in text_of(app.screen, "#help-body")


async def test_quitting_waits_for_no_worker_thread(project: Project) -> None:
    release = threading.Event()
    async with opened(project) as (app, pilot):
        assert isinstance(asyncio.get_running_loop()._default_executor, DaemonExecutor)  # type: ignore[attr-defined]
        started = threading.Event()

        def slow() -> None:  # a litellm import or a read that takes seconds
            started.set()
            release.wait(timeout=30)

        app.run_worker(slow, thread=True, group="slow")
        await poll(pilot, started.is_set, what="the slow thread")
        await pilot.press("q")
    try:
        assert not release.is_set()  # the app is gone; the thread is still at work, as a daemon
        assert all(t.daemon for t in threading.enumerate() if t.name == "workbench-worker")
    finally:
        release.set()


def test_rows_of_the_snapshot_helper_are_plain_timeline_rows() -> None:
    assert TimelineRow(1, ["a"], "completed", 0.0, 1.0, 1, None, 0, False).depth == 0

"""What a newcomer's session in a real terminal found, each driven through the app as they did it:
the runs filter and search past the newest thousand runs, a mark that never went away, the
heading's step count of a run paused inside a subgraph, the timeline cursor lost by a resize, a
run deleted by the CLI while open, exporting after a failed query, a search that found nothing,
and ``/ Search`` in the footer where it does nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, TextArea
from textual.widgets._footer import FooterKey

from workbench.runtime import Runner
from workbench.sqlquery import run_read_only
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.sql_console import SqlConsole
from workbench.tui.widgets.timeline import Timeline

from .conftest import Project, _in_thread, choose_run, make_project, notes, opened, poll, rows, settle, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    proj = make_project(tmp_path / "proj", ["chain", "counter", "demo:warranty"])
    monkeypatch.chdir(proj.root)
    return proj


def record_many(project: Project, completed: int) -> str:
    """One failed chain run, then ``completed`` completed ones (newer); the failed run's id."""
    def job() -> str:
        with project.store() as st:
            runner = Runner(project.graph("chain"), st)
            failed = runner.run({"fail": True}).run_id
            for _ in range(completed):
                runner.run({})
            return failed

    return str(_in_thread(job))


def cli() -> list[str]:
    exe = Path(sys.executable).parent / "workbench"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]


# ---------------------------------------------------------------------- 1. the runs filter and search


async def test_the_runs_filter_and_search_find_a_run_older_than_the_newest_thousand(project: Project) -> None:
    failed = record_many(project, 1005)
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: len(app.runs) == 1000, what="the newest runs")
        table = app.query_one("#runs-table", RunsTable)
        assert failed not in {r["run_id"] for r in app.runs}
        # Said, not left to guess: only the newest are listed.
        assert "showing the newest 1,000 of 1,006 runs" in text_of(app, "#runs-error", width=300)

        box = app.query_one("#runs-filter", Input)
        box.focus()
        box.value = "status = 'failed'"
        await pilot.press("enter")
        await settle(pilot, lambda: [r["run_id"] for r in app.runs] == [failed], what="the filtered runs")
        assert [r[0] for r in rows(table)] == [failed]
        assert text_of(app, "#runs-error").strip() == ""  # all of them listed: nothing to say

        box.value = ""
        await pilot.press("enter")
        await settle(pilot, lambda: len(app.runs) == 1000, what="every run again")
        search = app.query_one("#runs-search", Input)
        search.focus()
        await pilot.press(*"on purpose")  # the failed run's error: older than the runs read
        await poll(pilot, lambda: [r[0] for r in rows(table)] == [failed], what="the search to reach the store")


def test_the_runs_query_gives_the_rows_of_list_runs(project: Project) -> None:
    """The Runs tab reads filtered runs with its own query (list_runs takes no filter): the same
    columns and values, forks, a run paused inside a subgraph and model tokens included."""
    from workbench.tui.runs_filter import rows_of, runs_query

    project.run("chain", {"fail": True})
    parent = project.run("chain")
    project.fork("chain", parent.run_id, 2, set_state={"value": 5})
    project.run("warranty", {"message": "refund my broken kettle, $40", "customer_id": "C-1001"},
                break_before=["review/approve"])
    with project.store() as st:
        listed = st.list_runs(100)
        result = run_read_only(st, runs_query("true"), 100)
        runs, matching = rows_of(result.columns, result.rows)
        assert (runs, matching) == (listed, 4)
        assert any(r["tokens"] for r in runs)
        result = run_read_only(st, runs_query("parent IS NOT NULL", "CHAIN"), 100)
        assert [r["parent_run_id"] for r in rows_of(result.columns, result.rows)[0]] == [parent.run_id]


# ---------------------------------------------------------------------- 2. the mark


async def test_m_again_unmarks_and_a_comparison_uses_the_mark_up(project: Project) -> None:
    parent = project.run("chain")
    fork = project.fork("chain", parent.run_id, 3, set_state={"value": 100})
    other = project.run("chain", {"fail": True})
    async with opened(project) as (app, pilot):
        await choose_run(pilot, other.run_id)
        await pilot.press("m")
        assert app.mark == other.run_id
        await pilot.press("m")  # m on the marked run: unmarked, and said so
        assert app.mark is None and f"unmarked {other.run_id}" in notes(app)[-1]

        await pilot.press("m")
        await choose_run(pilot, fork.run_id)
        await pilot.press("d")
        await settle(pilot)
        assert f"A {other.run_id}" in text_of(app, "#compare-head")
        assert app.mark is None and "the mark is cleared" in notes(app)[-1]

        # Later, d on the fork compares it with its parent, not with the run marked long ago.
        await pilot.press("3", "d")
        await settle(pilot)
        assert app.query_one("#tabs").active == "tab-compare"
        head = text_of(app, "#compare-head")
        assert f"A {parent.run_id}" in head and f"B {fork.run_id}" in head


# ---------------------------------------------------------------------- 3. the heading's step count


async def test_the_heading_counts_the_steps_as_the_runs_table_does(project: Project) -> None:
    """A warranty run paused inside its review subgraph after step 1: its unfinished caller step
    (⏸) is no step of its own yet. The heading said 2 steps, the table and workbench runs 1."""
    run = project.run("warranty", {"message": "refund my broken kettle, $40", "customer_id": "C-1001"},
                      break_before=["review/approve"])
    assert run.status == "paused"
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: app.runs)
        assert app.runs[0]["steps"] == 1
        await choose_run(pilot, run.run_id)
        timeline = app.query_one("#timeline", Timeline)
        assert [(r.step, r.status) for r in timeline.rows if not r.depth] == [(1, "completed"), (2, "interrupted")]
        assert "paused  1 steps" in text_of(app, "#timeline-head")


# ---------------------------------------------------------------------- 4. resizing


async def test_the_selected_step_stays_in_view_when_the_terminal_shrinks(project: Project) -> None:
    run = project.run("counter", {"limit": 12})
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        timeline = app.query_one("#timeline", Timeline)
        timeline.focus()
        await pilot.press("G")
        await settle(pilot, lambda: app.selected_step == 12, what="the last step")
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        top, height = timeline.scroll_offset.y, timeline.scrollable_content_region.height
        assert height < 12  # (the pane is too small for every step: scrolling is needed)
        assert top <= timeline.cursor < top + height
        assert timeline.current is not None and timeline.current.step == 12


# ---------------------------------------------------------------------- 5. a run deleted meanwhile


async def test_a_run_deleted_by_the_cli_while_open_is_cleared(project: Project) -> None:
    run = project.run("chain", break_before=["c"])
    assert run.status == "paused"
    other = project.run("chain", {"fail": True})
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        await pilot.press("m")  # marked too: a mark of a deleted run is cleared
        # Opening another run: its heading no longer names the run left behind.
        app._open_run(other.run_id)
        head = text_of(app, "#timeline-head")
        assert f"Loading run {other.run_id}" in head and run.run_id not in head
        await choose_run(pilot, run.run_id)

        done = await asyncio.to_thread(subprocess.run, [*cli(), "rm", run.run_id], cwd=project.root, env=env,
                                       capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        await poll(pilot, lambda: app.open_run is None, rounds=3000, what="the deleted run to be cleared")
        assert any(f"run {run.run_id} was deleted" in n for n in notes(app))
        assert any(f"the marked run {run.run_id} was deleted" in n for n in notes(app))
        assert app.mark is None
        assert run.run_id not in text_of(app, "#timeline-head")
        assert app.query_one("#timeline", Timeline).rows == []
        await pilot.press("c")  # (it tried to resume the deleted run: "no run '…'")
        await settle(pilot)
        assert notes(app)[-1].endswith("no run is open: open a paused run (Runs → enter), then c continues it")


# ---------------------------------------------------------------------- 6. the SQL console


async def run_sql(pilot: Any, query: str) -> SqlConsole:
    app = pilot.app
    console = app.query_one("#sql", SqlConsole)
    app.query_one("#sql-editor", TextArea).text = query
    await pilot.press("ctrl+r")
    await settle(pilot, lambda: not text_of(console, "#sql-status").startswith("running…"), what="the query")
    return console


async def test_export_after_a_failed_query_is_refused(project: Project) -> None:
    project.run("chain")
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        console = await run_sql(pilot, "SELECT run_id, status FROM runs")
        await run_sql(pilot, "SELECT * FROM no_such_table")
        assert "SQL error" in text_of(console, "#sql-status")
        await pilot.press("ctrl+e")
        await settle(pilot)
        assert not (project.traces / "exports").exists()
        assert "the last query failed: nothing exported" in notes(app)[-1]
        await pilot.press("ctrl+f")
        assert "the last query failed: nothing fetched" in notes(app)[-1]

        # A query that works again: its results export.
        await run_sql(pilot, "SELECT run_id, status FROM runs")
        await pilot.press("ctrl+e")
        exports = project.traces / "exports"
        await settle(pilot, lambda: exports.is_dir() and list(exports.glob("*.csv")), what="the CSV export")


async def test_headers_of_an_empty_result_are_marked_as_the_previous_querys(project: Project) -> None:
    async with opened(project) as (_app, pilot):
        await pilot.press("5")
        console = await run_sql(pilot, "SELECT run_id, status FROM runs WHERE false")
        table = console.query_one("#sql-results", DataTable)
        assert table.row_count == 0 and len(table.columns) == 2
        await run_sql(pilot, "SELECT nope FROM runs")
        assert "(the results below are the previous query's)" in text_of(console, "#sql-status", width=300)


# ---------------------------------------------------------------------- 7. timeline search


async def test_a_timeline_search_that_finds_nothing_says_so(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await choose_run(pilot, run.run_id)
        app.query_one("#timeline", Timeline).focus()
        await pilot.press("slash", *"zzz", "enter")
        await settle(pilot)
        assert "no step matches 'zzz'" in notes(app)[-1]
        assert app.focused is app.query_one("#timeline", Timeline)


# ---------------------------------------------------------------------- 8. the footer


def footer_keys(app: Any) -> list[str]:
    return [key.key for key in app.screen.query(FooterKey)]


async def test_search_is_in_the_footer_only_where_it_searches(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        assert "slash" not in footer_keys(app)  # the Graph tab: / does nothing there
        await choose_run(pilot, run.run_id)
        await pilot.press("3")
        await settle(pilot)
        assert "slash" in footer_keys(app)  # the timeline, where it works (it did not fit before)
        await pilot.press("slash")
        await settle(pilot)
        assert isinstance(app.focused, Input) and "slash" not in footer_keys(app)  # typing: / is a slash
        await pilot.press("escape", "2")
        await settle(pilot)
        assert "slash" in footer_keys(app)
        await pilot.press("4")
        await settle(pilot)
        assert "slash" not in footer_keys(app)
        await pilot.press("5")
        await settle(pilot)
        assert app.focused is app.query_one("#sql-editor") and "slash" not in footer_keys(app)
        await pilot.press("slash")  # in the editor, / types a slash
        assert "/" in app.query_one("#sql-editor", TextArea).text

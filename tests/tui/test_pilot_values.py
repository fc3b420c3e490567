"""Pilot tests of seeing values: the Compare tab side by side with the full diff on enter (into
subgraph runs too), the value viewer from the inspector, the runs table and SQL results, and
the SQL console's schema browser, name completion and pushed-down row limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, OptionList, Static, TextArea

from workbench.tui.screens.value_viewer import DiffScreen, ValuePicker, ValueScreen
from workbench.tui.widgets.compare_view import CompareView
from workbench.tui.widgets.schema_browser import SchemaBrowser
from workbench.tui.widgets.sql_console import PAGE_ROWS

from .conftest import Project, make_project, options, plain, rows, settle
from .test_pilot import BILLING, open_run, opened, sql

pytestmark = pytest.mark.anyio

ANSWER = "Hi there, our billing team will review your refund request within two business days."


def static_text(screen: Any, selector: str) -> Any:
    return screen.query_one(selector, Static).content


async def compare_fork(pilot: Any, fork_id: str) -> list[list[str]]:
    app = pilot.app
    await open_run(pilot, fork_id)
    await pilot.press("d")
    await settle(pilot, lambda: app.query_one("#compare-table", DataTable).row_count > 0, what="the comparison")
    return rows(app.query_one("#compare-table", DataTable))


async def test_compare_shows_both_sides_and_enter_opens_the_full_diff(project: Project) -> None:
    parent = project.run("support", {"message": BILLING})
    fork = project.fork("support", parent.run_id, 4, llm_responses={1: ANSWER})
    async with opened(project) as (app, pilot):
        got = await compare_fork(pilot, fork.run_id)
        assert [r[:3] for r in got[:2]] == [["1", "classify", "shared history"],
                                            ["2", "fetch_account", "shared history"]]
        index = next(i for i, r in enumerate(got) if r[0] == "4" and r[2] == "draft")
        side_a, side_b = got[index][3], got[index][4]
        # Each side shows its own text around the difference, not a shared prefix.
        assert side_a != side_b and "our billing team" in side_b
        assert "Thanks for getting" in side_a
        table = app.query_one("#compare-table", DataTable)
        table.focus()
        table.move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff viewer")
        screen = app.screen
        full_a, full_b = static_text(screen, "#diff-a-text"), static_text(screen, "#diff-b-text")
        with app.shared.lease() as st:
            draft_a = st.state_at(parent.run_id, 4)["draft"]
        assert full_a.plain == draft_a and "\n" in full_a.plain  # in full, real newlines
        assert full_b.plain == ANSWER
        highlighted_b = "".join(full_b.plain[s.start:s.end] for s in full_b.spans)
        assert "billing team" in highlighted_b
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, DiffScreen))
        # A row with nothing to open says so.
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)


async def test_compare_descends_into_subgraph_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "sub", ["demo:warranty"])
    monkeypatch.chdir(project.root)
    parent = project.run("warranty", {"message": "Please refund $120 for the broken kettle"})

    def answer() -> Any:
        from workbench.runtime import Runner

        with project.store() as st:
            return Runner(project.graph("warranty"), st).resume(parent.run_id, "yes")

    from .conftest import _in_thread

    assert _in_thread(answer).status == "completed"
    fork = project.fork("warranty", parent.run_id, "2/review/3", set_state={"decision": "declined"})
    async with opened(project) as (app, pilot):
        got = await compare_fork(pilot, fork.run_id)
        inner = [r for r in got if r[0] == "2 › review 3"]
        assert inner and inner[0][1:] == ["record", "decision", "approved", "declined"]
        view = app.query_one("#compare", CompareView)
        table = app.query_one("#compare-table", DataTable)
        table.focus()
        table.move_cursor(row=got.index(inner[0]))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff viewer")
        assert static_text(app.screen, "#diff-b-text").plain == "declined"
        assert view.rows[got.index(inner[0])].b == "declined"


async def test_value_viewer_from_the_inspector(project: Project) -> None:
    run = project.run("support", {"message": BILLING})
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id, step=4)  # draft: a model call
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ValuePicker), what="the value list")
        listed = options(app.screen.query_one("#picker-list", OptionList))
        assert listed[0].startswith("state.draft")
        answer_at = next(i for i, o in enumerate(listed) if o.startswith("model call 1 · draft · answer"))
        box = app.screen.query_one("#picker-list", OptionList)
        box.highlighted = answer_at
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ValueScreen), what="the value viewer")
        shown = static_text(app.screen, "#viewer-text").plain
        with app.shared.lease() as st:
            assert shown == st.state_at(run.run_id, 4)["draft"]
        assert "\n" in shown and "⏎" not in shown
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, ValuePicker))
        box.highlighted = 0  # the changed key: before → after, side by side
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff viewer")
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, (DiffScreen, ValuePicker)))


async def test_value_viewer_from_the_runs_table(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: app.runs)
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ValuePicker), what="the run's values")
        assert options(app.screen.query_one("#picker-list", OptionList))[1].startswith("output (final state)")
        app.screen.query_one("#picker-list", OptionList).highlighted = 1
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ValueScreen), what="the value viewer")
        with app.shared.lease() as st:
            output = st.get_run(run.run_id)["output"]
        import json

        assert json.loads(static_text(app.screen, "#viewer-text").plain) == output


async def test_sql_cell_viewer_opens_json_in_full(project: Project) -> None:
    run = project.run("support", {"message": BILLING})
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        await sql(pilot, "SELECT run_id, output FROM runs")
        table = app.query_one("#sql-results", DataTable)
        table.focus()
        table.move_cursor(row=0, column=1)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ValueScreen), what="the cell viewer")
        import json

        with app.shared.lease() as st:
            output = st.get_run(run.run_id)["output"]
        assert json.loads(static_text(app.screen, "#viewer-text").plain) == output
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, ValueScreen))
        await pilot.press("v")  # the same from the key that opens values anywhere
        await settle(pilot, lambda: isinstance(app.screen, ValueScreen), what="the cell viewer")


async def test_schema_browser_lists_views_and_inserts_names(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        browser = app.query_one("#sql-schema", SchemaBrowser)
        await settle(pilot, lambda: len(browser.root.children) >= 10, what="the schema")
        views = [str(n.data) for n in browser.root.children]
        assert views[:3] == ["runs", "subgraph_runs", "steps"]
        runs_columns = [str(n.data) for n in browser.root.children[0].children]
        assert runs_columns[:3] == ["run_id", "graph", "status"]
        editor = app.query_one("#sql-editor", TextArea)
        editor.text = "SELECT  FROM runs"
        editor.cursor_location = (0, 7)
        await pilot.press("ctrl+g")
        assert app.focused is browser
        browser.move_cursor(browser.root.children[0].children[1])  # runs.graph
        await pilot.press("enter")
        await pilot.pause()
        assert editor.text == "SELECT graph FROM runs"
        assert app.focused is editor


async def test_editor_completes_view_and_column_names(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        browser = app.query_one("#sql-schema", SchemaBrowser)
        await settle(pilot, lambda: len(browser.root.children) >= 10, what="the schema")
        editor = app.query_one("#sql-editor", TextArea)
        editor.text = "SELECT * FROM subg"
        editor.cursor_location = (0, len(editor.text))
        await pilot.press("tab")
        assert editor.text == "SELECT * FROM subgraph_runs"
        editor.text = "SELECT steps.durat"
        editor.cursor_location = (0, len(editor.text))
        await pilot.press("tab")
        assert editor.text == "SELECT steps.duration_ms"
        # Several names fit: tab cycles through them.
        editor.text = "SELECT prompt_t"
        editor.cursor_location = (0, len(editor.text))
        await pilot.press("tab")
        assert editor.text == "SELECT prompt_tokens"
        editor.text = "SELECT * FROM llm_calls WHERE ro"
        editor.cursor_location = (0, len(editor.text))
        await pilot.press("tab")
        first = editor.text
        assert first.endswith("root_run_id") or first.endswith("role")
        # Nothing to complete: tab indents, as in any code editor.
        editor.text = ""
        await pilot.press("tab")
        assert editor.text.strip() == "" and len(editor.text) > 0


async def test_row_limit_is_pushed_into_the_query(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        console = await sql(pilot, "SELECT i FROM range(10000) t(i) ORDER BY i")
        result = console.result
        assert result is not None and result.fetched == PAGE_ROWS + 1  # the database made N+1 rows
        table = app.query_one("#sql-results", DataTable)
        assert table.row_count == PAGE_ROWS
        assert f"first {PAGE_ROWS:,} rows" in plain(console.query_one("#sql-status").content)
        await pilot.press("ctrl+f")  # fetch more
        await settle(pilot, lambda: table.row_count == 2 * PAGE_ROWS, what="more rows")
        assert console.result is not None and console.result.fetched == 2 * PAGE_ROWS + 1
        await sql(pilot, "SELECT 1 AS one")
        assert "1 row(s)" in plain(console.query_one("#sql-status").content)

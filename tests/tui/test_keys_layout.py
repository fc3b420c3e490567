"""Keys that never trap and a layout that makes room (issue 10): the real app driven with
``App.run_test()`` at 160×45 and 80×24."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.widget import Widget
from textual.widgets import Checkbox, DataTable, Input, Select, TextArea
from textual.widgets._footer import FooterKey

from workbench.tui.keys import FittingFooter
from workbench.tui.screens.condition import ConditionScreen
from workbench.tui.screens.fork_editor import ForkScreen
from workbench.tui.screens.human_input import HumanInputScreen
from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.runs_table import RunsTable

from .conftest import Project, busy, notes, poll, run_row, settle, text_of
from .test_pilot import BILLING, open_form, open_run, run_via_form, select_graph, wait_run

pytestmark = pytest.mark.anyio

WIDE, SMALL = (160, 45), (80, 24)
TABS = {"1": "tab-graph", "2": "tab-runs", "3": "tab-timeline", "4": "tab-compare", "5": "tab-sql"}


@asynccontextmanager
async def opened(project: Project, size: tuple[int, int] = WIDE) -> AsyncIterator[tuple[Any, Any]]:
    app = project.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: not busy(app) and app.registry.entries, what="start-up")
        yield app, pilot


def active(app: Any) -> str:
    return str(app.query_one("#tabs").active)


def shown(app: Any, selector: str) -> bool:
    """Whether a widget is displayed (it and every ancestor)."""
    widget = app.query_one(selector)
    return all(node.display for node in [widget, *widget.ancestors_with_self] if hasattr(node, "display"))


async def leave_sql(pilot: Any) -> None:
    if active(pilot.app) == "tab-sql":
        await pilot.press("escape")  # the SQL editor types digits: leave it first


# ---------------------------------------------------------------------- tab keys from every tab


async def test_every_tab_key_works_from_every_tab(project: Project) -> None:
    async with opened(project) as (app, pilot):
        for first in TABS:
            for second, tab in TABS.items():
                await leave_sql(pilot)
                await pilot.press(first)
                await settle(pilot)
                await leave_sql(pilot)
                await pilot.press(second)
                await settle(pilot)
                assert active(app) == tab, f"{first} then {second}"
                assert app.focused is not None and tab in [a.id for a in app.focused.ancestors_with_self]


async def test_d_in_runs_shows_the_comparison_of_a_fork(project: Project) -> None:
    parent = project.run("chain")
    fork = project.fork("chain", parent.run_id, 2)
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: fork.run_id in {r["run_id"] for r in app.runs})
        table = app.query_one("#runs-table", RunsTable)
        table.move_cursor(row=table.get_row_index(fork.run_id))
        await pilot.press("d")
        await settle(pilot, lambda: app.query_one("#compare-table", DataTable).row_count > 0)
        assert active(app) == "tab-compare"
        assert parent.run_id in text_of(app, "#compare-head") and fork.run_id in text_of(app, "#compare-head")


async def test_mark_then_d_on_the_same_run_says_why(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id)
        await pilot.press("m", "d")
        await settle(pilot)
        assert "is the marked run itself" in notes(app)[-1]
        assert active(app) == "tab-timeline"


async def test_mark_then_d_on_another_run_compares(project: Project) -> None:
    a, b = project.run("chain"), project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, a.run_id)
        await pilot.press("m")
        await open_run(pilot, b.run_id)
        await pilot.press("d")
        await settle(pilot, lambda: app.query_one("#compare-table", DataTable).row_count > 0)
        assert active(app) == "tab-compare"


# ---------------------------------------------------------------------- the dialog rule


async def open_fork(pilot: Any, project: Project) -> Any:
    run = project.run("support", {"message": BILLING, "customer_id": "C-1002"})
    app = pilot.app
    await open_run(pilot, run.run_id, step=1)  # classify: a model call
    await pilot.press("f")
    await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
    return app.screen


async def test_keys_typed_right_after_tab_land_in_the_next_field(project: Project) -> None:
    """A burst of keys (a fast typist, a paste, tmux send-keys): the text after ``tab`` goes to
    the next field. A non-priority tab binding acted only once the key had bubbled up, after the
    keys behind it had already gone to the old field ("I was charged twiceC-1002")."""
    from textual import events

    async with opened(project) as (app, pilot):
        form = await open_form(pilot, "support")
        burst = [*"charged", "tab", *"C-1002"]
        for key in burst:  # posted at once, as a terminal delivers them, not one press at a time
            app.post_message(events.Key(key, "\t" if key == "tab" else key))
        await settle(pilot, lambda: form.query_one("#field-customer_id", Input).value == "C-1002",
                     what="the text after tab in the next field")
        assert form.query_one("#field-message", Input).value == "charged"


async def test_ctrl_r_right_after_typing_runs_the_form_with_what_was_typed(project: Project) -> None:
    """A burst ending in ``ctrl+r``: the run starts with the text typed before it. The priority
    binding acted when the key reached the app, before the typed keys had reached the fields: the
    run started with an empty input."""
    from textual import events

    async with opened(project) as (app, pilot):
        await open_form(pilot, "support")
        for key in [*"charged", "tab", *"C-1002", "ctrl+r"]:  # posted at once, as a terminal delivers them
            app.post_message(events.Key(key, {"tab": "\t", "ctrl+r": None}.get(key, key)))
        run = await wait_run(pilot, "completed")
        assert run_row(app, run["run_id"])["input"] == {"message": "charged", "customer_id": "C-1002"}


async def test_ctrl_r_right_after_typing_runs_the_whole_query(project: Project) -> None:
    """The SQL console's keys wait for the text typed before them too (ctrl+r ran "SEL")."""
    from textual import events

    from workbench.tui.widgets.sql_console import SqlConsole

    async with opened(project) as (app, pilot):
        await pilot.press("5")
        console = app.query_one("#sql", SqlConsole)
        await settle(pilot, lambda: app.focused is console.query_one("#sql-editor", TextArea), what="the editor")
        await pilot.press("ctrl+n")
        for key in [*"SELECT", "space", *"42", "space", *"AS", "space", *"answer", "ctrl+r"]:
            app.post_message(events.Key(key, {"space": " ", "ctrl+r": None}.get(key, key)))
        await settle(pilot, lambda: console.result is not None, what="the query's result")
        assert console.result is not None and console.result.columns == ["answer"]
        assert console.result.rows == [(42,)]


async def test_fork_dialog_esc_leaves_the_editor_first_and_tab_moves_focus(project: Project) -> None:
    async with opened(project) as (app, pilot):
        modal = await open_fork(pilot, project)
        editor = modal.query_one("#fork-state", TextArea)
        assert modal.focused is editor
        text = editor.text
        await pilot.press("tab")
        assert editor.text == text and modal.focused is not editor  # focus moved, nothing indented
        editor.focus()
        await pilot.press("escape")
        assert app.screen is modal and modal.focused is modal.query_one("#fork")  # left the editor only
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ForkScreen)


async def test_fork_dialog_section_keys_and_ctrl_a_replace_the_model_answer(project: Project) -> None:
    async with opened(project) as (_app, pilot):
        modal = await open_fork(pilot, project)
        await pilot.press("ctrl+t")  # the answer box: the first call chosen, its answer selected
        await pilot.pause()
        answer = modal.query_one("#fork-answer", TextArea)
        assert modal.focused is answer and modal.query_one("#fork-call", Select).value == 1
        assert answer.text and answer.selected_text == answer.text
        await pilot.press(*"paid back")
        assert answer.text == "paid back"
        # The select's Changed message for the call ctrl+t chose may come after the typing (it
        # did in tmux): it must not put the recorded answer back.
        modal.on_select_changed(Select.Changed(modal.query_one("#fork-call", Select), 1))
        assert answer.text == "paid back"
        await pilot.press("ctrl+a", *"refund")
        assert answer.text == "refund"
        await pilot.press("ctrl+l")
        assert modal.focused is modal.query_one("#fork-call", Select)
        await pilot.press("ctrl+s")
        state = modal.query_one("#fork-state", TextArea)
        assert modal.focused is state
        await pilot.press("ctrl+a")
        assert state.selected_text == state.text
        labels = [str(label.content) for label in modal.query("Label")]
        assert [k for k in ("ctrl+s", "ctrl+l", "ctrl+t") if any(f"[{k}]" in t for t in labels)] == [
            "ctrl+s", "ctrl+l", "ctrl+t"]  # each key shown by its section


async def test_fork_dialog_alt_digits_stay_aliases(project: Project) -> None:
    """Terminals that report alt+digit as such (the kitty keyboard protocol) keep them; xterm and
    tmux send ESC+digit, which Textual reads as a character, hence the control keys."""
    async with opened(project) as (_app, pilot):
        modal = await open_fork(pilot, project)
        await pilot.press("alt+3")
        await pilot.pause()
        assert modal.focused is modal.query_one("#fork-answer", TextArea)
        await pilot.press("alt+2")
        assert modal.focused is modal.query_one("#fork-call", Select)
        await pilot.press("alt+1")
        assert modal.focused is modal.query_one("#fork-state", TextArea)


async def test_fork_dialog_json_error_keeps_the_text_with_the_cursor_at_it(project: Project) -> None:
    async with opened(project) as (app, pilot):
        modal = await open_fork(pilot, project)
        editor = modal.query_one("#fork-state", TextArea)
        editor.text = '{\n  "message": oops\n}'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is modal and "not valid JSON" in text_of(modal, "#fork-error")
        assert editor.text == '{\n  "message": oops\n}' and editor.cursor_location == (1, 13)


async def test_human_answer_json_error_keeps_the_typed_text(project: Project) -> None:
    project.run("review", {"choose": False})
    async with opened(project) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        modal.query_one("#as-json", Checkbox).value = True
        box = modal.query_one("#answer", Input)
        box.focus()
        await pilot.press(*'{"ok": tru}')
        await pilot.press("enter")
        await pilot.pause()
        assert "not valid JSON" in text_of(modal, "#answer-error")
        assert box.selection.is_empty and box.cursor_position == 7  # at the mistake, nothing selected
        await pilot.press("e")
        assert box.value == '{"ok": etru}'  # the key went in; the answer was not wiped


async def test_a_space_typed_right_after_tab_in_the_answer_dialog_ticks_json(project: Project) -> None:
    """``tab space`` in one burst: the space went into the answer box (its tab binding acted
    only once the key had bubbled up), and the JSON box stayed unticked."""
    from textual import events

    project.run("review", {"choose": False})
    async with opened(project) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        for key, char in (("tab", "\t"), ("space", " ")):  # posted at once, as a terminal delivers them
            app.post_message(events.Key(key, char))
        await settle(pilot, lambda: modal.query_one("#as-json", Checkbox).value, what="the JSON box ticked")
        assert modal.query_one("#answer", Input).value == ""


async def test_reopened_condition_prompt_starts_selected(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConditionScreen))
        await pilot.press(*"state['count'] >= 2", "enter")
        await settle(pilot)
        assert app.condition == "state['count'] >= 2"
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConditionScreen))
        box = app.screen.query_one("#condition", Input)
        assert box.value == "state['count'] >= 2" and box.selected_text == box.value
        await pilot.press(*"True", "enter")  # typing replaces it
        await settle(pilot)
        assert app.condition == "True"


# ---------------------------------------------------------------------- stepping words, edge trigger


async def test_break_condition_fires_where_it_becomes_true_and_c_gets_past_it(project: Project) -> None:
    async with opened(project) as (app, pilot):
        app.condition = "state['count'] >= 2"
        await run_via_form(pilot, "counter", limit="6")
        run = await wait_run(pilot, "paused")
        assert run_row(app, run["run_id"])["last_step"] == 2
        assert "paused after step 2: the break condition became true" in text_of(app, "#timeline-head")
        await pilot.press("c")  # still true after every later step: it does not fire again
        await wait_run(pilot, "completed", run["run_id"])


async def test_step_says_it_stepped(project: Project) -> None:
    async with opened(project) as (app, pilot):
        app.condition = "True"  # already true at the start: it never becomes true
        app.step_mode = True
        await run_via_form(pilot, "counter", limit="5")
        run = await wait_run(pilot, "paused")
        assert "paused after step 1 (one step, s)" in text_of(app, "#timeline-head")
        assert "one step" in notes(app)[-1]
        await pilot.press("s")
        await wait_run(pilot, "paused", run["run_id"])
        assert "paused after step 2 (one step, s)" in text_of(app, "#timeline-head")
        await pilot.press("c")
        await wait_run(pilot, "completed", run["run_id"])


# ---------------------------------------------------------------------- runs filter, hot reload


async def test_runs_filter_accepts_the_header_names(project: Project) -> None:
    short, long = project.run("counter", {"limit": 2}), project.run("counter", {"limit": 5})
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: len(app.runs) == 2)
        box = app.query_one("#runs-filter", Input)
        box.focus()
        await pilot.press(*"steps > 3", "enter")
        await settle(pilot, lambda: len(app.runs) == 1)
        assert app.runs[0]["run_id"] == long.run_id and short.run_id != long.run_id
        box.value = "last_step > 3"  # the view's own name still works
        await pilot.press("enter")
        await settle(pilot, lambda: len(app.runs) == 1)
        assert app.query_one("#runs-error").content == ""


# ---------------------------------------------------------------------- layout


async def test_sidebar_and_live_panel_collapse(project: Project) -> None:
    async with opened(project) as (app, pilot):
        assert shown(app, "#graphs") and shown(app, "#live-log")
        wide = app.query_one("#graph-view").size.width
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not shown(app, "#graphs") and app.query_one("#graph-view").size.width > wide
        await pilot.press("L")
        await pilot.pause()
        assert not shown(app, "#live-log")
        await pilot.press("ctrl+b", "L")
        await pilot.pause()
        assert shown(app, "#graphs") and shown(app, "#live-log")


async def test_zoom_gives_the_focused_pane_the_whole_screen(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id)
        await pilot.press("z")
        await pilot.pause()
        assert shown(app, "#timeline") and not shown(app, "#inspector") and not shown(app, "#graphs")
        assert app.query_one("#timeline-pane").size.width == WIDE[0]
        await pilot.press("z")
        await pilot.pause()
        assert shown(app, "#inspector") and shown(app, "#graphs")
        await pilot.press("z", "2")  # a tab key restores the layout
        await pilot.pause()
        assert shown(app, "#graphs") and active(app) == "tab-runs"


async def test_the_footer_keeps_the_keys_that_stay_when_the_focus_moves(project: Project) -> None:
    async with opened(project) as (app, pilot):
        footer = app.screen.query_one(FittingFooter)

        def keys() -> list[tuple[str, str, str, bool]]:
            return [(k.key_display, k.description, k.action, k.has_class("-disabled")) for k in footer.query(FooterKey)]

        on_graph = {k.action: k for k in footer.query(FooterKey)}
        assert "open" in on_graph and "open_run" not in on_graph  # the graph view's own keys
        for tab, theirs, not_theirs in (("2", "open_run", "open"), ("1", "open", "open_run")):
            before = {k.action: k for k in footer.query(FooterKey)}
            await pilot.press(tab)
            await settle(pilot, lambda a=theirs: a in [k.action for k in footer.query(FooterKey)], what="the keys")
            after = {k.action: k for k in footer.query(FooterKey)}
            assert not_theirs not in after
            assert len(after.keys() & before.keys()) > 10
            assert all(after[a] is before[a] for a in after.keys() & before.keys())  # not built again
            shown_keys = keys()
            # Textual's own rebuild (every key new, made in the footer as its rebuilds are): the same keys
            footer.call_later(Widget.recompose, footer)
            await pilot.pause()
            assert not any(k is after[k.action] for k in footer.query(FooterKey))
            assert keys() == shown_keys


async def test_80x24_is_usable(project: Project) -> None:
    run = project.run("support", {"message": BILLING, "customer_id": "C-1002"})
    async with opened(project, SMALL) as (app, pilot):
        assert not shown(app, "#graphs")  # narrow: the graph list starts hidden (ctrl+b shows it)
        footer_keys = list(app.screen.query(FooterKey))
        assert sum(len(k.key_display) + len(k.description) + 3 for k in footer_keys) <= SMALL[0]
        assert {"q", "?", "r"} <= {k.key_display for k in footer_keys}
        await open_run(pilot, run.run_id, step=1)
        labels = [str(c.label) for c in app.query_one("#runs-table", RunsTable).ordered_columns]
        assert labels[:1] == ["run"] and "status" in labels and "steps" in labels
        timeline = app.query_one("#timeline")
        assert timeline.size.width >= 70  # the timeline over the inspector, each full width
        line = timeline.render_line(0).text
        assert "tok" in line  # token counts survive
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert shown(app, "#graphs")
        await pilot.press("ctrl+b")
        # Shrunk far below 80x24, the timeline still shows a step, and so does the inspector.
        await pilot.resize_terminal(40, 12)
        await settle(pilot)
        assert app.query_one("#timeline").content_region.height >= 1
        assert app.query_one("#inspector").content_region.height >= 1


async def test_graph_select_still_works_with_sidebar_hidden(project: Project) -> None:
    async with opened(project, SMALL) as (app, pilot):
        await select_graph(pilot, "counter")
        assert app.selected_graph == "counter"


async def test_fork_answer_box_is_one_key_away_at_80x24(project: Project) -> None:
    async with opened(project, SMALL) as (_app, pilot):
        modal = await open_fork(pilot, project)
        await pilot.press("ctrl+t")
        await settle(pilot)
        answer = modal.query_one("#fork-answer", TextArea)
        assert modal.focused is answer
        # The dialog scrolls the box into view after its next frame: wait for that frame, not a
        # fixed number of them (how many pass in a round depends on the frame rate).
        await poll(pilot, lambda: answer.region.height > 0 and answer.region.bottom <= SMALL[1],
                   what="the answer box scrolled into view")


async def test_fork_dialog_buttons_show_at_120x40(project: Project) -> None:
    """At 120x40 only the top edge of the buttons showed: the dialog had to be scrolled."""
    from textual.widgets import Button

    async with opened(project, (120, 40)) as (_app, pilot):
        modal = await open_fork(pilot, project)
        dialog = modal.query_one("#dialog")
        inside = dialog.scrollable_content_region
        for button in modal.query(Button):
            assert button.region.height == 3 and button.region.bottom <= inside.bottom, (button.region, inside)
        assert dialog.max_scroll_y == 0


async def test_reload_after_fixing_a_syntax_error_keeps_the_changed_markers(project: Project) -> None:
    from pathlib import Path

    from workbench.tui.messages import GraphReloaded
    from workbench.tui.widgets.graph_view import GraphView

    from .conftest import plain

    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        path = Path("graphs/chain.py")
        edited = path.read_text().replace('return {"log": ["d"]}', 'return {"log": ["D"]}')
        for text in (edited, edited + "\ndef oops(:\n", edited):  # edit, break, fix
            path.write_text(text)
            app.post_message(GraphReloaded(app.registry.reload_file(str(path))))
            await settle(pilot)
        drawing = plain(app.query_one("#graph-view", GraphView).content).splitlines()
        assert "│ d * │" in next(x for x in drawing if "│ d" in x)  # the graph view's changed mark
        assert notes(app)[-1] == "graph reloaded: reloaded graphs/chain.py — chain: d"


async def test_human_answer_dialog_buttons_fit_80x24(project: Project) -> None:
    """The escalation question of the support demo (a four-key payload): the answer box, its
    JSON tick and every button are on screen at 80x24 without scrolling, and enter answers."""
    rid = project.run("support", {"message": "This is unacceptable, I want a manager",
                                  "customer_id": "C-1001"}).run_id
    async with opened(project, SMALL) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        dialog = modal.query_one("#dialog")
        for selector in ("#answer", "#as-json", "#send", "#close-interrupt", "#cancel"):
            region = modal.query_one(selector).region
            assert region.height > 0 and region.bottom <= dialog.region.bottom <= SMALL[1], selector
        assert dialog.scroll_offset.y == 0  # nothing scrolled to get there
        await pilot.press(*"A manager will call you")
        await pilot.press("enter")
        await wait_run(pilot, "completed", rid)


async def test_live_log_keeps_one_line_in_a_short_terminal(project: Project) -> None:
    async with opened(project, SMALL) as (app, pilot):
        live = app.query_one("#live-log")
        assert live.region.height == 3  # its border and the last line: the drawing keeps the rest
        await pilot.press("L")
        await settle(pilot)
        assert not shown(app, "#live-log")
        await pilot.press("L")
        await settle(pilot)
        assert app.query_one("#live-log").region.height == 3
        app.query_one("#live-log").focus()
        await pilot.press("z")  # zoomed, it takes the whole body
        await settle(pilot)
        assert app.query_one("#live-log").region.height > 10
        await pilot.press("z")
        await settle(pilot)
        assert app.query_one("#live-log").region.height == 3
    async with opened(project) as (app, pilot):  # 45 rows: small until a run writes to it
        live = app.query_one("#live-log")
        assert live.region.height == 3  # nothing run yet: the graph drawing gets the room
        live.write("step 1: classify")
        await settle(pilot, lambda: live.region.height > 3, what="the Live log grown by a line")
        live.clear()
        await settle(pilot, lambda: live.region.height == 3, what="the cleared Live log small again")
        # Shrunk by a resize, a terminal takes the short layout at once (it went by the height
        # before the resize, and took it only at the next one).
        live.write("step 1: classify")
        await settle(pilot, lambda: live.region.height > 3, what="the Live log grown by a line")
        await pilot.resize_terminal(*SMALL)
        await settle(pilot)
        assert app.layout_state.short and live.region.height == 3
        await pilot.resize_terminal(*WIDE)
        await settle(pilot)
        assert not app.layout_state.short and live.region.height > 3


async def test_keys_typed_right_after_a_focus_key_go_to_the_new_focus(project: Project) -> None:
    """A burst on the main screen: ``G`` (the graph list) then ``down`` moves in the graph list.
    The focus used to move by a callback queued behind the keys already waiting, so ``down``
    went to the pane focused before."""
    from textual import events

    async with opened(project) as (app, pilot):
        graphs = app.query_one("#graphs", GraphList)
        start = graphs.highlighted or 0
        assert app.focused is not graphs
        for key in ("G", "down"):  # posted at once, as a terminal delivers them
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await settle(pilot, lambda: app.focused is graphs and graphs.highlighted == start + 1,
                     what="down to move in the graph list")


async def test_text_typed_right_after_slash_goes_to_the_search_box(project: Project) -> None:
    """A burst on the runs table: ``/`` then ``chain`` searches for "chain". The app acted on
    ``/`` only once it had bubbled up from the table, after the letters behind it had gone to the
    table (``c`` there continues a paused run)."""
    from textual import events

    project.run("counter")
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.focused, RunsTable), what="the runs table")
        for key in ("slash", *"chain"):  # posted at once, as a terminal delivers them
            app.post_message(events.Key(key, "/" if key == "slash" else key))
        box = app.query_one("#runs-search", Input)
        await settle(pilot, lambda: box.value == "chain", what="the search box to hold what was typed")
        assert app.focused is box


async def test_text_typed_right_after_a_dialog_key_goes_into_the_dialog(project: Project) -> None:
    """A burst: ``r`` then ``refund please`` fills the run form's first field. The form takes its
    focus only once mounted; the letters that arrived before that were lost."""
    from textual import events

    from workbench.tui.screens.run_input import RunInputScreen

    async with opened(project) as (app, pilot):
        await select_graph(pilot, "support")
        for key in ("r", *"refund", "space", *"please"):  # posted at once, as a terminal delivers them
            app.post_message(events.Key(key, " " if key == "space" else key))
        await settle(pilot, lambda: isinstance(app.screen, RunInputScreen)
                     and app.screen.query_one("#field-message", Input).value == "refund please",
                     what="the typed text in the form's first field")
        assert app.screen.focused is app.screen.query_one("#field-message", Input)



async def test_escape_leaves_the_runs_and_timeline_search_boxes(project: Project) -> None:
    """``esc`` in a search or filter box goes back to its pane (as in the SQL editor), so the
    digit and letter keys work again; the timeline's box hides."""
    run = project.run("counter")
    async with opened(project) as (app, pilot):
        await pilot.press("2", "slash", "c", "o")
        box = app.query_one("#runs-search", Input)
        assert app.focused is box and box.value == "co"
        await pilot.press("escape")
        assert isinstance(app.focused, RunsTable) and box.value == "co"  # left, the search kept
        app.query_one("#runs-filter", Input).focus()
        await pilot.press("escape", "3")
        assert active(app) == "tab-timeline"  # the digit was a key again, not text in the filter
        await open_run(pilot, run.run_id)
        await pilot.press("slash")
        search = app.query_one("#timeline-search", Input)
        assert app.focused is search and not search.has_class("hidden")
        await pilot.press("escape")
        assert app.focused is app.query_one("#timeline") and search.has_class("hidden")


async def test_a_burst_of_next_graph_keys_settles_on_the_graph_it_counts_to(project: Project) -> None:
    """``]`` three times at once shows the third graph on, and stays there. The list's own
    highlight used to echo back as a choice: the queued echoes undid each other in a circle
    that never ended (the app at full CPU, a subgraph reader started at every turn)."""
    from textual import events

    async with opened(project) as (app, pilot):
        names = app.registry.names()
        start = names.index(app.selected_graph)
        wanted = names[(start + 3) % len(names)]
        for _ in range(3):  # posted at once, as a terminal delivers them
            app.post_message(events.Key("right_square_bracket", "]"))
        await settle(pilot, what="the graph list to settle")
        assert app.selected_graph == wanted
        graphs = app.query_one("#graphs", GraphList)
        assert graphs.highlighted == names.index(wanted)


async def test_a_run_started_from_a_form_is_shown_on_the_graph_tab_with_the_focus_on_it(project: Project) -> None:
    """Started from the Timeline the Graph tab came up with nothing focused (j, b, z did
    nothing); from Runs the tab stayed and the focus went to the lineage tree."""
    from workbench.tui.screens.run_input import RunInputScreen
    from workbench.tui.widgets.graph_view import GraphView

    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        for tab in ("3", "2"):
            await pilot.press(tab)
            await pilot.press("r")
            await settle(pilot, lambda: isinstance(app.screen, RunInputScreen), what="the run form")
            await pilot.press("ctrl+r")
            await settle(pilot, lambda: app.live is None and not busy(app), what="the run")
            assert active(app) == "tab-graph", tab
            assert isinstance(app.focused, GraphView), (tab, app.focused)

"""Functional tests of the workbench TUI: the real app driven with ``App.run_test()``.

Each test records what it needs through the library (as the CLI or a production process would),
opens the app on a throwaway project, presses keys, and asserts on what the app shows and on the
trace store afterwards. Waits are bounded loops over the app's workers and message queue.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.command import CommandPalette
from textual.widgets import Checkbox, DataTable, Input, OptionList, Select, TextArea

from workbench.tui.messages import GraphReloaded, RunChosen
from workbench.tui.screens.condition import ConditionScreen
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.fork_editor import ForkScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.human_input import HumanInputScreen
from workbench.tui.screens.run_input import RunInputScreen
from workbench.tui.widgets.graph_list import GraphList
from workbench.tui.widgets.graph_view import GraphView
from workbench.tui.widgets.lineage_tree import LineageTree
from workbench.tui.widgets.runs_table import RunsTable
from workbench.tui.widgets.sql_console import SqlConsole
from workbench.tui.widgets.timeline import Timeline

from .conftest import (
    Project,
    busy,
    db_query,
    errors,
    final_state,
    log_lines,
    make_project,
    notes,
    opened,
    options,
    plain,
    poll,
    rows,
    run_row,
    settle,
    text_of,
)

pytestmark = pytest.mark.anyio

SIZE = (150, 45)
ESCALATION = "This is unacceptable, I want to talk to a manager"
BILLING = "I was charged twice on my last invoice"


# ---------------------------------------------------------------------- driving the app


async def select_graph(pilot: Any, name: str) -> None:
    app = pilot.app
    await pilot.press("G")
    names = app.registry.names()
    target = names.index(name)
    graphs = app.query_one("#graphs", GraphList)
    for _ in range(len(names) + 2):
        if app.selected_graph == name:
            break
        await pilot.press("down" if (graphs.highlighted or 0) < target else "up")
        await pilot.pause()
    assert app.selected_graph == name


async def open_form(pilot: Any, graph: str) -> RunInputScreen:
    await select_graph(pilot, graph)
    await pilot.press("r")
    await settle(pilot, lambda: isinstance(pilot.app.screen, RunInputScreen), what="the run form")
    return pilot.app.screen


async def run_via_form(pilot: Any, graph: str, **fields: str) -> None:
    form = await open_form(pilot, graph)
    for key, value in fields.items():
        form.query_one(f"#field-{key}", Input).value = value
    await pilot.press("ctrl+r")


def run_is(app: Any, status: str, run_id: str | None = None) -> bool:
    run = app.open_run
    return (not busy(app) and app.live is None and run is not None and run["status"] == status
            and (run_id is None or run["run_id"] == run_id))


async def wait_run(pilot: Any, status: str, run_id: str | None = None) -> dict[str, Any]:
    """Wait until the open run has ``status`` in the store, then in the app."""
    app = pilot.app

    def stored() -> bool:
        run = app.open_run
        if busy(app) or app.live is not None or run is None or (run_id and run["run_id"] != run_id):
            return False
        return bool(run_row(app, run["run_id"])["status"] == status)

    await settle(pilot, stored, what=f"a {status} run in the store")
    if not run_is(app, status, run_id):
        # A superseded timeline load can land last and show a stale status: that bug has its own
        # test (test_timeline_shows_the_final_status_when_an_older_load_lands_last); here, re-read.
        app._open_run(app.open_run["run_id"])
    await settle(pilot, lambda: run_is(app, status, run_id), what=f"a {status} run")
    return app.open_run


async def open_run(pilot: Any, run_id: str, step: int | None = None) -> None:
    """Runs tab → put the cursor on the run → enter; then optionally move to a step."""
    app = pilot.app
    await pilot.press("2")
    await settle(pilot, lambda: run_id in {r["run_id"] for r in app.runs}, what="the runs table")
    table = app.query_one("#runs-table", RunsTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(run_id))
    await pilot.press("enter")
    await settle(pilot, lambda: app.open_run and app.open_run["run_id"] == run_id and not busy(app),
                 what="the timeline")
    if step is not None:
        await goto_step(pilot, step)


async def goto_step(pilot: Any, step: int) -> None:
    app = pilot.app
    timeline = app.query_one("#timeline", Timeline)
    timeline.focus()
    index = next(i for i, r in enumerate(timeline.rows) if r.step == step)
    for _ in range(len(timeline.rows)):
        if timeline.cursor == index:
            break
        await pilot.press("j" if timeline.cursor < index else "k")
    await settle(pilot, lambda: app.selected_step == step and "step " in inspector(app), what="the inspector")


def inspector(app: Any) -> str:
    return text_of(app, "#inspector-body", width=110)


def bindings(cls: Any) -> list[Binding]:
    return [b for b in cls.BINDINGS if isinstance(b, Binding)]


def module_globals(app: Any, graph: str, node: str) -> dict[str, Any]:
    fn = app.registry.get(graph).nodes[node].fn
    return fn.__globals__


# ---------------------------------------------------------------------- 1. open a project


async def test_open_lists_graphs_and_runs(project: Project) -> None:
    done = project.run("chain")
    async with opened(project) as (app, pilot):
        listed = options(app.query_one("#graphs", GraphList))
        for name in ("chain", "counter", "gate", "review", "support"):
            assert any(o.startswith(name) for o in listed), listed
        assert "classify, look up, draft" in "\n".join(listed)  # descriptions shown
        await pilot.press("2")
        await settle(pilot)
        table = app.query_one("#runs-table", RunsTable)
        assert [r[0] for r in rows(table)] == [done.run_id]
        assert errors(app) == []


def test_opening_the_app_does_not_import_litellm(project: Project) -> None:
    # litellm takes seconds to import: the app loads it in the background after the first paint.
    code = ("import sys; from workbench.cli import build_parser; from workbench.tui.app import WorkbenchApp; "
            "WorkbenchApp('traces/workbench.duckdb', 'graphs', watch=False); print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


async def test_broken_graph_file_is_listed_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "proj", ["chain", "broken", "review"])
    monkeypatch.chdir(project.root)
    async with opened(project) as (app, pilot):
        listed = options(app.query_one("#graphs", GraphList))
        assert listed[0].startswith("chain") and listed[1].startswith("review")
        broken = [o for o in listed if "broken.py" in o]
        assert broken and "syntax error" in broken[0] and broken[0].startswith("✗")
        assert any("broken.py" in e and "syntax error" in e for e in errors(app))
        # The other graphs still work.
        await select_graph(pilot, "review")
        assert "ask" in plain(app.query_one("#graph-view", GraphView).content)


# ---------------------------------------------------------------------- 2. see a graph, breakpoints


async def test_graph_view_draws_nodes_and_toggles_breakpoints(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "support")
        await pilot.press("1")
        view = app.query_one("#graph-view", GraphView)
        drawing = plain(view.content)
        for node in ("classify", "fetch_account", "retrieve_policy", "draft", "check", "send", "handoff"):
            assert node in drawing
        assert "START" in drawing and "END" in drawing

        assert view.selected == "classify"
        await pilot.press("b")
        await pilot.pause()
        assert "│ ● classify │" in plain(view.content)  # ● before the name: break before
        assert app.breaks["support"]["before"] == {"classify"}
        assert "breakpoint before classify set" in "\n".join(notes(app))

        await pilot.press("j", "a")
        await pilot.pause()
        assert view.selected == "fetch_account"
        assert "│ fetch_account ●" in plain(view.content)  # ● after the name: break after
        assert app.breaks["support"]["after"] == {"fetch_account"}

        await pilot.press("k", "b")  # toggling again clears it
        await pilot.pause()
        assert app.breaks["support"]["before"] == set()
        assert "● classify" not in plain(view.content)
        # Breakpoints belong to their graph.
        await select_graph(pilot, "chain")
        assert "●" not in plain(view.content)


# ---------------------------------------------------------------------- 3. run with the input form


async def test_run_from_input_form_shows_live_step_events(project: Project) -> None:
    async with opened(project) as (app, pilot):
        form = await open_form(pilot, "support")
        assert app.focused is form.query_one("#field-message", Input)
        await pilot.press(*"my bill", "enter")
        run = await wait_run(pilot, "completed")
        lines = log_lines(app)
        assert lines[0].startswith(f"▶ run {run['run_id']} (support)")
        for expected in ("step 1: classify", "classify completed", "step 2: fetch_account", "draft completed",
                         "send completed"):
            assert any(expected in x for x in lines), (expected, lines)
        assert lines[-1].startswith("■ run completed")
        assert f"done: run {run['run_id']} completed" in notes(app)
        assert final_state(app, run["run_id"])["handled_by"] == "assistant"
        # The graph view shows the executed path.
        assert {"classify", "fetch_account", "draft", "send"} <= app.query_one("#graph-view", GraphView).executed
        assert "handoff" not in app.query_one("#graph-view", GraphView).executed


async def test_the_live_log_keeps_to_its_end_when_the_terminal_shrinks(project: Project) -> None:
    """Below 32 rows the Live log is a line or two tall: after the terminal shrank, it showed the
    middle of the run it had written at full height, not its last line."""
    from workbench.tui.widgets.live_log import LiveLog

    async with opened(project) as (app, pilot):
        await run_via_form(pilot, "support", message="my bill")
        await wait_run(pilot, "completed")
        log = app.query_one("#live-log", LiveLog)
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: log.size.height < 10 and log.max_scroll_y > 0, what="the shrunk log")
        await settle(pilot, lambda: log.scroll_y == log.max_scroll_y, what="the log at its end")


async def test_run_form_rejects_bad_input_inline(project: Project) -> None:
    async with opened(project) as (app, pilot):
        form = await open_form(pilot, "chain")
        assert app.focused is form.query_one("#field-fail", Input)  # ready to type
        await pilot.press(*"maybe", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunInputScreen)
        assert "fail: expected bool" in text_of(form, "#input-error")

        await pilot.click("#input-tabs #--content-tab-tab-json")
        await pilot.click("#raw-json")
        editor = form.query_one("#raw-json", TextArea)
        editor.text = '{"fail": '
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, RunInputScreen)
        assert "not valid JSON" in text_of(form, "#input-error")

        editor.text = '{"nope": 1}'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, RunInputScreen)
        assert "unknown state key 'nope'" in text_of(form, "#input-error")

        await pilot.click("#cancel")
        await settle(pilot)
        assert not isinstance(app.screen, RunInputScreen)
        assert db_query(app, "SELECT count(*) FROM runs")[0][0] == 0


async def test_model_tokens_stream_into_the_live_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "proj", ["demo:research"])
    monkeypatch.chdir(project.root)
    async with opened(project) as (app, pilot):
        await run_via_form(pilot, "research", question="Should we store traces in DuckDB or SQLite?")
        run = await wait_run(pilot, "completed")
        report = final_state(app, run["run_id"])["report"]
        # The report was streamed token by token into the log (not only reported by events).
        first_heading = next(x for x in report.splitlines() if x.startswith("## "))
        assert any(first_heading in x for x in log_lines(app))


# ---------------------------------------------------------------------- 4. breakpoints: step, continue, stop


async def test_breakpoint_pauses_then_step_and_continue(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        await pilot.press("1", "j", "b")  # break before b
        assert app.breaks["chain"]["before"] == {"b"}
        await run_via_form(pilot, "chain")
        run = await wait_run(pilot, "paused")
        rid = run["run_id"]
        assert run_row(app, rid)["status"] == "paused"
        assert "paused before b" in text_of(app, "#timeline-head")
        assert any("paused before b" in x for x in log_lines(app))
        assert final_state(app, rid)["log"] == ["a"]

        await pilot.press("s")  # one superstep: b runs, the run pauses again
        await wait_run(pilot, "paused", rid)
        await settle(pilot, lambda: final_state(app, rid)["log"] == ["a", "b"], what="b to commit")
        assert "paused" in text_of(app, "#timeline-head")

        await pilot.press("c")
        await wait_run(pilot, "completed", rid)
        assert run_row(app, rid)["status"] == "completed"
        assert final_state(app, rid)["log"] == ["a", "b", "c", "d"]
        assert [r.status for r in app.query_one("#timeline", Timeline).rows] == ["completed"] * 4


async def test_continue_works_when_the_run_thread_ends_before_its_end_is_handled(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's worker thread ends before the app handles the run's end (a busy app, a loaded
    machine): the app must still know which graph the paused run belongs to. It once cleared its
    record of the live run from the worker thread, and ``c`` then said "graph None is not loaded"
    (found by the tmux test under load, once in eight runs)."""
    from workbench.tui.app import WorkbenchApp

    handle = WorkbenchApp.on_run_ended

    async def late(self: Any, message: Any) -> None:
        for _ in range(500):  # until the run's worker has returned (bounded)
            if not any(w.group == "run" and w.state.name in ("PENDING", "RUNNING") for w in self.workers):
                break
            await asyncio.sleep(0.01)
        handle(self, message)

    monkeypatch.setattr(WorkbenchApp, "on_run_ended", late)
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        await pilot.press("1", "j", "b")  # break before b
        await run_via_form(pilot, "chain")
        run = await wait_run(pilot, "paused")
        assert app.ended == {"run_id": run["run_id"], "graph": "chain", "paused": True}
        await pilot.press("c")
        await wait_run(pilot, "completed", run["run_id"])
        assert final_state(app, run["run_id"])["log"] == ["a", "b", "c", "d"]
        assert not [n for n in notes(app) if "not loaded" in n]


async def test_a_paused_run_highlights_the_step_it_stopped_at(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        await pilot.press("1", "j", "b")
        await run_via_form(pilot, "chain")
        await wait_run(pilot, "paused")
        current = app.query_one("#timeline", Timeline).current
        assert current is not None and (current.step, current.status) == (2, "pending")
        assert app.query_one("#graph-view", GraphView).current == {"b"}


async def start_gate_run(pilot: Any) -> dict[str, Any]:
    """Run the gate graph from the form and wait until its node is holding (the run is live)."""
    app = pilot.app
    await run_via_form(pilot, "gate")
    gate = module_globals(app, "gate", "hold")
    try:
        await poll(pilot, lambda: gate["ENTERED"].is_set() and app.live and app.live.get("run_id"),
                   what="the gate node to start")
    except BaseException:
        gate["RELEASE"].set()  # never leave a worker thread blocked behind a failed test
        raise
    return gate


async def test_stop_pauses_a_running_run(project: Project) -> None:
    async with opened(project) as (app, pilot):
        gate = await start_gate_run(pilot)
        try:
            rid = app.live["run_id"]
            assert run_row(app, rid)["status"] == "running"
            await pilot.press("x")
            await pilot.pause()
            assert "stopping after the current step…" in "\n".join(notes(app))
        finally:
            gate["RELEASE"].set()
        await wait_run(pilot, "paused", rid)
        assert run_row(app, rid)["status"] == "paused"
        assert final_state(app, rid)["log"] == ["held"]  # the step in flight finished; `after` did not run
        assert "stopped (x) after step 1" in text_of(app, "#timeline-head")  # not "the break condition"
        assert "break condition" not in text_of(app, "#timeline-head")
        await pilot.press("x")
        assert "no run in progress" in notes(app)[-1]


async def test_conditional_breakpoint(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConditionScreen))
        await pilot.press(*"1 +", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConditionScreen)  # a syntax error keeps the dialog
        assert "syntax error" in text_of(app.screen, "#condition-error")
        app.screen.query_one("#condition", Input).value = "state['count'] >= 3"
        await pilot.press("enter")
        await settle(pilot)
        assert app.condition == "state['count'] >= 3"
        assert "break when: state['count'] >= 3" in "\n".join(notes(app))

        await run_via_form(pilot, "counter", limit="10")
        run = await wait_run(pilot, "paused")
        assert final_state(app, run["run_id"])["count"] == 3
        assert "paused after step 3: the break condition became true" in text_of(app, "#timeline-head")


async def test_broken_condition_pauses_the_run_and_says_why(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("w")
        await settle(pilot, lambda: isinstance(app.screen, ConditionScreen))
        app.screen.query_one("#condition", Input).value = "state['nope'] > 1"
        await pilot.press("enter")
        await run_via_form(pilot, "counter", limit="5")
        run = await wait_run(pilot, "paused")
        assert final_state(app, run["run_id"])["count"] == 1
        assert any("Break condition" in e and "KeyError" in e for e in errors(app))


# ---------------------------------------------------------------------- 5. human input


async def test_support_escalation_waits_for_a_human_and_completes(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await run_via_form(pilot, "support", message=ESCALATION, customer_id="C-1001")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        rid = modal.run_id
        assert run_row(app, rid)["status"] == "waiting"
        assert modal.node == "handoff"
        assert "This conversation needs a human" in plain(modal.query_one("#payload").content)
        assert any("waiting for human input at handoff" in x for x in log_lines(app))
        await pilot.press(*"ok", "enter")
        run = await wait_run(pilot, "completed", rid)
        state = final_state(app, run["run_id"])
        assert state["handled_by"] == "human"
        assert state["reply"] == "ok"
        assert log_lines(app)[-1].startswith("■ run completed")


async def test_run_left_waiting_by_another_process_is_answered_with_i(project: Project) -> None:
    waiting = project.run("review", {"choose": False})
    assert waiting.status == "waiting"
    async with opened(project) as (app, pilot):
        assert not isinstance(app.screen, HumanInputScreen)
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        assert app.screen.run_id == waiting.run_id
        assert "Any comment?" in plain(app.screen.query_one("#payload").content)
        assert not app.screen.query("#choices")  # free text: no options offered
        await pilot.press(*"ok", "enter")
        await wait_run(pilot, "completed", waiting.run_id)
        assert final_state(app, waiting.run_id)["decision"] == "ok"


async def test_run_left_waiting_by_the_cli_while_the_app_is_open(project: Project) -> None:
    exe = Path(sys.executable).parent / "workbench"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]
    async with opened(project) as (app, pilot):
        # The app has the store open; a CLI run records into it meanwhile.
        done = subprocess.run([*cli, "run", "review", "--input", '{"choose": false}', "--json"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 3, done.stderr  # waiting for input
        run_id = json.loads(done.stdout)["run_id"]
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        assert app.screen.run_id == run_id
        await pilot.press("o", "k", "enter")
        await wait_run(pilot, "completed", run_id)
        assert final_state(app, run_id)["decision"] == "ok"


async def test_payload_with_options_offers_a_choice(project: Project) -> None:
    waiting = project.run("review", {"choose": True})
    async with opened(project) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        choices = app.screen.query_one("#choices", OptionList)
        assert options(choices) == ["approve", "reject", "defer"]
        choices.focus()
        await pilot.press("home", "down", "enter")  # the second option
        await wait_run(pilot, "completed", waiting.run_id)
        assert final_state(app, waiting.run_id)["decision"] == "reject"


async def test_invalid_json_answer_shows_an_error_and_keeps_the_modal(project: Project) -> None:
    waiting = project.run("review", {"choose": False})
    async with opened(project) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        modal.query_one("#as-json", Checkbox).value = True
        modal.query_one("#answer", Input).value = '{"ok": tru'
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is modal
        assert "not valid JSON" in text_of(modal, "#answer-error")
        assert run_row(app, waiting.run_id)["status"] == "waiting"

        await pilot.press("escape")  # later: the run keeps waiting
        await settle(pilot)
        assert not isinstance(app.screen, HumanInputScreen)
        assert run_row(app, waiting.run_id)["status"] == "waiting"

        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the modal again")
        app.screen.query_one("#as-json", Checkbox).value = True
        app.screen.query_one("#answer", Input).value = '{"ok": true, "n": 2}'
        await pilot.press("enter")
        await wait_run(pilot, "completed", waiting.run_id)
        assert final_state(app, waiting.run_id)["decision"] == {"ok": True, "n": 2}


async def test_parallel_questions_are_chosen_by_id_answered_and_closed(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    proj = make_project(tmp_path / "panel", ["panel"])
    monkeypatch.chdir(proj.root)
    waiting = proj.run("panel", {"topic": "logo"})
    assert [i["id"] for i in waiting.interrupts] == ["1.0.1.0", "1.1.1.0"]
    async with opened(proj) as (app, pilot):
        await pilot.press("i")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the human-input modal")
        modal = app.screen
        assert modal.interrupt_id == "1.0.1.0" and modal.node == "legal"
        which = modal.query_one("#which", OptionList)
        assert [o.split("  ")[0] for o in options(which)] == ["1.0.1.0", "1.1.1.0"]
        which.focus()
        await pilot.press("home", "down")  # moving to the second question shows it (it took enter)
        await settle(pilot, lambda: modal.interrupt_id == "1.1.1.0" and modal.query("#payload")
                     and "design" in plain(modal.query_one("#payload").content), what="the second question")
        assert modal.query_one("#which", OptionList).highlighted == 1 and modal.focused.id == "which"
        await pilot.press("enter")  # to the answer box
        await settle(pilot, lambda: modal.focused is not None and modal.focused.id == "answer", what="the box")
        await pilot.press(*"yes", "enter")
        # The run waits again, for legal's question only: the dialog comes back for it.
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen) and app.screen is not modal
                     and not busy(app), what="the modal for the question left")
        assert app.screen.interrupt_id == "1.0.1.0" and not app.screen.query("#which")
        assert run_row(app, waiting.run_id)["status"] == "waiting"
        await pilot.press("ctrl+n")  # close it unanswered
        await wait_run(pilot, "completed", waiting.run_id)
        assert final_state(app, waiting.run_id)["votes"] == ["design: yes"]
        statuses = db_query(app, "SELECT interrupt_id, status FROM interrupts ORDER BY interrupt_id")
        assert [tuple(r) for r in statuses] == [("1.0.1.0", "closed"), ("1.1.1.0", "answered")]


# ---------------------------------------------------------------------- 6. run history


async def test_runs_table_lists_runs_filters_and_searches(project: Project) -> None:
    ok = project.run("chain")
    failed = project.run("chain", {"fail": True})
    waiting = project.run("review", {"choose": False})
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot)
        table = app.query_one("#runs-table", RunsTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["run", "graph", "status", "started", "ms", "steps", "tokens", "cost $", "parent"]
        listed = {r[0]: r for r in rows(table)}
        assert set(listed) == {ok.run_id, failed.run_id, waiting.run_id}
        assert listed[failed.run_id][1:3] == ["chain", "failed"]
        assert listed[ok.run_id][5] == "4"  # steps

        box = app.query_one("#runs-filter", Input)
        box.focus()
        box.value = "status = 'failed'"
        await pilot.press("enter")
        await settle(pilot)
        assert [r[0] for r in rows(table)] == [failed.run_id]
        assert text_of(app, "#runs-error").strip() == ""

        box.value = "status = = 'oops'"
        await pilot.press("enter")
        await settle(pilot)
        assert "SQL error" in text_of(app, "#runs-error")

        box.value = "true; DELETE FROM wb_runs"
        await pilot.press("enter")
        await settle(pilot)
        assert "read-only" in text_of(app, "#runs-error")
        assert db_query(app, "SELECT count(*) FROM runs")[0][0] == 3

        box.value = ""
        await pilot.press("enter")
        await settle(pilot)
        assert len(rows(table)) == 3
        assert text_of(app, "#runs-error").strip() == ""

        search = app.query_one("#runs-search", Input)
        search.focus()
        await pilot.press(*"rev")
        await pilot.pause()
        assert [r[0] for r in rows(table)] == [waiting.run_id]


async def test_lineage_tree_shows_a_fork_under_its_parent(project: Project) -> None:
    parent = project.run("chain")
    other = project.run("chain")
    fork = project.fork("chain", parent.run_id, 3, set_state={"value": 100})
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot)
        tree = app.query_one("#lineage", LineageTree)
        roots = {n.data: n for n in tree.root.children}
        assert set(roots) == {parent.run_id, other.run_id}
        kids = roots[parent.run_id].children
        assert [k.data for k in kids] == [fork.run_id]
        assert "forked at step 3" in str(kids[0].label)
        assert len(roots[other.run_id].children) == 0
        # Choosing a node in the tree opens that run.
        tree.focus()
        tree.select_node(kids[0])
        await settle(pilot, lambda: app.open_run and app.open_run["run_id"] == fork.run_id and not busy(app))
        assert f"fork of {parent.run_id} at step 3" in text_of(app, "#timeline-head")


# ---------------------------------------------------------------------- 7. timeline


async def test_timeline_keys_next_error_and_search(project: Project) -> None:
    run = project.run("chain", {"flaky": True, "fail": True})
    assert run.status == "failed"
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        await open_run(pilot, run.run_id)
        timeline = app.query_one("#timeline", Timeline)
        assert app.focused is timeline
        assert [(r.step, r.label, r.status) for r in timeline.rows] == [
            (1, "a", "completed"), (2, "b", "retried"), (3, "c", "failed")]
        assert "failed" in text_of(app, "#timeline-head") and "c failed on purpose" in text_of(app, "#timeline-head")
        assert timeline.cursor == 0

        await pilot.press("j")
        await settle(pilot)
        assert (timeline.cursor, app.selected_step) == (1, 2)
        await pilot.press("k")
        await settle(pilot)
        assert (timeline.cursor, app.selected_step) == (0, 1)

        await pilot.press("e")  # next error or retry
        await settle(pilot)
        assert app.selected_step == 2
        await pilot.press("e")
        await settle(pilot)
        assert app.selected_step == 3
        assert "c failed on purpose" in inspector(app)

        await pilot.press("g")
        await pilot.press("slash")
        await pilot.pause()
        box = app.query_one("#timeline-search", Input)
        assert app.focused is box
        await pilot.press("b", "enter")
        await settle(pilot)
        assert app.selected_step == 2
        assert app.focused is timeline
        # The graph view marks the path the run took and where it stopped.
        view = app.query_one("#graph-view", GraphView)
        assert view.executed == {"a", "b", "c"}


async def test_timeline_shows_the_final_status_when_a_read_was_held_back(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.timeline_feed import TimelineFeed

    real_refresh = TimelineFeed.refresh
    release_stale, held = threading.Event(), threading.Event()

    def slow_while_running(self: Any, store: Any) -> Any:
        # A read made while the run was running is held back until the run has ended: the
        # ordering a busy machine produces now and then.
        update = real_refresh(self, store)
        if update.run["status"] == "running" and not held.is_set():
            held.set()
            release_stale.wait(timeout=20)
        return update

    monkeypatch.setattr(TimelineFeed, "refresh", slow_while_running)
    async with opened(project) as (app, pilot):
        await run_via_form(pilot, "gate")
        gate = module_globals(app, "gate", "hold")
        try:  # the run is held in its first step while the app reads it
            await poll(pilot, lambda: gate["ENTERED"].is_set() and held.is_set(), what="the run to start")
        finally:
            gate["RELEASE"].set()
        try:
            await poll(pilot, lambda: app.live is None, what="the run to end")
        finally:
            release_stale.set()  # now the held read finishes; the newer one follows it
        await settle(pilot, lambda: app.open_run["status"] == "completed" and not busy(app))
        assert "completed" in text_of(app, "#timeline-head")
        assert [r.label for r in app.query_one("#timeline", Timeline).rows] == ["hold", "after"]


async def test_a_ten_thousand_step_run_opens(project: Project) -> None:
    big = project.run("counter", {"limit": 10_000})
    assert big.status == "completed" and big.step == 10_000
    async with opened(project) as (app, pilot):
        await open_run(pilot, big.run_id)
        timeline = app.query_one("#timeline", Timeline)
        assert len(timeline.rows) == 10_000
        assert timeline.virtual_size.height == 10_000
        assert "10000 steps" in text_of(app, "#timeline-head")
        assert timeline.rows[-1].label == "tick ↺10000"  # loop visits are counted
        await pilot.press("G")
        await settle(pilot, lambda: app.selected_step == 10_000 and "step 10000" in inspector(app))
        assert timeline.cursor == 9_999
        assert timeline.scroll_offset.y > 9_000  # scrolled to the end
        await pilot.press("pageup")
        await settle(pilot, lambda: app.selected_step == 9_980)


# ---------------------------------------------------------------------- 8. inspector


async def test_inspector_shows_diff_update_and_llm_call(project: Project) -> None:
    run = project.run("support", {"message": BILLING, "customer_id": "C-1002"})
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id, step=1)
        body = inspector(app)
        assert "step 1: classify" in body
        assert "changed keys" in body and "category" in body and "billing" in body
        assert "update:" in body
        assert "model call 1 · classify · workbench-demo/assistant" in body
        assert "tokens" in body and "raw request" in body and "raw response" in body
        assert "Classify the customer's message" in body  # the messages sent
        assert "state after this step" in body

        await goto_step(pilot, 2)
        body = inspector(app)
        assert "tool crm_lookup" in body and "Grace Hopper" in body


async def test_inspector_shows_error_and_traceback(project: Project) -> None:
    run = project.run("chain", {"fail": True})
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id, step=3)
        body = inspector(app)
        assert "This step did not commit" in body
        assert "ValueError: c failed on purpose" in body
        assert "Traceback" in body and "chain.py" in body


# ---------------------------------------------------------------------- 9. replay and fork


async def test_fork_with_an_edited_state_key(project: Project) -> None:
    parent = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, parent.run_id, step=3)
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
        editor = app.screen.query_one("#fork-state", TextArea)
        before = json.loads(editor.text)
        assert before["value"] == 11 and before["log"] == ["a", "b"]
        editor.text = json.dumps({**before, "value": 100})
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: not isinstance(app.screen, ForkScreen))
        fork = await wait_run(pilot, "completed")
        assert fork["run_id"] != parent.run_id
        assert run_row(app, fork["run_id"])["parent_run_id"] == parent.run_id
        assert final_state(app, fork["run_id"])["value"] == 200
        assert final_state(app, parent.run_id)["value"] == 22
        assert f"fork of {parent.run_id} at step 3" in text_of(app, "#timeline-head")


async def test_fork_editor_validates_json_and_schema(project: Project) -> None:
    parent = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, parent.run_id, step=2)
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
        modal = app.screen
        editor = modal.query_one("#fork-state", TextArea)
        editor.text = '{"value": '
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is modal and "not valid JSON" in text_of(modal, "#fork-error")
        editor.text = '{"value": "eleven"}'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is modal and "value" in text_of(modal, "#fork-error")
        editor.text = '{"unknown_key": 1}'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is modal and "unknown_key" in text_of(modal, "#fork-error")
        await pilot.click("#cancel")
        await settle(pilot)
        assert not isinstance(app.screen, ForkScreen)
        assert db_query(app, "SELECT count(*) FROM runs")[0][0] == 1


async def test_escape_leaves_the_json_editor_then_cancels_the_dialog(project: Project) -> None:
    parent = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, parent.run_id, step=2)
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
        assert isinstance(app.focused, TextArea)
        await pilot.press("escape")  # out of the editor first (docs/tui.md: the dialog rule)
        await settle(pilot)
        assert isinstance(app.screen, ForkScreen) and not isinstance(app.focused, TextArea)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ForkScreen)

        await open_form(pilot, "chain")
        await pilot.click("#input-tabs #--content-tab-tab-json")
        await pilot.click("#raw-json")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunInputScreen) and not isinstance(app.focused, TextArea)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, RunInputScreen)


async def test_fork_with_an_edited_model_answer(project: Project) -> None:
    parent = project.run("support", {"message": BILLING, "customer_id": "C-1002"})
    async with opened(project) as (app, pilot):
        await open_run(pilot, parent.run_id, step=1)
        await pilot.press("f")
        await settle(pilot, lambda: isinstance(app.screen, ForkScreen), what="the fork dialog")
        app.screen.query_one("#fork-call", Select).value = 1
        await pilot.pause()
        answer = app.screen.query_one("#fork-answer", TextArea)
        assert answer.text == "billing"  # the recorded answer, ready to edit
        answer.text = "escalation"
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: isinstance(app.screen, HumanInputScreen), what="the fork to wait for a human")
        fork_id = app.screen.run_id
        assert run_row(app, fork_id)["parent_run_id"] == parent.run_id
        assert final_state(app, fork_id)["category"] == "escalation"
        await pilot.press("escape")


async def test_rerun_from_a_step_with_the_current_code(project: Project) -> None:
    parent = project.run("chain")
    async with opened(project) as (app, pilot):
        await open_run(pilot, parent.run_id, step=3)
        assert "code changed" not in text_of(app, "#timeline-head")
        path = "graphs/chain.py"
        src = Path(path).read_text()
        Path(path).write_text(src.replace('"value": state["value"] * 2', '"value": state["value"] * 3'))
        app.post_message(GraphReloaded(app.registry.reload_file(path)))
        await settle(pilot)
        # The open run's heading follows the reload (it kept saying nothing until reopened).
        assert "code changed since this run: c" in text_of(app, "#timeline-head")
        await pilot.press("R")
        fork = await wait_run(pilot, "completed")
        assert run_row(app, fork["run_id"])["parent_run_id"] == parent.run_id
        assert final_state(app, fork["run_id"])["value"] == 33  # (1 + 10) * 3: the new code ran
        assert final_state(app, parent.run_id)["value"] == 22


async def test_compare_a_fork_with_its_parent(project: Project) -> None:
    parent = project.run("chain")
    fork = project.fork("chain", parent.run_id, 3, set_state={"value": 100})
    async with opened(project) as (app, pilot):
        await open_run(pilot, fork.run_id)
        await pilot.press("d")
        await settle(pilot)
        assert app.query_one("#tabs").active == "tab-compare"
        head = text_of(app, "#compare-head")
        assert f"A {parent.run_id}" in head and f"B {fork.run_id}" in head
        table = app.query_one("#compare-table", DataTable)
        got = rows(table)
        assert [r[0] for r in got] == ["1", "2", "3", "4"]
        assert got[0][2] == "shared history"
        assert got[2][2:] == ["value", "22", "200"]  # the edit (11 → 100) shows in the state after step 3
        table.focus()
        start = table.cursor_row
        await pilot.press("j", "j")
        assert table.cursor_row == start + 2  # j/k move as in the other tables
        await pilot.press("k")
        assert table.cursor_row == start + 1


async def test_compare_a_marked_run_with_another(project: Project) -> None:
    a = project.run("chain")
    b = project.run("chain", {"fail": True})
    async with opened(project) as (app, pilot):
        await open_run(pilot, a.run_id)
        await pilot.press("m")
        assert f"marked {a.run_id}" in notes(app)[-1]
        await open_run(pilot, b.run_id)
        await pilot.press("d")
        await settle(pilot)
        assert app.query_one("#tabs").active == "tab-compare"
        head = text_of(app, "#compare-head")
        assert f"A {a.run_id} completed" in head and f"B {b.run_id} failed" in head
        got = rows(app.query_one("#compare-table", DataTable))
        assert [r[1] for r in got if r[0] == "4"] == ["d / —"]


async def test_replay_reports_identical(project: Project) -> None:
    run = project.run("support", {"message": BILLING})
    async with opened(project) as (app, pilot):
        await open_run(pilot, run.run_id)
        await pilot.press("p")
        await settle(pilot, lambda: any("replays identically" in n for n in notes(app)), what="the replay report")
        assert any(f"run {run.run_id} replays identically" in n and "no live calls" in n for n in notes(app))


async def test_replay_after_a_code_change_reports_the_divergence(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        path = "graphs/chain.py"
        Path(path).write_text(Path(path).read_text().replace('"log": ["c"]', '"log": ["C!"]'))
        app.post_message(GraphReloaded(app.registry.reload_file(path)))
        await settle(pilot)
        await open_run(pilot, run.run_id)
        await pilot.press("p")
        await settle(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the divergence report")
        assert f"replay of {run.run_id} diverged" in plain(app.screen.query_one("Label").content)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ErrorScreen)


# ---------------------------------------------------------------------- 11. SQL console


async def sql(pilot: Any, query: str) -> SqlConsole:
    app = pilot.app
    console = app.query_one("#sql", SqlConsole)
    editor = app.query_one("#sql-editor", TextArea)
    editor.text = query
    editor.focus()
    before = plain(console.query_one("#sql-status").content)
    await pilot.press("ctrl+r")
    await settle(pilot, lambda: (status := plain(console.query_one("#sql-status").content)) != before
                 and not status.startswith("running…"), what="the query")
    return console


async def test_sql_console_runs_queries_read_only_with_inline_errors(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        assert app.query_one("#tabs").active == "tab-sql"
        assert app.focused is app.query_one("#sql-editor")
        console = await sql(pilot, "SELECT run_id, status, graph FROM runs")
        assert "1 row(s)" in text_of(console, "#sql-status")
        assert rows(console.query_one("#sql-results", DataTable)) == [[run.run_id, "completed", "chain"]]

        await sql(pilot, "INSERT INTO wb_runs (run_id) VALUES ('evil')")
        assert "read-only" in text_of(console, "#sql-status")
        await sql(pilot, "SELECT * FROM no_such_table")
        assert "SQL error" in text_of(console, "#sql-status")
        assert "no_such_table" in text_of(console, "#sql-status")
        # The last results stay for a look, said to be the previous query's (they looked current).
        assert "(the results below are the previous query's)" in text_of(console, "#sql-status", width=300)
        assert rows(console.query_one("#sql-results", DataTable)) == [[run.run_id, "completed", "chain"]]
        assert db_query(app, "SELECT count(*) FROM runs")[0][0] == 1
        # A query that would run for ever: ctrl+x (named while it runs) stops it, and the store
        # is free again (it held the file, and recording waited for it).
        app.query_one("#sql-editor", TextArea).text = "SELECT count(*) FROM range(1000000000000) a, range(1000) b"
        await pilot.press("ctrl+r")
        assert text_of(console, "#sql-status").startswith("running… (ctrl+x cancels)")
        await pilot.press("ctrl+x")
        await settle(pilot, lambda: "cancelled" in text_of(console, "#sql-status"), what="the cancel")
        assert db_query(app, "SELECT count(*) FROM runs")[0][0] == 1
        assert errors(app) == []


async def test_sql_console_saves_queries(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        editor = app.query_one("#sql-editor", TextArea)
        editor.text = "SELECT count(*) AS n FROM runs"
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = json.loads((project.traces / "queries.json").read_text())
        assert saved == [{"name": "SELECT count(*) AS n FROM runs", "sql": "SELECT count(*) AS n FROM runs"}]
        listed = options(app.query_one("#sql-saved", OptionList))
        assert listed[0] == "SELECT count(*) AS n FROM runs"
        # Picking a saved query puts it back in the editor.
        editor.text = ""
        box = app.query_one("#sql-saved", OptionList)
        box.focus()
        box.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert editor.text == "SELECT count(*) AS n FROM runs"


async def test_sql_console_exports_csv_from_the_results(project: Project) -> None:
    run = project.run("chain")
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        await sql(pilot, "SELECT run_id, status FROM runs")
        await pilot.press("escape")  # leave the editor
        assert app.focused is not app.query_one("#sql-editor")
        await pilot.press("ctrl+e")
        exports = project.traces / "exports"
        await settle(pilot, lambda: exports.is_dir() and list(exports.glob("*.csv")), what="the CSV export")
        (csv,) = exports.glob("*.csv")
        assert csv.read_text().splitlines() == ["run_id,status", f"{run.run_id},completed"]
        assert any("exported to" in n for n in notes(app))


async def test_sql_console_exports_while_editing(project: Project) -> None:
    project.run("chain")
    async with opened(project) as (app, pilot):
        await pilot.press("5")
        await sql(pilot, "SELECT run_id, status FROM runs")
        assert app.focused is app.query_one("#sql-editor")
        exports = project.traces / "exports"
        await pilot.press("ctrl+e")
        await settle(pilot, lambda: exports.is_dir() and list(exports.glob("*.csv")), what="the CSV export")
        await pilot.press("ctrl+o")
        await settle(pilot, lambda: list(exports.glob("*.parquet")), what="the Parquet export")
        (parquet,) = exports.glob("*.parquet")
        assert parquet.read_bytes()[:4] == b"PAR1"
        await pilot.press("ctrl+n")  # a new query: the editor empties and keeps the focus
        assert app.query_one("#sql-editor", TextArea).text == ""
        assert app.focused is app.query_one("#sql-editor")


# ---------------------------------------------------------------------- 12. hot reload


async def test_reload_with_a_syntax_error_keeps_the_last_good_graph(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        path = "graphs/chain.py"
        Path(path).write_text(Path(path).read_text() + "\ndef oops(:\n")
        app.post_message(GraphReloaded(app.registry.reload_file(path)))
        await settle(pilot)
        assert app.registry.get("chain") is not None  # the last good version stays
        drawing = plain(app.query_one("#graph-view", GraphView).content)
        assert "reload failed, showing the last good version" in drawing and "syntax error" in drawing
        assert "│ a" in drawing
        assert any(o.startswith("✗ graphs/chain.py") for o in options(app.query_one("#graphs", GraphList)))
        assert any(e.startswith("reload failed:") for e in errors(app))
        # It still runs (with the last good code).
        await run_via_form(pilot, "chain")
        run = await wait_run(pilot, "completed")
        assert final_state(app, run["run_id"])["log"] == ["a", "b", "c", "d"]


async def test_reload_of_a_valid_edit_marks_changed_nodes(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await select_graph(pilot, "chain")
        path = "graphs/chain.py"
        Path(path).write_text(Path(path).read_text().replace('return {"log": ["d"]}', 'return {"log": ["D"]}'))
        app.post_message(GraphReloaded(app.registry.reload_file(path)))
        await settle(pilot)
        drawing = plain(app.query_one("#graph-view", GraphView).content).splitlines()
        assert any("│ d * │" in x for x in drawing)  # * marks a node changed since start-up
        assert all("*" not in x for x in drawing if "│ a" in x or "│ c" in x)
        assert any("*reloaded" in o for o in options(app.query_one("#graphs", GraphList)) if o.startswith("chain"))
        assert "graph reloaded: reloaded graphs/chain.py — chain: d" in notes(app)


class _Watched:
    """A WorkbenchApp that lets the test wait for the GraphReloaded message itself."""

    @staticmethod
    def make(graphs: str, db: str = "traces/workbench.duckdb") -> Any:
        from workbench.tui.app import WorkbenchApp

        class App(WorkbenchApp):
            CSS_PATH = str(Path(inspect.getfile(WorkbenchApp)).with_name("app.tcss"))

            def __init__(self) -> None:
                super().__init__(db, graphs, watch=True)
                self.animation_level = "none"
                self.reloads: asyncio.Queue[Any] = asyncio.Queue()

            def on_graph_reloaded(self, message: GraphReloaded) -> None:
                # Textual also calls the base class's handler (it walks the MRO).
                self.reloads.put_nowait(message.result)

        return App()


async def _watching(app: Any, probe: Path) -> None:
    """Save ``probe`` unchanged until the watcher reports it: from then on it sees every save."""
    for _ in range(40):
        probe.write_text(probe.read_text())
        try:
            await asyncio.wait_for(_next_reload(app, probe.name), timeout=0.5)
            return
        except TimeoutError:
            continue
    raise AssertionError("the file watcher never reported a save")


async def _next_reload(app: Any, file_name: str, holds: Any = lambda result: True) -> Any:
    """The next GraphReloaded result for ``file_name`` that ``holds`` (others are skipped)."""
    while True:
        result = await asyncio.wait_for(app.reloads.get(), timeout=20)
        if result.file.endswith(file_name) and holds(result):
            return result


async def test_file_watcher_reloads_a_saved_graph(project: Project) -> None:
    app = _Watched.make("graphs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.registry.entries and app.workers, what="start-up")
        await select_graph(pilot, "chain")
        await _watching(app, project.graphs / "review.py")
        path = project.graphs / "chain.py"
        path.write_text(path.read_text().replace('return {"log": ["d"]}', 'return {"log": ["D"]}'))
        result = await _next_reload(app, "chain.py")
        assert result.error is None and result.changed == {"chain": {"d"}}
        await settle(pilot)
        assert "│ d * │" in plain(app.query_one("#graph-view", GraphView).content)
        assert "graph reloaded: reloaded graphs/chain.py" in "\n".join(notes(app))
        await run_via_form(pilot, "chain")
        run = await wait_run(pilot, "completed")
        assert final_state(app, run["run_id"])["log"] == ["a", "b", "c", "D"]  # the saved code runs

        path.write_text("def broken(:\n")
        result = await _next_reload(app, "chain.py", lambda r: r.error)
        assert result.error and "syntax error" in result.error
        await settle(pilot)
        assert "reload failed" in plain(app.query_one("#graph-view", GraphView).content)
        assert app.registry.get("chain") is not None


async def test_file_watcher_with_an_absolute_graphs_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "proj", ["chain", "broken"])
    monkeypatch.chdir(tmp_path)  # the project is not the working directory: `workbench ui --graphs /abs/graphs`
    app = _Watched.make(str(project.graphs), str(project.db_file))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.registry.entries and app.workers, what="start-up")
        assert any("broken.py" in o for o in options(app.query_one("#graphs", GraphList)))
        await _watching(app, project.graphs / "chain.py")
        broken = project.graphs / "broken.py"
        broken.write_text((project.graphs / "chain.py").read_text().replace('Graph("chain"', 'Graph("fixed"'))
        await _next_reload(app, "broken.py", lambda r: not r.error)
        await settle(pilot)
        assert "fixed" in app.registry.names()
        assert not any(o.startswith("✗") for o in options(app.query_one("#graphs", GraphList)))


async def test_reload_during_a_run_does_not_touch_the_running_step(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await run_via_form(pilot, "gate")
        gate = module_globals(app, "gate", "hold")
        try:
            await poll(pilot, lambda: gate["ENTERED"].is_set(), what="the gate node to start")
            path = "graphs/gate.py"
            Path(path).write_text(Path(path).read_text().replace('{"log": ["held"]}', '{"log": ["held v2"]}'))
            app.post_message(GraphReloaded(app.registry.reload_file(path)))
            await pilot.pause()
            assert module_globals(app, "gate", "hold") is not gate  # the new code is loaded...
        finally:
            gate["RELEASE"].set()
        run = await wait_run(pilot, "completed")
        assert final_state(app, run["run_id"])["log"] == ["held", "after"]  # ...the step in flight kept its code
        assert errors(app) == []


# ---------------------------------------------------------------------- 13. keyboard first


async def test_every_app_binding_is_in_the_command_palette(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.tui.app import WorkbenchApp

    async with opened(project) as (app, _pilot):
        commands = list(app.get_system_commands(app.screen))
        ran: list[str] = []
        monkeypatch.setattr(app, "run_action", lambda action, *a, **k: ran.append(action))
        monkeypatch.setattr(app, "action_tab", lambda tab: ran.append(f"tab('{tab}')"))
        for cmd in commands:
            if cmd.title.startswith("Show ") or cmd.title in {b.description for b in bindings(WorkbenchApp)}:
                result = cmd.callback()
                if inspect.isawaitable(result):  # Textual's own Quit command
                    result.close()  # type: ignore[attr-defined]
        for binding in bindings(WorkbenchApp):
            assert binding.action in ran, f"{binding.key} ({binding.action}) is not in the command palette"


async def test_every_widget_binding_is_in_the_command_palette(project: Project) -> None:
    async with opened(project) as (app, _pilot):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for widget in (GraphView, Timeline, SqlConsole, RunsTable):
            for binding in bindings(widget):
                if binding.show and binding.description:
                    assert binding.description in titles, f"{widget.__name__}: {binding.key} {binding.description}"


async def test_command_palette_switches_to_the_sql_console(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"show sql")
        await settle(pilot, lambda: app.screen.query("CommandList") and
                     app.screen.query_one("CommandList").option_count > 0)
        await pilot.press("enter")
        await settle(pilot, lambda: not isinstance(app.screen, CommandPalette))
        assert app.query_one("#tabs").active == "tab-sql"


async def test_question_mark_opens_help(project: Project) -> None:
    async with opened(project) as (app, pilot):
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = plain(app.screen.query_one("#help-body").content)
        assert "workbench — keys" in shown and "ctrl+r" in shown and "| key |" not in shown
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)


# ---------------------------------------------------------------------- errors never crash the app


async def test_locked_database_is_a_notification_not_a_crash(project: Project, short_foreign_wait: float) -> None:
    project.run("chain")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
                               "sys.stdin.read()", str(project.db_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        async with opened(project) as (app, pilot):
            await settle(pilot, lambda: errors(app), what="an error notification")
            assert any(e.startswith("Reading runs:") and "is in use by process" in e for e in errors(app)), errors(app)
            await run_via_form(pilot, "chain")
            await settle(pilot, lambda: any(e.startswith("Run:") for e in errors(app)), what="the run to fail")
            assert app.live is None
            await pilot.press("5")
            console = await sql(pilot, "SELECT 1")
            assert "is in use by process" in text_of(console, "#sql-status")
            assert app.is_running and app.screen is app.screen_stack[0]
            holder.stdin.close()  # type: ignore[union-attr]
            holder.wait(timeout=30)
            # Once the other process lets go, the app carries on.
            await pilot.press("escape", "2")
            await settle(pilot, lambda: len(app.runs) == 1, what="the runs to load")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


async def test_quit_during_a_live_run_asks_for_a_second_press(project: Project) -> None:
    async with opened(project) as (app, pilot):
        gate = await start_gate_run(pilot)
        try:
            await pilot.press("q")
            await pilot.pause()
            assert app.is_running  # the first q only warns, naming the run to resume (it said RUN_ID)
            warning = f"press q again to quit (workbench resume {app.live['run_id']} continues it)"
            assert warning in "\n".join(notes(app))
        finally:
            gate["RELEASE"].set()
        await wait_run(pilot, "completed", app.open_run["run_id"] if app.open_run else None)


async def test_quitting_during_a_live_run_leaves_it_interrupted(project: Project) -> None:
    """``q`` twice while a run is in its node: the app exits, and the run shows as interrupted
    (resumable), not ``running`` for ever with no process recording it."""
    gate: dict[str, Any] = {}
    try:
        async with opened(project) as (app, pilot):
            gate = await start_gate_run(pilot)
            run_id = app.live["run_id"]
            await pilot.press("q", "q")
            await poll(pilot, lambda: not app.is_running, what="the app to quit")
    finally:
        if gate:
            gate["RELEASE"].set()
    with project.store() as store:
        store.sweep()  # what a next process does first: load whatever the app's writer left
        run = store.get_run(run_id)
    assert run["status"] == "running" and str(run["error"]).startswith("interrupted:"), run


async def test_a_run_recorded_by_another_process_shows_up_live(project: Project, tmp_path: Path) -> None:
    """The workbench is open; a CLI process records a run whose middle step waits on a FIFO. The
    run appears in the list, its first step in the timeline while it is still running, then the
    rest and its end once the test opens the gate — all without a key press."""
    import os
    import shutil

    shutil.copy(Path(__file__).resolve().parents[1] / "graphs" / "gated.py", project.graphs / "gated.py")
    fifo = str(tmp_path / "gate")
    os.mkfifo(fifo)
    exe = Path(sys.executable).parent / "workbench"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_TEST_GATE=fifo, LITELLM_LOCAL_MODEL_COST_MAP="True")
    async with opened(project) as (app, pilot):
        proc = subprocess.Popen([*cli, "run", "gated", "--input", '{"tag": "other"}', "--json"],
                                cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await poll(pilot, lambda: any(r["graph"] == "gated" for r in app.runs), rounds=3000,
                       what="the other process's run in the runs list")
            run_id = next(r["run_id"] for r in app.runs if r["graph"] == "gated")
            app.post_message(RunChosen(run_id))
            timeline = app.query_one("#timeline", Timeline)
            await poll(pilot, lambda: app.open_run and app.open_run["run_id"] == run_id
                       and [r.nodes for r in timeline.rows][:1] == [["first"]], rounds=3000,
                       what="the first step while the run is still going")
            assert app.open_run["status"] == "running"
            await asyncio.to_thread(_release, fifo)
            await poll(pilot, lambda: app.open_run["status"] == "completed" and len(timeline.rows) == 3,
                       rounds=3000, what="the rest of the run and its end")
            assert [r.nodes for r in timeline.rows] == [["first"], ["gate"], ["last"]]
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()


def _release(fifo: str) -> None:
    with open(fifo, "w", encoding="utf-8") as fh:
        fh.write("go\n")


# ---------------------------------------------------------------------- conversations


async def test_continue_a_waiting_run_with_new_input_from_the_runs_tab(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """t on a run in the runs tab asks for the new input and runs the conversation's next turn;
    the waiting run it continued is superseded, and the lineage shows the chain."""
    project = make_project(tmp_path / "talk", ["talk"])
    monkeypatch.chdir(project.root)
    first = project.run("talk", {"messages": ["ask me"]})
    assert first.status == "waiting"
    async with opened(project) as (app, pilot):
        await pilot.press("2")
        await settle(pilot, lambda: app.query_one("#runs-table", RunsTable).selected_run_id == first.run_id)
        await pilot.press("t")
        await settle(pilot, lambda: isinstance(app.screen, RunInputScreen), what="the input form")
        assert f"Continue run {first.run_id} with new input" in plain(app.screen.query_one("Label").content)
        app.screen.query_one("#field-messages", Input).value = '"never mind"'
        await pilot.press("ctrl+r")
        run = await wait_run(pilot, "completed")
        assert run["run_id"] != first.run_id
        assert final_state(app, run["run_id"])["messages"] == ["ask me", "echo ask me", "never mind",
                                                               "echo never mind"]
        assert f"next turn of {first.run_id} (from step 2)" in text_of(app, "#timeline-head")
        assert run_row(app, first.run_id)["status"] == "superseded"
        await pilot.press("2")
        await settle(pilot, lambda: any(r["run_id"] == run["run_id"] for r in app.runs)
                     and run_row(app, first.run_id)["status"] == "superseded")
        tree = app.query_one("#lineage", LineageTree)
        [root] = tree.root.children
        assert root.data == first.run_id and "superseded" in str(root.label)
        [turn] = root.children
        assert turn.data == run["run_id"] and "next turn from step 2" in str(turn.label)
        # A superseded run cannot be continued again: the app says so, nothing starts.
        table = app.query_one("#runs-table", RunsTable)
        table.move_cursor(row=table.get_row_index(first.run_id))
        await pilot.press("t")
        await pilot.pause()
        assert not isinstance(app.screen, RunInputScreen)
        assert any("already continued" in n for n in notes(app))

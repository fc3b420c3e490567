"""What the workbench leaves until after its first frame (docs/performance.md, "The workbench
TUI"): the store's open, the SQL tab, SQL highlighting; and the help text, rendered
once per width."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.widgets import TabbedContent, TextArea

from workbench.errors import StoreError
from workbench.tui.screens.help import HELP, RenderedOnce, render_help

from .conftest import Project, busy, plain, settle

pytestmark = pytest.mark.anyio

SIZE = (150, 45)


async def test_a_store_that_cannot_be_opened_closes_the_app_with_its_error(project: Project) -> None:
    from workbench.tui.app import WorkbenchApp

    (project.traces / "bad.duckdb").write_bytes(b"not a database " * 100)
    app = WorkbenchApp(os.path.join("traces", "bad.duckdb"), "graphs", watch=False, exit_on_store_error=True)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(400):  # it closes itself; workers end with it
            if not app.is_running:
                break
            await pilot.pause(0.01)
    assert not app.is_running
    assert isinstance(app.store_error, StoreError) and "corrupt" in str(app.store_error)
    assert app.return_code == 1


async def test_the_runs_list_fills_in_and_the_sql_tab_mounts_after_the_first_frame(project: Project) -> None:
    project.run("chain")
    app = project.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: not busy(app) and app.registry.entries and app.query("#runs-table")
                     and app.query("#sql-editor"), what="start-up")
        assert [r["graph"] for r in app.runs] == ["chain"]
        assert app.query_one("#runs-table").row_count == 1


async def test_sql_highlighting_comes_on_when_the_tab_is_shown_and_keeps_the_cursor(project: Project) -> None:
    app = project.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: not busy(app) and app.query("#sql-editor"), what="start-up")
        editor = app.query_one("#sql-editor", TextArea)
        assert editor.language is None  # not prepared before the first frame
        editor.move_cursor((1, 4))
        await pilot.press("5")
        await settle(pilot)
        assert editor.language == "sql"
        assert editor.cursor_location == (1, 4)
        await pilot.press("x")
        assert editor.document.get_line(1)[4] == "x"


async def test_idle_work_is_timed_after_start_up_and_highlights_sql_and_imports_the_model_library(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # (conftest keeps the timer from firing in the other tests: here it is checked, then fired.)
    import workbench.tui.app as app_module

    imports: list[bool] = []
    monkeypatch.setattr("workbench.tui.background.prewarm_llm", lambda: imports.append(True))
    app = project.app()
    timers: list[tuple[float, Any]] = []
    set_timer = app.set_timer
    monkeypatch.setattr(app, "set_timer", lambda delay, callback=None, **kw: (
        timers.append((delay, callback)), set_timer(delay, callback, **kw))[1])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: not busy(app) and app.query("#sql-editor"), what="start-up")
        idle = [callback for delay, callback in timers if delay == app_module.IDLE_WORK_AFTER_S]
        assert idle == [app._idle_work] and imports == []
        editor = app.query_one("#sql-editor", TextArea)
        assert editor.language is None
        idle[0]()
        await settle(pilot)
        assert editor.language == "sql" and imports == [True]
        assert app.query_one("#tabs", TabbedContent).active == "tab-graph"  # no tab was shown for it


class _Counting:
    """A renderable that counts how often it is rendered."""

    def __init__(self) -> None:
        self.renders = 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.renders += 1
        yield Text("one line\nand another")


def test_help_is_rendered_once_per_width_and_shows_the_same() -> None:
    counting = _Counting()
    once = RenderedOnce(counting)
    assert plain(once, 40) == plain(once, 40) == plain(counting, 40)
    assert counting.renders == 2  # once through RenderedOnce at width 40, once directly
    plain(once, 60)
    assert counting.renders == 3
    assert plain(RenderedOnce(render_help(HELP)), 110) == plain(render_help(HELP), 110)


def test_help_lines_are_cut_or_filled_to_a_height_as_rich_does() -> None:
    console = Console(width=30, file=io.StringIO())
    once, text = RenderedOnce(Text("a\nb\nc")), Text("a\nb\nc")
    for height in (2, 3, 5):
        options = console.options.update(height=height)
        assert console.render_lines(once, options) == console.render_lines(text, options)


def test_the_workbench_hears_terminal_resizes_even_if_its_parent_blocked_them() -> None:
    """run_tui unblocks SIGWINCH in its thread (a blocked mask is inherited: perf record, or a
    tmux server started under it, blocks it); checked on a thread of its own, whose mask this
    test may change. The tmux test proves the effect in a real terminal."""
    import signal
    import threading

    from workbench.tui.lifecycle import hear_terminal_resizes

    seen: dict[str, bool] = {}

    def thread() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})
        seen["blocked before"] = signal.SIGWINCH in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        hear_terminal_resizes()
        seen["blocked after"] = signal.SIGWINCH in signal.pthread_sigmask(signal.SIG_BLOCK, set())

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert seen == {"blocked before": True, "blocked after": False}


def test_quitting_tells_the_terminal_input_thread_to_stop_without_waiting_for_it() -> None:
    import threading

    from textual.drivers.headless_driver import HeadlessDriver
    from textual.drivers.linux_driver import LinuxDriver

    from workbench.tui.lifecycle import quick_exit_driver

    assert quick_exit_driver(HeadlessDriver) is HeadlessDriver  # (tests: nothing changes)
    cls = quick_exit_driver(LinuxDriver)
    driver = cls.__new__(cls)  # no terminal here: only what disable_input uses
    driver.exit_event = threading.Event()
    release = threading.Event()

    def input_thread() -> None:  # ends once told to stop, but not before the test lets it
        driver.exit_event.wait()
        release.wait()

    thread = threading.Thread(target=input_thread, daemon=True)
    driver._key_thread = thread
    thread.start()
    driver.disable_input()  # would never return if it joined the thread
    assert driver.exit_event.is_set() and driver._key_thread is thread
    release.set()
    thread.join(timeout=10)
    assert not thread.is_alive()

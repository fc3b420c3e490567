"""Fixtures and helpers for the TUI tests: a throwaway project, runs recorded through the library
before the app starts, and bounded waits on the app's workers (never a bare sleep)."""

from __future__ import annotations

import gc
import io
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from collector import freeze_what_is_loaded
from rich.console import Console
from textual.lazy import Lazy
from textual.pilot import Pilot
from textual.worker import WorkerState

from workbench.graph import Graph
from workbench.loader import load_module_graphs
from workbench.runtime import Runner, RunResult
from workbench.store import TraceStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_GRAPHS = FIXTURES / "graphs"
DB = os.path.join("traces", "workbench.duckdb")  # relative: the app runs with the project as cwd


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


FULL_COLLECTION_EVERY = 50
"""Young collections between full ones (Python's default: 10)."""
YOUNG_COLLECTION_AFTER = 1_000_000
"""New container objects before a young collection while a TUI test runs (Python's default: 700)."""


@pytest.fixture(autouse=True)
def _keep_the_collector_off_shared_objects() -> Iterator[None]:
    """Spare the garbage collector the objects every test shares (Textual, DuckDB, litellm...),
    and collect what a test made once, when it ends.

    A full collection passes over every object in the process: with those libraries loaded, a
    third of a TUI test's CPU went there (``freeze_what_is_loaded``).

    While the test runs, the young generation is collected only after a million new objects
    (an app's widgets form reference cycles: at Python's default, every few hundred objects a
    collection passed over the app again, and every tenth of those moved survivors on to be passed
    over once more by a full collection). When the test ends, one young collection frees the app:
    everything the test made is still young, so it passes over that and nothing else. What the
    test makes is collected as before, only later: no test here depends on when garbage is
    collected.
    """
    freeze_what_is_loaded()
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, thresholds[1], FULL_COLLECTION_EVERY)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect(0)


FRAMES_PER_SECOND = 15
"""How often a screen may lay itself out and repaint while a TUI test runs (Textual's default: 60)."""


@pytest.fixture(autouse=True)
def _fewer_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let each screen lay out and paint at most 15 times a second, not 60.

    A screen lays itself out and repaints on its own timer whenever a widget asked for it; in a
    burst of work (start-up, a run's events, a tab's contents arriving) that was up to 60 full
    layouts and paints a second, each of the whole screen: most of a TUI test's CPU went to
    frames nobody looks at. At 15 the same requests are gathered into fewer frames. What the
    tests read is unchanged: ``pilot.pause()`` (and so every wait here) lays out and paints what
    is pending before it returns, and snapshots paint the whole screen afresh. The product keeps
    Textual's 60 (set before the app is made: a screen's timer takes the period when it starts).
    """
    monkeypatch.setattr("textual.screen.UPDATE_PERIOD", 1 / FRAMES_PER_SECOND)


IDLE_WORK = "workbench.tui.app.IDLE_WORK_AFTER_S"


@pytest.fixture(autouse=True)
def _no_idle_work_on_a_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the app's idle-time work (SQL highlighting, litellm's import: tui/background.py)
    from starting by itself a few seconds after start-up.

    Whether it ran depended on how long the test took on a loaded machine (half the tests here
    outlast its timer), not on what the test does; it costs CPU and changes what a screen shows
    mid-test. test_startup.py checks that work itself, by calling it.
    """
    monkeypatch.setattr(IDLE_WORK, 10.0**9)


class Project:
    """A project directory (graphs/ + traces/) that is the working directory of the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.graphs = root / "graphs"
        self.traces = root / "traces"
        self.db_file = root / DB

    def app(self, *, watch: bool = False, graphs: str | None = "graphs", db: str | None = DB) -> Any:
        from workbench.tui.app import WorkbenchApp

        app = WorkbenchApp(db, graphs, watch=watch)
        app.animation_level = "none"  # tab underlines would otherwise slow every key press
        return app

    @contextmanager
    def store(self) -> Iterator[TraceStore]:
        """The trace store, for recording runs before the app opens it (close it first!)."""
        st = TraceStore(str(self.db_file))
        try:
            yield st
        finally:
            st.close()

    def graph(self, name: str) -> Graph:
        for path in sorted(self.graphs.glob("*.py")):
            for g in load_module_graphs(str(path)).values():
                if g.name == name:
                    return g
        raise KeyError(name)

    def run(self, name: str, input: dict[str, Any] | None = None, **options: Any) -> RunResult:
        """Record a run through the library (as the CLI or a production process would)."""
        def job() -> RunResult:
            with self.store() as st:
                return Runner(self.graph(name), st).run(input or {}, **options)

        return _in_thread(job)

    def fork(self, name: str, run_id: str, at_step: int, **options: Any) -> RunResult:
        def job() -> RunResult:
            with self.store() as st:
                return Runner(self.graph(name), st).fork(run_id, at_step, **options)

        return _in_thread(job)


def _in_thread(job: Callable[[], Any]) -> Any:
    """Run synchronous library code from an async test (the runner refuses a running loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(job).result()


def make_project(root: Path, graphs: list[str]) -> Project:
    """``graphs``: fixture graph files by stem, or ``demo:NAME`` for a file of the repo's graphs/."""
    (root / "graphs").mkdir(parents=True)
    (root / "traces").mkdir()
    for g in graphs:
        if g.startswith("demo:"):
            shutil.copy(REPO / "graphs" / f"{g[5:]}.py", root / "graphs" / f"{g[5:]}.py")
        elif g == "broken":
            shutil.copy(FIXTURES / "broken_graph.py.txt", root / "graphs" / "broken.py")
        else:
            shutil.copy(FIXTURE_GRAPHS / f"{g}.py", root / "graphs" / f"{g}.py")
    return Project(root)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The fixture graphs plus the demo's support graph, as the working directory."""
    proj = make_project(tmp_path / "proj", ["chain", "counter", "gate", "review", "demo:support"])
    monkeypatch.chdir(proj.root)
    return proj


SNAPSHOT_RUNS = ["snap-billing", "snap-escalation", "snap-fork"]


@pytest.fixture(scope="session")
def snapshot_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A traces/ directory holding fixtures/snapshot_trace.jsonl imported into a store, made once:
    the snapshot tests copy it (a closed store's files, copied, are the same store), instead of
    each importing the runs again."""
    from workbench.transfer import import_files

    traces = tmp_path_factory.mktemp("snapshot-store") / "traces"
    traces.mkdir()
    with TraceStore(str(traces / os.path.basename(DB))) as store:
        result = import_files(store, [str(FIXTURES / "snapshot_trace.jsonl")])
    assert result["imported"] == SNAPSHOT_RUNS
    return traces


# ---------------------------------------------------------------------- waiting


# The file and store watchers are workers that never end: waits leave them out.
FOREVER = {"watch", "watch-store"}


def busy(app: Any) -> bool:
    """Whether the app has work in progress: a worker (not a watcher), or a tab's contents still
    to be mounted (tabs are mounted just after the first frame: app.py's Lazy)."""
    return (any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers if w.group not in FOREVER)
            or bool(app.screen_stack and app.screen_stack[0].query(Lazy)))


async def drain(app: Any) -> None:
    """Wait for the app's background work (but not the file watcher) to finish."""
    for worker in list(app.workers):
        if worker.group in FOREVER or worker.state != WorkerState.RUNNING:
            continue
        try:
            await worker.wait()
        except Exception:  # failures are the app's to report (as notifications)
            pass


async def settle(pilot: Pilot[Any], until: Callable[[], Any] | None = None, *, rounds: int = 400,
                 what: str = "the app to settle") -> None:
    """Let workers finish and messages drain until ``until()`` holds (or nothing is left to do).

    Waits on the app's own workers and message queue; the bound is a number of rounds, not time.
    Do not use while a worker is blocked on something the test itself must release.
    """
    app = pilot.app
    for _ in range(rounds):
        await drain(app)
        await pilot.pause()
        if until is not None:
            if until():
                return
        elif not busy(app):
            return
    raise AssertionError(f"gave up waiting for {what}: {describe(app)}")


def describe(app: Any) -> str:
    """The app's state, for a failure message."""
    run = app.open_run or {}
    return (f"screen={type(app.screen).__name__} live={app.live} open_run={run.get('run_id')}:{run.get('status')} "
            f"workers={[(w.name, w.state.name) for w in app.workers]} notes={notes(app)[-3:]}")


async def poll(pilot: Pilot[Any], until: Callable[[], Any], *, rounds: int = 500, what: str = "it") -> None:
    """Observe the app (short pauses, bounded count) while a worker is busy on purpose."""
    for _ in range(rounds):
        if until():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"gave up waiting for {what}: {describe(pilot.app)}")


@asynccontextmanager
async def opened(project: Any, size: tuple[int, int] = (150, 45), **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The project's app running headless at ``size``, started up (its graphs listed, its
    start-up work done): ``async with opened(project) as (app, pilot)``."""
    app = project.app(**kwargs)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, lambda: not busy(app) and app.registry.entries, what="start-up")
        yield app, pilot


async def choose_run(pilot: Pilot[Any], run_id: str) -> None:
    """Open ``run_id`` as choosing it anywhere in the app does, and wait until it is shown."""
    from workbench.tui.messages import RunChosen

    app = pilot.app
    app.post_message(RunChosen(run_id))
    await settle(pilot, lambda: app.open_run and app.open_run["run_id"] == run_id and not busy(app),
                 what=f"run {run_id} open")


# ---------------------------------------------------------------------- reading the screen


def plain(renderable: Any, width: int = 160) -> str:
    """A Rich renderable as plain text."""
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def text_of(app: Any, selector: str, width: int = 160) -> str:
    """What a Static shows."""
    return plain(app.query_one(selector).content, width)


def log_lines(app: Any) -> list[str]:
    return [strip.text for strip in app.query_one("#live-log").lines]


def notes(app: Any) -> list[str]:
    """The notifications raised so far, as "title: message"."""
    return [f"{n.title}: {n.message}" for n in app._notifications]


def errors(app: Any) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications if n.severity == "error"]


def rows(table: Any) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def options(option_list: Any) -> list[str]:
    return [str(option_list.get_option_at_index(i).prompt) for i in range(option_list.option_count)]


def db_query(app: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Read the app's store through its own lease (the file allows one process)."""
    with app.shared.lease() as st:
        return st.query(sql, params)


def run_row(app: Any, run_id: str) -> dict[str, Any]:
    with app.shared.lease() as st:
        return st.get_run(run_id)


def final_state(app: Any, run_id: str) -> dict[str, Any]:
    with app.shared.lease() as st:
        return st.state_at(run_id, st.last_committed_step(run_id))

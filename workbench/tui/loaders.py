"""The workbench's two readers of the open run: its timeline and the highlighted step.

Both run in one thread worker at a time and coalesce requests: while a read is in flight, new
requests only mark it to go again for the newest one, so holding `j` over a 10,000-step run or a
run committing a step every millisecond never piles up reads (or threads) behind each other.
Each request is numbered; a result whose number is not the newest is dropped by the app, so the
inspector never shows a run or step the user has already left.

The timeline is read through a :class:`~workbench.timeline_feed.TimelineFeed`: the whole of it
when a run is opened, then only the steps that may have changed — constant work per new step.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from workbench.errors import RunNotFoundError, WorkbenchError
from workbench.timeline_feed import TimelineFeed
from workbench.tui.messages import RunGone, StepLoaded, TimelineLoaded, WorkFailed

if TYPE_CHECKING:
    from workbench.history import RunHistory, StepView
    from workbench.tui.app import WorkbenchApp


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"


class TimelineLoader:
    """Reads the open run's timeline (see the module docstring)."""

    MIN_INTERVAL_S = 0.1
    """The least time between two refreshes of a live run (a run committing faster is shown in
    batches of steps: the run is never slowed down by being watched)."""

    def __init__(self, app: WorkbenchApp) -> None:
        self.app = app
        self.seq = 0
        """The number of the newest open: results of an older one are stale."""
        self.stats: list[tuple[int, float, int]] = []
        """(rows shown, seconds, rows read again) of each refresh: what the benchmark reports."""
        self._lock = threading.Lock()
        self._feed: TimelineFeed | None = None
        self._running = False
        self._again = False

    @property
    def run_id(self) -> str | None:
        """The run being followed."""
        return self._feed.run_id if self._feed else None

    def open(self, run_id: str) -> None:
        """Read a run's timeline from the start (a newly opened run)."""
        with self._lock:
            self.seq += 1
            self._feed = TimelineFeed(run_id)
        self._request()

    def close(self) -> None:
        """Stop following the run shown (it was deleted): a read in flight is dropped."""
        with self._lock:
            self.seq += 1
            self._feed = None

    def refresh(self, run_id: str) -> None:
        """Read what is new in the run shown (or open it, when another run is shown)."""
        if self.run_id != run_id:
            self.open(run_id)
        else:
            self._request()

    def _request(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        self.app.run_worker(self._work, name="timeline", group="timeline", thread=True)

    def _work(self) -> None:
        last = 0.0
        while True:
            with self._lock:
                feed, seq, self._again = self._feed, self.seq, False
            if last:  # a run committing steps quickly: read them in batches
                time.sleep(max(0.0, last + self.MIN_INTERVAL_S - time.monotonic()))
            last = time.monotonic()
            if feed is not None:
                self._read(feed, seq)
            with self._lock:
                if not self._again:
                    self._running = False
                    return

    def _read(self, feed: TimelineFeed, seq: int) -> None:
        try:
            with self.app.shared.lease() as store:
                started = time.perf_counter()
                update = feed.refresh(store)
                self.stats.append((update.total, time.perf_counter() - started, len(update.rows)))
        except RunNotFoundError:  # another process deleted it (workbench rm): the app clears the view
            self.app.post_message(RunGone(feed.run_id))
            return
        except Exception as exc:  # shown, never fatal; the next refresh starts from the start
            feed.__init__(feed.run_id)  # type: ignore[misc]
            self.app.post_message(WorkFailed("Reading the run", _failure(exc)))
            return
        self.app.post_message(TimelineLoaded(update.run, update.rows, seq, keep=update.keep,
                                             total=update.total, since=update.since))


class StepLoader:
    """Reads the highlighted step for the inspector (see the module docstring)."""

    def __init__(self, app: WorkbenchApp) -> None:
        self.app = app
        self.gen = 0
        """The number of the newest request: results of older ones are stale."""
        self.histories: dict[str, RunHistory] = {}
        self.views: dict[tuple[str, int], StepView] = {}
        self._lock = threading.Lock()
        self._wanted: tuple[int, str, int, list[str]] | None = None
        self._running = False

    def request(self, run_id: str, step: int, schema_keys: list[str]) -> StepView | None:
        """Ask for a step: its view at once when it was read before, else None and a
        StepLoaded message later (unless another request comes first)."""
        with self._lock:
            self.gen += 1
            view = self.views.get((run_id, step))
            if view is not None:
                self._wanted = None
                return view
            self._wanted = (self.gen, run_id, step, schema_keys)
            if self._running:
                return None
            self._running = True
        self.app.run_worker(self._work, name="step", group="step", thread=True)
        return None

    def cancel(self) -> None:
        """Drop whatever was asked for (another run is being opened)."""
        with self._lock:
            self.gen += 1
            self._wanted = None

    def forget(self, run_id: str, from_step: int = 0) -> None:
        """Drop what was read of a run's steps from ``from_step`` on (they may have changed), and
        of its subgraphs' runs (``RUN/2.0.0``: a resumed subgraph step commits later too; its
        inspector kept saying "did not commit")."""
        inner = f"{run_id}/"
        for rid in [r for r in list(self.histories) if r == run_id or r.startswith(inner)]:
            self.histories.pop(rid, None)
        for key in [k for k in list(self.views) if (k[0] == run_id and k[1] >= from_step) or k[0].startswith(inner)]:
            self.views.pop(key, None)

    def _work(self) -> None:
        from workbench.history import RunHistory

        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    self._running = False
                    return
            gen, run_id, step, schema_keys = wanted
            try:
                with self.app.shared.lease() as store, store.reading():
                    history = self.histories.get(run_id)
                    if history is None:
                        history = self.histories[run_id] = RunHistory(store, run_id)
                    history.store = store
                    view = history.step(step)
                self.views[(run_id, step)] = view
            except Exception as exc:
                self.app.post_message(WorkFailed("Reading the step", _failure(exc)))
                continue
            self.app.post_message(StepLoaded(run_id, view, schema_keys, gen))

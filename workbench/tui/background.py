"""The app's start-up and background work, kept out of app.py: what waits until the first frame
is up (lifecycle.py says why), and the watchers of graph files and of the store.

:class:`Background` is mixed into :class:`~workbench.tui.app.WorkbenchApp`: it opens the store
just after the first frame (a store that cannot be opened closes the app, for ``workbench ui``
to report), does the idle work (SQL highlighting, litellm's import) a few seconds later, reloads
graph files when they are saved, notices other processes' commits, and closes the store on the
way out without waiting for its writer.
"""

from __future__ import annotations

import os
from typing import Any

from textual import work
from textual.app import App
from textual.driver import Driver
from textual.lazy import Lazy

from workbench.store.shared import SharedStore
from workbench.tui.lifecycle import QUIT_FLUSH_S, prewarm_llm, quick_exit_driver
from workbench.tui.messages import GraphReloaded, StoreChanged
from workbench.tui.widgets.sql_console import SqlConsole


class Background(App[None]):
    """Start-up and background workers (a base of the workbench app)."""

    # Provided by WorkbenchApp.
    shared: SharedStore
    registry: Any
    store_error: Exception | None

    def _idle_work(self) -> None:
        """SQL highlighting (a tenth of a second or more), and litellm's import (seconds, on a
        daemon thread: quitting never waits for it) so the first model call does not pay it."""
        self._highlight_sql()
        prewarm_llm()

    def _highlight_sql(self) -> None:
        for console in self.query("#sql").results(SqlConsole):  # (none yet while mounting lazily)
            console.highlight()

    @work(thread=True, exclusive=True, group="open")
    def open_store(self) -> None:
        """Open the store (the loads wait for it); one that cannot be opened closes the app."""
        try:
            with self.shared.lease():
                pass
        except Exception as exc:
            self.store_error = exc
            self.call_from_thread(self._close_for_store_error)

    def _close_for_store_error(self) -> None:
        if self.query(Lazy):  # a tab still mounting: Textual fails if the app closes under it
            self.set_timer(0.05, self._close_for_store_error)
            return
        self.exit(return_code=1)

    @work(exclusive=True, group="watch")
    async def watch_graphs(self) -> None:
        """Reload a graph file when it is saved (the module cache is dropped first)."""
        import asyncio

        import watchfiles

        directory = self.registry.directory
        if not os.path.isdir(directory):
            return
        async for changes in watchfiles.awatch(directory, debounce=200, step=50):
            paths = sorted({p for _, p in changes if p.endswith(".py") and not os.path.basename(p).startswith("_")})
            for path in paths:
                result = await asyncio.to_thread(self.registry.reload_file, path)
                self.post_message(GraphReloaded(result))

    @work(thread=True, exclusive=True, group="watch-store")
    def watch_store(self) -> None:
        """Notice commits by any process (a stat and an 8-byte read per poll for a local store)
        and load what a dead process left behind, so the screen shows other processes' runs live."""
        import time

        from textual.worker import get_current_worker

        worker = get_current_worker()
        last: Any = None
        sweep_at = 0.0
        while not worker.is_cancelled:
            try:
                with self.shared.lease() as store:
                    if time.monotonic() >= sweep_at:
                        store.sweep()  # a killed recorder's runs become "interrupted"
                        sweep_at = time.monotonic() + 2.0
                    token = store.change_token()
                if last is not None and token != last:
                    self.post_message(StoreChanged(token))
                last = token
            except Exception:  # an unreachable store is reported by the loads themselves
                pass
            worker.cancelled_event.wait(self.STORE_POLL_S)  # (quitting cancels it: no wait)

    # How often the watcher looks for other processes' commits (a new step shows within this).
    STORE_POLL_S = 0.3

    def get_driver_class(self) -> type[Driver]:
        return quick_exit_driver(super().get_driver_class())  # (lifecycle.py)

    def on_unmount(self) -> None:
        self.shared.close(timeout=QUIT_FLUSH_S)  # what is left is safe in the journal

"""Starting and quitting the workbench without waiting for what does not need waiting.

Quitting used to leave a blank screen for seconds: asyncio waits, on the way out, for every
thread its executor ran (a litellm import still under way, a read in flight, a run), and closing
the store waited for its writer to load every recorded frame into the database. None of that
needs waiting for: every step is durable in this process's journal before the next one starts
(docs/architecture.md), and a journal this process leaves behind is loaded by the next process
that opens the store — exactly what happens when a recorder is killed.

- :class:`DaemonExecutor` runs the app's thread workers on daemon threads, and its shutdown does
  not wait for them.
- :func:`prewarm_llm` imports the model library on a daemon thread a few seconds after the
  first paint (:data:`IDLE_WORK_AFTER_S`), or as soon as a run's input form opens.
- :data:`QUIT_FLUSH_S` bounds how long closing the store waits for its writer.
- :func:`quick_exit_driver`: restoring the terminal does not wait for Textual's input thread.
- :func:`resume_gc`: the garbage collector, off while ``workbench ui`` starts, comes back on
  after the first frame.
- :func:`hear_terminal_resizes`: a workbench started with the resize signal blocked still
  redraws at the terminal's new size.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.driver import Driver

IDLE_WORK_AFTER_S = 3.0
"""When work no screen needs yet starts (litellm's import, SQL highlighting): not in the first
seconds, when help, a tab or quit is the likely next key and would wait for the CPU it takes."""

QUIT_FLUSH_S = 0.25
"""How long quitting waits for the store's writer (what it has not loaded by then stays in the
journal, safe, and is loaded by the next process to open the store)."""


class DaemonExecutor(ThreadPoolExecutor):
    """One daemon thread per call, and a shutdown that never waits: nothing a worker thread
    does keeps the process alive once the app has quit. (A ThreadPoolExecutor only by type,
    which asyncio insists on: its pool of non-daemon threads, joined at exit, is never used.)"""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new work after shutdown")
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)

        threading.Thread(target=run, name="workbench-worker", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True  # never waits: see the module docstring


def quick_exit_driver(driver_class: type[Driver]) -> type[Driver]:
    """The terminal driver, but quitting does not wait for its input thread: Textual's Linux
    driver joins it, and it takes 0.1–0.2 s to notice (its last read waits a tenth of a
    second), a third of the time quitting takes. The thread is told to stop and does, on its
    own; input is off, the terminal restored, as before. (Textual is pinned: this relies on
    its Linux driver keeping the thread in ``_key_thread``; without it, nothing changes.)"""
    from textual.drivers.linux_driver import LinuxDriver

    if not issubclass(driver_class, LinuxDriver):
        return driver_class

    class QuickExitDriver(driver_class):  # type: ignore[valid-type,misc]
        def disable_input(self) -> None:
            thread = getattr(self, "_key_thread", None)
            self._key_thread = None  # nothing to join
            try:
                super().disable_input()
            finally:
                self._key_thread = thread
            if thread is not None:
                self.exit_event.set()  # (cleared by the above): the thread ends by itself

    return QuickExitDriver


def resume_gc() -> None:
    """If start-up held the garbage collector off (``workbench ui`` does, until the first
    frame: a tenth of its start-up time went to collections passing over new long-lived
    objects), turn it back on, with what start-up made moved out of its way for good."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def hear_terminal_resizes() -> None:
    """Unblock SIGWINCH (the terminal changed size) in the calling thread, the main one.

    A process inherits its parent's blocked signals through fork and exec. Started by a parent
    that blocked SIGWINCH (``perf record`` does, and a tmux server started under it hands the
    mask on to every pane), the workbench never heard that its terminal shrank: Textual installs
    a handler but does not unblock the signal, so the app kept drawing at the old height, and a
    smaller pane scrolled every frame into a garble of half-screens. Threads started later
    inherit the unblocked mask."""
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGWINCH"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGWINCH})


def install_daemon_executor() -> None:
    """Make the running loop's default executor (where thread workers run) a DaemonExecutor."""
    asyncio.get_running_loop().set_default_executor(DaemonExecutor())


_prewarming = False


def prewarm_llm() -> None:
    """Import the model library in the background (it takes seconds), so that the first model
    call of the first run does not wait for it; a daemon thread, so quitting never does either.
    Only the first call starts it; none does with ``WORKBENCH_PREWARM=0`` (as for the CLI)."""
    global _prewarming
    if _prewarming or os.environ.get("WORKBENCH_PREWARM", "1") == "0":
        return
    _prewarming = True

    def load() -> None:
        from workbench.llm.client import litellm_module

        try:
            litellm_module()
        except Exception:  # the first real call reports any problem
            pass

    threading.Thread(target=load, name="workbench-prewarm", daemon=True).start()

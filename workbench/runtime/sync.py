"""The Runner's blocking methods (``run``, ``resume``, ...): a coroutine run on an event loop
of its own, or — from a sync node running on the loop beside its siblings — on a thread of its
own, as it would from a worker thread (runtime/calls.py decides where such a node runs)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from workbench.runtime.calls import inline_body


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Any) -> Any:
    """Run ``coro`` to its end on a new event loop: what the Runner's blocking methods do."""
    if _running_loop():
        if inline_body():  # a sync node running on the loop beside siblings: as in a worker thread
            return _run_in_thread(coro)
        coro.close()
        raise RuntimeError("an event loop is already running here: use 'await runner.arun(...)' instead")
    # Not asyncio.run(): it waits for the default executor's threads, so a sync node abandoned
    # after its timeout would hold up the return until it finished on its own.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            # As asyncio.run does: cancel what is left (litellm starts background tasks).
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _run_in_thread(coro: Any) -> Any:
    """Run ``coro`` to its end on a thread of its own (with this thread's context) and wait."""
    context = contextvars.copy_context()
    out: list[Any] = []

    def work() -> None:
        try:
            out.append((True, context.run(run_sync, coro)))
        except BaseException as exc:  # raised in the calling thread
            out.append((False, exc))

    thread = threading.Thread(target=work, name="workbench-graph")
    thread.start()
    thread.join()
    ok, value = out[0]
    if not ok:
        raise value
    return value

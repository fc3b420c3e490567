"""Running a superstep's tasks side by side, and stopping the rest when one fails for good.

When a task fails with no retry left and no ``on_error`` route, the step — and the run — fails
whatever its siblings do, so waiting for them only delays the failure (and spends money on model
calls whose results are thrown away). Siblings still running are cancelled at once: an ``async``
node stops at its next ``await``; a sync node running in a thread cannot be stopped from outside,
so its result is ignored. A cancelled task is recorded as ``cancelled``, never as completed, and
runs again from its top (its recorded model and tool calls served) when the run is resumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def run_all(jobs: Sequence[Callable[[], Awaitable[T]]], *, fatal: Callable[[int, T], bool],
                  cancelled: Callable[[int], T]) -> list[T]:
    """Run every job concurrently; results in job order.

    As soon as one result is ``fatal(index, result)``, the jobs still running are cancelled and their places
    in the result hold ``cancelled(index)``. An exception a job raises cancels the others and
    is raised; so is a cancellation of this call (the jobs are cancelled with it).
    """
    tasks = [asyncio.ensure_future(job()) for job in jobs]
    index = {t: i for i, t in enumerate(tasks)}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            if any(fatal(index[t], t.result()) for t in done if not t.cancelled()):
                break
    finally:
        still = [t for t in tasks if not t.done()]
        for t in still:
            t.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
    return [cancelled(i) if t.cancelled() else t.result() for i, t in enumerate(tasks)]

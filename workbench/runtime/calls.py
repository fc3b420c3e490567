"""Calling a node's function: sync or async, in a thread when it must be, under its timeout."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workbench.context import Context, reset_current, set_current
from workbench.errors import NodeTimeoutError
from workbench.graph import Node
from workbench.redact import scrub


async def call_node(node: Node, value: Any, ctx: Context, *, parallel: bool,
                    subgraph: Awaitable[Any] | None = None) -> Any:
    """Run ``node`` on ``value`` and return what it returned.

    A sync node runs inline when it is alone in its step, in a worker thread when it runs beside
    others, and in a daemon thread when it has a timeout — a node that never returns is then
    abandoned without keeping the process from exiting.
    """
    if subgraph is not None:
        coro: Any = subgraph
    elif node.is_async:
        assert node.fn is not None
        token = set_current(ctx)
        try:
            coro = node.fn(value, ctx) if node.takes_ctx else node.fn(value)
        finally:
            reset_current(token)
        coro = _with_context(coro, ctx)
    elif node.timeout:
        coro = _in_daemon_thread(_call_sync, node, value, ctx)
    elif parallel:
        coro = _in_pool(_call_sync, node, value, ctx)
    else:
        return _call_sync(node, value, ctx)
    if node.timeout:
        try:
            return await asyncio.wait_for(coro, node.timeout)
        except TimeoutError:
            raise NodeTimeoutError(f"node {node.name!r} timed out after {node.timeout:g}s") from None
    return await coro


def _call_sync(node: Node, value: Any, ctx: Context) -> Any:
    assert node.fn is not None
    token = set_current(ctx)
    try:
        return node.fn(value, ctx) if node.takes_ctx else node.fn(value)
    finally:
        reset_current(token)


async def _with_context(coro: Any, ctx: Context) -> Any:
    token = set_current(ctx)
    try:
        return await coro
    finally:
        reset_current(token)


# Sync nodes running beside others run in a pool of threads kept per calling thread, so that
# run after run (a new event loop each, with its own default executor) does not start its
# threads afresh. Per thread, not per process: a node that runs a graph of its own (a new loop
# in a pool thread) gets a pool of its own, so nested fan-outs never wait for each other's
# threads. A thread's pool ends with it (its idle workers exit when it is collected).
_pools = threading.local()
# Per event loop: results handed back by pool threads, not yet given to their futures. Only the
# first result since the loop last drained the list wakes the loop (one wake-up for a burst of
# finished branches instead of one each).
_done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
_done_lock = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    pool: ThreadPoolExecutor | None = getattr(_pools, "pool", None)
    if pool is None:
        pool = _pools.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="workbench-node")
    return pool


def _in_pool(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``fn`` in the shared pool, in a copy of the caller's context (as ``asyncio.to_thread``
    does); the future gets its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            result, ok = context.run(fn, *args), True
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            result, ok = exc, False
        with _done_lock:
            waiting = _done.setdefault(loop, [])
            waiting.append((future, ok, result))
            first = len(waiting) == 1
        if first and not _call_soon(loop, _drain, loop):
            with _done_lock:  # the loop is closed: nobody will drain its list
                _done.pop(loop, None)

    _thread_pool().submit(work)
    return future


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    with _done_lock:
        finished = _done.pop(loop, [])
    for future, ok, value in finished:
        if future.done():  # cancelled meanwhile (a sibling failed): its result is ignored
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``fn`` in a daemon thread; the future gets its result. (``asyncio.to_thread`` uses the
    default executor, whose threads the interpreter waits for at exit.)"""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            _call_soon(loop, settle, False, exc)
        else:
            _call_soon(loop, settle, True, result)

    threading.Thread(target=work, name="workbench-node", daemon=True).start()
    return future


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the node was abandoned (its timeout, or the run ended)
        return False
    return True


def describe(exc: BaseException) -> str:
    """One line about a node's exception (recorded and shown): known secrets scrubbed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}") if text else type(exc).__name__

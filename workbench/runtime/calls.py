"""Calling a node's function: sync or async, in a thread when it must be, under its timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
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
        coro = asyncio.to_thread(_call_sync, node, value, ctx)
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


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the node was abandoned after its timeout
        pass


def describe(exc: BaseException) -> str:
    """One line about a node's exception (recorded and shown): known secrets scrubbed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}") if text else type(exc).__name__

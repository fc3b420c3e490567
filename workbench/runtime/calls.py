"""Calling a node's function: sync or async, in a thread when it must be, under its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workbench.context import Context, InterruptSignal, ReplayDivergence, reset_current, set_current
from workbench.errors import NodeEscapeError, NodeExitError, NodeTimeoutError
from workbench.failures import type_name
from workbench.graph import Node
from workbench.redact import scrub


async def call_node(node: Node, value: Any, ctx: Context, *, parallel: bool,
                    subgraph: Awaitable[Any] | None = None) -> Any:
    """Run ``node`` on ``value`` and return what it returned.

    A sync node runs inline when it is alone in its step, in a worker thread when it runs beside
    others, and in a daemon thread when it has a timeout — a node that never returns is then
    abandoned without keeping the process from exiting. A sync node running beside others runs
    inline too once it has shown itself cheap (:func:`_learn`): a trip to a worker thread and
    back costs more than such a body does.
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
        coro = _with_context(coro, ctx, node)
    elif node.timeout:
        # Started inside _within, once the deadline's hooks are on the context.
        return await _within(node, lambda: _in_daemon_thread(_call_sync, node, value, ctx), node.timeout, ctx)
    elif parallel and (node.threaded or node.quick_bodies < INLINE_AFTER):
        coro = _in_pool(_call_measured, node, value, ctx)
    elif parallel:
        return _call_inline(node, value, ctx)
    else:
        return _call_sync(node, value, ctx)
    if node.timeout:
        return await _within(node, coro, node.timeout, ctx)
    return await coro


async def _within(node: Node, coro: Any, limit: float, ctx: Context) -> Any:
    """Await ``coro``; an attempt that took longer than ``limit`` fails with NodeTimeoutError —
    also when it kept the deadline from being enforced: an async body that swallowed the
    cancellation and returned, or that blocked the event loop past it (it came back late with
    a result, recorded as completed)."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    left: list[float] = []  # the time left when the deadline was paused

    def pause(deadline: asyncio.Timeout) -> None:
        when = deadline.when()
        if when is not None and not deadline.expired():
            with contextlib.suppress(RuntimeError):  # the block has ended meanwhile (cancelled)
                deadline.reschedule(None)
                left.append(max(0.0, when - loop.time()))

    def resume(deadline: asyncio.Timeout) -> None:
        if left and not deadline.expired():
            with contextlib.suppress(RuntimeError):  # the block has ended meanwhile (cancelled)
                deadline.reschedule(loop.time() + left.pop())

    try:
        async with asyncio.timeout(limit) as deadline:
            # litellm's first import (seconds) is waited out with the deadline paused: it is
            # not the node's time, and recorded durations leave it out too.
            ctx.deadline_hooks = (lambda: loop.call_soon_threadsafe(pause, deadline),
                                  lambda: loop.call_soon_threadsafe(resume, deadline))
            try:
                result = await (coro() if callable(coro) else coro)
            finally:
                ctx.deadline_hooks = None
    except TimeoutError:
        raise NodeTimeoutError(f"node {node.name!r} timed out after {limit:g}s") from None
    took = time.perf_counter() - started - sum(end - start for start, end in ctx.excluded if start >= started)
    if deadline.expired() or took > limit:
        raise NodeTimeoutError(f"node {node.name!r} timed out after {limit:g}s (it returned after {took:.2f}s "
                               "without giving way to its deadline: a blocking call or a swallowed cancellation)")
    return result


def _call_sync(node: Node, value: Any, ctx: Context) -> Any:
    assert node.fn is not None
    token = set_current(ctx)
    try:
        return node.fn(value, ctx) if node.takes_ctx else node.fn(value)
    except Exception:
        raise
    except BaseException as exc:  # nothing cancels a sync body: a CancelledError is its own
        failure = body_failure(node, exc)
        if failure is exc:
            raise
        raise failure from None
    finally:
        reset_current(token)


# What a node's body may raise that is not its failure: a pause for input, a replay that left its
# recording (the runtime's own), Ctrl-C (the user's).
_PASSED_ON = (InterruptSignal, ReplayDivergence, KeyboardInterrupt)


def body_failure(node: Node, exc: BaseException) -> BaseException:
    """What a ``BaseException`` that is not an ``Exception`` out of a node's body becomes: the
    node's failure (``sys.exit()``, anything else of its own), or itself when it is not the
    node's to fail with (:data:`_PASSED_ON`)."""
    if isinstance(exc, SystemExit):
        return node_exit(node, exc)
    if isinstance(exc, _PASSED_ON):
        return exc
    return node_escape(node, exc)


def node_escape(node: Node, exc: BaseException) -> NodeEscapeError:
    """Any other ``BaseException`` from a node's body as the node's failure. Left alone it went
    past the runner's handling of node errors: a raw traceback, the run left interrupted and
    every resume failing the same way."""
    text = describe(exc)
    own = " of its own (the run did not cancel it)" if isinstance(exc, asyncio.CancelledError) else ""
    return NodeEscapeError(f"node {node.name!r} raised {text}{own}: a BaseException, not an Exception; "
                           "raise an Exception to fail the node")


def node_exit(node: Node, exc: SystemExit) -> NodeExitError:
    """``sys.exit()`` in a node's body as the node's failure. Left alone it would end the
    recording process with the run still marked running and its message lost (a library
    caller's process too, from a worker thread or not)."""
    code = exc.code
    return NodeExitError(f"node {node.name!r} called sys.exit({'' if code is None else repr(code)})")


# A sync body beside siblings that took less than this (and called nothing out of process)
# runs on the event loop next time. Far below anything a user would notice the loop held for,
# and above a worker thread's round trip (about 50-100 µs here), which is what it saves.
INLINE_BELOW_S = 0.0005
# ... and after this many such bodies in a row: a body that is now and then slow (a cache that
# misses) stays in the pool instead of going back and forth.
INLINE_AFTER = 8
_inline = threading.local()  # depth of inline bodies running on this thread


def never_waits(node: Node) -> bool:
    """Whether a task of ``node`` beside siblings runs start to end without waiting: its sync
    body runs on the loop (:func:`_learn`), and it has no retry policy whose backoff it would
    wait out."""
    return (node.quick_bodies >= INLINE_AFTER and not node.threaded and not node.is_async and node.subgraph is None
            and not node.timeout and not node.retries)


def _call_measured(node: Node, value: Any, ctx: Context) -> Any:
    """:func:`_call_sync`, learning from how long it took whether the node may run inline."""
    calls, t0 = ctx.calls_made, time.perf_counter()
    try:
        return _call_sync(node, value, ctx)
    finally:
        _learn(node, time.perf_counter() - t0, ctx.calls_made - calls)


def _call_inline(node: Node, value: Any, ctx: Context) -> Any:
    _inline.depth = getattr(_inline, "depth", 0) + 1
    try:
        return _call_measured(node, value, ctx)
    finally:
        _inline.depth -= 1


def inline_body() -> bool:
    """True while a sync node's body runs on the event loop's thread (beside siblings, inline):
    a graph it runs with ``Runner.run`` then needs a thread of its own, as in a worker thread."""
    return getattr(_inline, "depth", 0) > 0


def _learn(node: Node, seconds: float, calls: int) -> None:
    """Count ``node``'s quick bodies in a row: they decide where its next parallel body runs.

    Quick means under :data:`INLINE_BELOW_S`, no model or tool call and no graph of its own:
    those wait on something outside the process, so they keep their worker thread, where
    siblings overlap. One slow body sends the node back to the pool at once (the slow body
    itself, run on the loop, held the loop that long: at most once per :data:`INLINE_AFTER`
    quick ones); it is measured there too, and comes back after enough quick ones.
    """
    if seconds < INLINE_BELOW_S and calls == 0 and not node.body_subgraphs:
        node.quick_bodies += 1
    else:
        node.quick_bodies = 0


async def _with_context(coro: Any, ctx: Context, node: Node) -> Any:
    token = set_current(ctx)
    try:
        return await coro
    except Exception:
        raise
    except BaseException as exc:
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and (task is None or task.cancelling()):
            raise  # the run cancelled this task (a sibling failed, a timeout, a stop)
        failure = body_failure(node, exc)
        if failure is exc:
            raise
        raise failure from None
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


MESSAGE_CHARS = 2000
"""How much of an exception's message a node's recorded error keeps (its traceback keeps more)."""


def describe(exc: BaseException) -> str:
    """One line about a node's exception (recorded and shown): known secrets scrubbed. An
    exception whose ``str()`` itself fails is named by its type (it crashed the runner)."""
    try:
        text = str(exc).strip()
    except Exception:
        text = "<str() of the exception failed>"
    text = text.splitlines()[0] if text else ""
    if len(text) > MESSAGE_CHARS:  # a message of megabytes would not fit the record (nor a screen)
        text = f"{text[:MESSAGE_CHARS]}… ({len(text) - MESSAGE_CHARS:,} more characters)"
    name = type_name(exc)
    return scrub(f"{name}: {text}") if text else name

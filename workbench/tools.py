"""Tools: functions whose calls are recorded like model calls, and served on replay.

Mark a function with :func:`tool`; called inside a node, each call records its arguments,
result, error and latency in the ``tool_calls`` view, and a replay (or a node re-run after a
pause or crash) gets the recorded result instead of repeating the side effect. Called outside a
run, a tool is a plain function call.

    @tool
    def fetch_account(customer_id: str) -> dict:
        return crm.get(customer_id)

Arguments and results must be JSON-serializable (see workbench.codec); a result is restored to
the function's return annotation when it is a dataclass, Pydantic model, datetime or enum.
Arguments that look like credentials (by name, at any depth: ``api_key``, ``token``, ``password``…,
and URL credentials) are recorded as ``"[redacted]"``, and scrubbed from recorded errors.

A result that cannot be stored: the tool ran (its side effect happened), so the call is recorded
as made, with the reason in place of the result (``{"$not_stored": "..."}`` in the ``result``
column, ``{"result_stored": false}`` in ``params``), and the node gets a
:class:`~workbench.errors.SerializationError` naming the tool and the path of the bad value.
Wherever the recorded call is served — a replay, or the node run again after an interrupt or a
crash — it raises the same error instead of calling the tool again, so live, resumed and replayed
runs agree and the side effect does not happen twice. (Resuming a *failed* run starts the failed
node's next attempt, which calls its tools anew, as for any failure. Arguments that cannot be
stored raise before the tool is called.)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import time
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from workbench import codec
from workbench.errors import SerializationError
from workbench.failures import identity, type_name
from workbench.redact import maybe_secret, redact, remember_secrets_in, scrub
from workbench.store.store import now_us

if TYPE_CHECKING:
    from workbench.context import Context

F = TypeVar("F", bound=Callable[..., Any])

# How a call whose result could not be stored is recorded: ``params`` (unused by tool calls)
# marks it, ``response`` holds the reason (see the module docstring).
NOT_STORED = "$not_stored"
NOT_STORED_PARAMS = {"result_stored": False}


def tool(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark a function (sync or async) as a recorded tool; usable as ``@tool`` or ``@tool(name=...)``."""

    def wrap(f: F) -> F:
        tool_name = name or f.__name__
        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                from workbench.context import _current

                ctx = _current.get()
                if ctx is None:
                    return await f(*args, **kwargs)
                return await ctx.atool_call(tool_name, f, args, kwargs)

            async_wrapper.__workbench_tool__ = tool_name  # type: ignore[attr-defined]
            return typing.cast(F, async_wrapper)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from workbench.context import _current

            ctx = _current.get()
            if ctx is None:
                return f(*args, **kwargs)
            return ctx.tool_call(tool_name, f, args, kwargs)

        wrapper.__workbench_tool__ = tool_name  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return wrap(fn) if fn is not None else wrap


def _request(name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        payload: Any = dict(bound.arguments)
    except (TypeError, ValueError):
        payload = {"args": list(args), "kwargs": kwargs}
    args_json = codec.dumps(payload, f"arguments of tool {name!r}")
    if maybe_secret(args_json):
        # Recorded (and fingerprinted) with credentials redacted; remembered so errors lose them.
        args = json.loads(args_json)
        remember_secrets_in(args)
        args_json = json.dumps(redact(args), separators=(",", ":"), ensure_ascii=False)
    fp = hashlib.sha256(f"{name}\0{args_json}".encode()).hexdigest()[:24]
    return args_json, fp


def _served(ctx: Context, name: str, fn: Callable[..., Any], args_json: str, fp: str) -> tuple[bool, Any]:
    from workbench.context import ReplayDivergence

    try:
        rec = ctx.take_recorded(fp, getattr(inspect.unwrap(fn), "__globals__", None), kind="tool")
    except ReplayDivergence as div:
        div.detail["request"] = {"kind": "tool", "tool": name, "args": json.loads(args_json)}
        raise
    if rec is None:
        return False, None
    if rec.row.get("params") == NOT_STORED_PARAMS and isinstance(rec.response, dict) \
            and isinstance(rec.response.get(NOT_STORED), str):
        # The tool ran when recorded but its result could not be stored: fail as it did then.
        raise SerializationError(rec.response[NOT_STORED])
    hints = typing.get_type_hints(fn) if hasattr(fn, "__annotations__") else {}
    return True, codec.coerce(rec.response, hints.get("return", Any))


def _record(ctx: Context, name: str, args_json: str, fp: str, started: float, result: Any,
            error: BaseException | None) -> SerializationError | None:
    """Record a call; returns the error to raise when the tool's result cannot be stored."""
    result_json = None
    params = None
    err = None
    unstored = None
    if error is not None:
        err = scrub(f"{type_name(error)}: {error}")
        params = json.dumps(identity(error), ensure_ascii=False)
    else:
        try:
            result_json = codec.dumps(result, "result")
        except Exception as exc:
            reason = scrub(str(exc) if isinstance(exc, SerializationError) else f"{type(exc).__name__}: {exc}")
            unstored = SerializationError(
                f"tool {name!r} ran, but its result cannot be recorded: {reason} (the call is recorded as "
                "made: serving it from the recording raises this error instead of calling the tool again)"
            )
            result_json = json.dumps({NOT_STORED: str(unstored)}, ensure_ascii=False)
            params = json.dumps(NOT_STORED_PARAMS)
    ctx.record_call({
        "seq": ctx.next_seq(), "kind": "tool", "model": name, "messages": args_json, "params": params,
        "response": result_json, "prompt_tokens": None, "completion_tokens": None, "cost_usd": None,
        "latency_ms": (time.perf_counter() - started) * 1000, "attempts": 1, "error": err,
        "fingerprint": fp, "created_at": now_us(),
    })
    return unstored


def run_tool(ctx: Context, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Serve a recorded result, or call the tool and record the call."""
    args_json, fp = _request(name, fn, args, kwargs)
    hit, value = _served(ctx, name, fn, args_json, fp)
    if hit:
        return value
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        _record(ctx, name, args_json, fp, started, None, exc)
        raise
    unstored = _record(ctx, name, args_json, fp, started, result, None)
    if unstored is not None:
        raise unstored
    return result


async def arun_tool(
    ctx: Context, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The async form of :func:`run_tool`."""
    args_json, fp = _request(name, fn, args, kwargs)
    hit, value = _served(ctx, name, fn, args_json, fp)
    if hit:
        return value
    started = time.perf_counter()
    try:
        result = await fn(*args, **kwargs)
    except Exception as exc:
        _record(ctx, name, args_json, fp, started, None, exc)
        raise
    unstored = _record(ctx, name, args_json, fp, started, result, None)
    if unstored is not None:
        raise unstored
    return result

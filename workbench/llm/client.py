"""The model-call helper nodes use: ``ctx.llm(...)`` / ``await ctx.allm(...)``.

Every call goes through litellm and is recorded in ``llm_calls``: the request messages and
parameters (credentials replaced by ``"[redacted]"``, see :mod:`workbench.redact`), the response,
the model that answered, tokens, cost, latency, how many attempts it took, and the error if it
failed (one short line, known secrets scrubbed). Rate limits, timeouts and connection errors are
retried with exponential backoff; then each fallback model is tried. A request a provider refuses
(authentication, permission, bad request, unknown model) is not retried: each fallback is tried
once, and when every model refused, :class:`LLMRejectedError` says so (a node's ``RetryPolicy``
does not retry it either).
When a task runs again after a pause or a crash, calls it already made are served from the
recording (matched by order and by a fingerprint of the request), not made again.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import importlib
import json
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import codec
from workbench.errors import LLMError, LLMRejectedError
from workbench.llm.config import resolve_fallbacks, resolve_model
from workbench.llm.demo import PROVIDER as DEMO_PROVIDER
from workbench.redact import redact, remember_secrets_in, scrub
from workbench.store.store import now_us

if TYPE_CHECKING:
    from workbench.context import Context

# Our own options, consumed here and not passed to litellm.
_OWN_OPTIONS = {"fallbacks", "retries", "timeout", "stream", "backoff"}

_setup_lock = threading.Lock()
_litellm: Any = None


@dataclass
class LLMReply:
    """A model's answer. ``text`` is the reply; ``served`` is True when it came from a recording."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    served: bool = False
    message: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


def litellm_module() -> Any:
    """Import and configure litellm once: bundled price list, no telemetry, demo provider."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _setup_lock:
        if _litellm is None:
            # Without this litellm fetches its price list over the network at import.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_LOG", "ERROR")
            import litellm

            from workbench.llm.demo import PROVIDER, build_handler

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            # litellm logs every call at INFO; an app that logs at INFO would drown in it.
            import logging

            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
                logging.getLogger(name).setLevel(logging.WARNING)
            providers = [p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER]
            litellm.custom_provider_map = [*providers, {"provider": PROVIDER, "custom_handler": build_handler()}]
            _defer_tokenizer(litellm)
            _warm_up(litellm)
            _litellm = litellm
    return _litellm


class _DeferredTokenizer:
    """Stands in for litellm's default tokenizer until something uses it, then loads it.

    litellm hands its tokenizer (tiktoken's cl100k, about 0.3 s of CPU to load: more than all
    the rest of a first call) to every provider on every call, custom ones included; the demo
    model never uses it. Any attribute access loads the real one, which then replaces this
    stand-in in litellm for good.
    """

    def __init__(self, main: Any) -> None:
        self._main = main

    def __getattr__(self, name: str) -> Any:
        return getattr(self._main.encoding, name)  # litellm.main's __getattr__ loads and caches it


def _defer_tokenizer(litellm: Any) -> None:
    """Skip loading litellm's tokenizer while only the offline demo model is configured.

    With a real model configured (as the model or a fallback) it is loaded now, by the warm-up
    call, so that no recorded step waits for it. Only for litellm versions that load it lazily
    through ``litellm.main._encoding_cache``; others are left as they are.
    """
    if any(not m.startswith(DEMO_PROVIDER + "/") for m in [resolve_model(), *resolve_fallbacks()]):
        return
    main = getattr(litellm, "main", None)
    if main is None or "encoding" in vars(main) or vars(main).get("_encoding_cache", False) is not None:
        return
    main._encoding_cache = _DeferredTokenizer(main)


def _warm_up(litellm: Any) -> None:
    """Make one throwaway call to the offline demo model (nothing is recorded).

    litellm imports much of itself on its first call (its logging, cost and token-counting
    modules: about as long again as its import), which would otherwise land inside the first
    model step's recorded duration. Done here, it counts as the import: in the background
    when a command starts, excluded from any step that has to wait for it.
    """
    from workbench.llm.config import DEMO_MODEL

    def call() -> None:
        try:
            # Marked as litellm's own internal call: no success logging in a background thread,
            # so the warm-up starts no thread (a process that forks after importing must not
            # have any, and the crash tests' fork server checks it).
            from litellm._internal_context import is_internal_call

            is_internal_call.set(True)
        except Exception:  # another litellm version
            pass
        try:
            response = litellm.completion(model=DEMO_MODEL, messages=[{"role": "user", "content": "warm-up"}])
            litellm.completion_cost(completion_response=response)
        except Exception:  # a warm-up only: the first real call reports any problem
            pass

    contextvars.copy_context().run(call)
    # What litellm's success logging (a thread of its own) imports after a call: imported
    # here rather than racing the first recorded step for the interpreter.
    for name in ("litellm.proxy.spend_tracking.savings",):
        try:
            importlib.import_module(name)
        except Exception:  # another litellm version: nothing to import ahead
            pass


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters safe to record: at any depth, a value under a key that looks like a
    credential is replaced by ``"[redacted]"``, and URLs lose their credentials (see
    :func:`workbench.redact.redact`)."""
    out: dict[str, Any] = redact(params)
    return out


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return [dict(m) for m in messages]
    raise LLMError("ctx.llm(messages): pass a prompt string or a list of {'role', 'content'} dicts")


def fingerprint(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """A hash of what was asked: model, messages and recorded (redacted) parameters.

    Computed over what is recorded, so a secret never influences a fingerprint.
    """
    blob = json.dumps({"model": model, "messages": messages, "params": public_params(params)},
                      sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# Refusals: retrying the same request cannot help. litellm reports some of them under other
# types (a missing OpenAI key is an InternalServerError, a missing Gemini key an
# APIConnectionError), so the message is checked too.
_REFUSAL_TYPES = ("AuthenticationError", "PermissionDeniedError", "BadRequestError", "NotFoundError",
                  "UnprocessableEntityError")
_CREDENTIALS_PROBLEM = re.compile(
    r"missing (?:credentials|[\w -]{0,40}?api[ _-]?key)|api_key client option must be set|no api[ _-]?key"
    r"|(?:incorrect|invalid|wrong|bad) (?:api[ _-]?key|x-api-key|credentials|authentication|auth token)"
    r"|authentication (?:failed|error|required)|\bunauthori[sz]ed\b|\b(?:status|error) code:? 40[13]\b",
    re.IGNORECASE,
)
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+(?:Error|Exception):\s+)?")


def _refused(litellm: Any, exc: BaseException) -> bool:
    """True when the provider refused the request itself: credentials, permissions, a bad request."""
    kinds = tuple(k for k in (getattr(litellm, n, None) for n in _REFUSAL_TYPES) if isinstance(k, type))
    if kinds and isinstance(exc, kinds):
        return True
    try:
        text = str(exc)
    except Exception:
        return False
    return bool(_CREDENTIALS_PROBLEM.search(text[:2000]))


def _retryable(litellm: Any, exc: BaseException) -> bool:
    kinds = tuple(
        k for k in (
            getattr(litellm, "RateLimitError", None), getattr(litellm, "Timeout", None),
            getattr(litellm, "APIConnectionError", None), getattr(litellm, "ServiceUnavailableError", None),
            getattr(litellm, "InternalServerError", None),
        ) if k is not None
    )
    return isinstance(exc, kinds) or isinstance(exc, TimeoutError)


class _Call:
    """One logical model call: the request, and the bookkeeping shared by sync and async paths."""

    def __init__(self, ctx: Context | None, messages: Any, model: str | None, params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.messages = normalize_messages(messages)
        # What cannot be recorded is refused before the model is asked (it was asked, then
        # the record failed: a run stuck with an unrecorded call).
        codec.check_text(json.dumps(self.messages, default=str, ensure_ascii=False), self.messages, "ctx.llm messages")
        self.model = resolve_model(model)
        self.fallbacks = resolve_fallbacks(params.get("fallbacks"))
        self.retries = _option(params, "retries", 2, int, 0)
        self.backoff = _option(params, "backoff", 0.5, float, 0.0)
        self.timeout = _option(params, "timeout", 60.0, float, None)
        self.stream = bool(params.get("stream", False))
        self.params = {k: v for k, v in params.items() if k not in _OWN_OPTIONS}
        # Every credential passed in (at any depth, or in a URL) is scrubbed from error texts.
        remember_secrets_in(self.params)
        self.public = public_params(self.params)
        self.fp = fingerprint(self.model, self.messages, self.public)
        # The provider's SDK would retry each request itself (OpenAI's: twice), so that one
        # recorded attempt was three requests and retries=0 still retried: workbench's own
        # retries (retries=, backoff=) are the only ones unless the caller asks otherwise. Not
        # part of the recorded request (set after its fingerprint): old recordings still match.
        self.params.setdefault("max_retries", 0)
        self.attempts = 0
        # Models whose last failure was a refusal (not worth another attempt, at any level).
        self.refused: list[str] = []
        self.started = time.perf_counter()

    def served(self) -> LLMReply | None:
        if self.ctx is None:
            return None
        from workbench.context import ReplayDivergence

        try:
            rec = self.ctx.take_recorded(self.fp)
        except ReplayDivergence as div:
            div.detail["request"] = {"kind": "llm", "model": self.model, "messages": self.messages,
                                     "params": self.public}
            raise
        if rec is None:
            return None
        row = rec.row
        message = rec.response or {}
        self.ctx.record_request(rec, json.dumps(self.messages, default=str, ensure_ascii=False),
                                json.dumps(self.public, default=str, ensure_ascii=False), self.fp)
        return LLMReply(
            text=str(message.get("content") or ""), model=row.get("model") or self.model,
            prompt_tokens=row.get("prompt_tokens") or 0, completion_tokens=row.get("completion_tokens") or 0,
            cost_usd=row.get("cost_usd") or 0.0, latency_ms=row.get("latency_ms") or 0.0,
            attempts=row.get("attempts") or 0, served=True, message=message,
        )

    def plan(self) -> list[str]:
        return list(dict.fromkeys([self.model, *self.fallbacks]))  # each model once

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """The wait before the next attempt: the provider's ``Retry-After`` when it gave one
        (up to a minute), else the backoff."""
        after = _retry_after(exc)
        if after is not None:
            return after
        return min(self.backoff * 2 ** (attempt - 1), 20.0) * (0.5 + random.random() / 2)

    def reply(self, litellm: Any, model: str, response: Any, text: str | None = None) -> LLMReply:
        choice = response.choices[0]
        message = {"role": "assistant", "content": text if text is not None else (choice.message.content or "")}
        tool_calls = getattr(getattr(choice, "message", None), "tool_calls", None)
        if tool_calls:
            message["tool_calls"] = [tc.model_dump() if hasattr(tc, "model_dump") else tc for tc in tool_calls]
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # models without a price (the demo, self-hosted) cost nothing known
            cost = 0.0
        reply = LLMReply(
            text=str(message["content"] or ""), model=model, prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=cost, latency_ms=(time.perf_counter() - self.started) * 1000, attempts=self.attempts,
            message=message,
        )
        self.record(reply, None)
        return reply

    def record(self, reply: LLMReply | None, error: str | None) -> None:
        if self.ctx is None:
            return
        self.ctx.record_call({
            "seq": self.ctx.next_seq(), "kind": "llm",
            "model": reply.model if reply else self.model,
            "messages": json.dumps(self.messages, default=str, ensure_ascii=False),
            "params": json.dumps(self.public, default=str, ensure_ascii=False),
            "response": json.dumps(reply.message, default=str, ensure_ascii=False) if reply else None,
            "prompt_tokens": reply.prompt_tokens if reply else None,
            "completion_tokens": reply.completion_tokens if reply else None,
            "cost_usd": reply.cost_usd if reply else None,
            "latency_ms": (time.perf_counter() - self.started) * 1000,
            "attempts": self.attempts, "error": error, "fingerprint": self.fp, "created_at": now_us(),
        })

    def fail(self, errors: list[str]) -> LLMError:
        """The error to raise when every model failed; recorded as the call's error."""
        parts: list[str] = []
        counts: dict[str, int] = {}
        for e in errors:  # the same failure three times reads as one, with a count
            if e not in counts:
                parts.append(e)
            counts[e] = counts.get(e, 0) + 1
        shown = [p + (f" ({counts[p]} times)" if counts[p] > 1 else "") for p in parts[-3:]]
        if set(self.refused) >= set(self.plan()):
            msg = scrub(f"{LLMRejectedError.PREFIX}: " + "; ".join(shown))
            self.record(None, msg)
            return LLMRejectedError(msg)
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        msg = scrub(f"model call failed after {tries}: " + "; ".join(shown))
        self.record(None, msg)
        return LLMError(msg)

    def take_chunk(self, chunk: Any, chunks: list[Any], parts: list[str]) -> None:
        """Keep one streamed chunk and pass its text on to whoever watches the run."""
        chunks.append(chunk)
        choices = getattr(chunk, "choices", None)
        if not choices:  # the last chunk of stream_options={"include_usage": True}: usage only
            return
        delta = choices[0].delta.content or ""
        parts.append(delta)
        if self.ctx is not None and delta:
            self.ctx.emit("token", delta)

    def streamed_reply(self, litellm: Any, model: str, chunks: list[Any], parts: list[str]) -> LLMReply:
        response = litellm.stream_chunk_builder(chunks, messages=self.messages)
        return self.reply(litellm, model, response, "".join(parts))

    def should_retry(self, litellm: Any, model: str, exc: Exception, attempt: int, errors: list[str]) -> bool:
        """Note the failure; True when the same model is worth another attempt."""
        errors.append(f"{model}: {_short(exc)}")
        if _refused(litellm, exc):
            self.refused.append(model)
            return False
        return _retryable(litellm, exc) and attempt <= self.retries


def call_llm(ctx: Context | None, messages: Any, *, model: str | None = None, **params: Any) -> LLMReply:
    """Make (or serve from the recording) one model call; see the module docstring."""
    call = _Call(ctx, messages, model, params)
    served = call.served()
    if served is not None:
        return served
    litellm = _imported(ctx)
    call.started = time.perf_counter()  # latency is the model's, not litellm's import time
    errors: list[str] = []
    for m in call.plan():
        for attempt in range(1, call.retries + 2):
            call.attempts += 1
            try:
                if call.stream:
                    chunks: list[Any] = []
                    parts: list[str] = []
                    until = _clock() + call.timeout
                    for chunk in litellm.completion(model=m, messages=call.messages, stream=True,
                                                    timeout=call.timeout, **call.params):
                        call.take_chunk(chunk, chunks, parts)
                        _check_stream_time(until, call.timeout)
                    return call.streamed_reply(litellm, m, chunks, parts)
                response = _within(call.timeout, litellm.completion, model=m, messages=call.messages,
                                   timeout=call.timeout, **call.params)
                return call.reply(litellm, m, response)
            except Exception as exc:
                if call.should_retry(litellm, m, exc, attempt, errors):
                    _sleep(call.delay(attempt, exc))
                    continue
                break
    raise call.fail(errors)


async def acall_llm(ctx: Context | None, messages: Any, *, model: str | None = None, **params: Any) -> LLMReply:
    """The async form of :func:`call_llm`."""
    call = _Call(ctx, messages, model, params)
    served = call.served()
    if served is not None:
        return served
    if _litellm is None:
        t0 = time.perf_counter()
        hooks = ctx.deadline_hooks if ctx is not None else None
        if hooks is not None:
            hooks[0]()
        try:
            litellm = await asyncio.to_thread(litellm_module)
        finally:
            if hooks is not None:
                hooks[1]()
            if ctx is not None:
                ctx.excluded.append((t0, time.perf_counter()))
    else:
        litellm = _litellm
    call.started = time.perf_counter()
    errors: list[str] = []
    for m in call.plan():
        for attempt in range(1, call.retries + 2):
            call.attempts += 1
            try:
                if call.stream:
                    chunks: list[Any] = []
                    parts: list[str] = []
                    until = _clock() + call.timeout
                    stream = await litellm.acompletion(model=m, messages=call.messages, stream=True,
                                                       timeout=call.timeout, **call.params)
                    async for chunk in stream:
                        call.take_chunk(chunk, chunks, parts)
                        _check_stream_time(until, call.timeout)
                    return call.streamed_reply(litellm, m, chunks, parts)
                try:
                    response = await asyncio.wait_for(
                        litellm.acompletion(model=m, messages=call.messages, timeout=call.timeout, **call.params),
                        call.timeout,
                    )
                except TimeoutError:
                    raise TimeoutError(f"no answer within {call.timeout:g}s (timeout)") from None
                return call.reply(litellm, m, response)
            except Exception as exc:
                if call.should_retry(litellm, m, exc, attempt, errors):
                    await asyncio.sleep(call.delay(attempt, exc))
                    continue
                break
    raise call.fail(errors)


def _imported(ctx: Context | None) -> Any:
    """litellm, imported on first use; the time that takes is not the calling node's."""
    if _litellm is not None:
        return _litellm
    t0 = time.perf_counter()
    hooks = ctx.deadline_hooks if ctx is not None else None
    if hooks is not None:  # the node's timeout does not run while litellm imports
        hooks[0]()
    try:
        module = litellm_module()
    finally:
        if hooks is not None:
            hooks[1]()
        if ctx is not None:
            ctx.excluded.append((t0, time.perf_counter()))
    return module


def _within(limit: float, fn: Any, **kwargs: Any) -> Any:
    """``fn(**kwargs)``, given up after ``limit`` seconds (raises TimeoutError).

    Providers enforce ``timeout`` themselves, or not (a custom or self-hosted one may ignore
    it); this makes it hold whatever the provider does. The abandoned call finishes in a daemon
    thread and its answer is dropped.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn(**kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="workbench-llm-call", daemon=True).start()
    if not done.wait(limit):
        raise TimeoutError(f"no answer within {limit:g}s (timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _short(exc: BaseException) -> str:
    """One line about ``exc``: its type and the first line of its message, at most ~200
    characters, secrets scrubbed. litellm's ``litellm.X: X:`` prefixes are dropped."""
    name = type(exc).__name__
    try:
        text = str(exc).strip()
    except Exception:  # an exception whose __str__ fails still gets reported
        text = ""
    text = scrub(text.splitlines()[0].strip()) if text else ""
    text = _LITELLM_PREFIX.sub("", text).strip()
    if len(text) > 200:
        text = text[:199].rstrip() + "…"
    return f"{name}: {text}" if text else name


# Names of their own: tests move these, not the clock and sleep of every thread.
_clock = time.monotonic
_sleep = time.sleep


def _check_stream_time(until: float, limit: float) -> None:
    """A streamed answer is bounded by ``timeout`` as a whole, not per read (a model trickling
    a token every few seconds never tripped the HTTP client's read timeout)."""
    if _clock() > until:
        raise TimeoutError(f"no whole answer within {limit:g}s (timeout)")


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the provider asked to wait (``Retry-After``, in its error response), at most 60."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return min(max(float(value), 0.0), 60.0) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _option(params: dict[str, Any], name: str, default: Any, kind: type, least: float | None) -> Any:
    """One of ctx.llm's own options, checked before any request is made: ``retries`` a whole
    number >= 0, ``backoff`` seconds >= 0, ``timeout`` seconds > 0 (``retries=-1`` made no
    attempt and said nothing, ``timeout=0`` still sent the request, ``timeout=None`` was a
    TypeError, ``backoff=-1`` failed after a request that was never recorded)."""
    value = params.get(name, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and (
        kind is not int or isinstance(value, int))
    if ok and (value > 0 if least is None else value >= least):
        return kind(value)
    what = "a whole number of 0 or more" if kind is int else (
        "a number of seconds greater than 0" if least is None else "a number of seconds, 0 or more")
    raise LLMError(f"ctx.llm({name}=...) must be {what}, got {value!r}")

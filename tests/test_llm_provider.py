"""The model layer against a provider's behaviour (a stand-in for litellm, no network): how
many requests an attempt makes, the provider's Retry-After, streamed answers (their usage
chunk, their time limit), fallbacks named by one string, and litellm's import under a node's
timeout. Found by driving workbench against a fake OpenAI-compatible server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, TypedDict

import pytest

from workbench import END, START, Graph, Runner
from workbench.llm import client
from workbench.store import TraceStore


class RateLimitError(Exception):
    """What litellm raises for a 429 (its response carries the headers)."""

    def __init__(self, retry_after: str | None = None) -> None:
        super().__init__("RateLimitError: slow down")
        self.response = SimpleNamespace(headers={"retry-after": retry_after} if retry_after else {})


def _response(text: str) -> Any:
    message = SimpleNamespace(content=text, tool_calls=None)
    return SimpleNamespace(choices=[SimpleNamespace(message=message)],
                           usage=SimpleNamespace(prompt_tokens=3, completion_tokens=2))


class FakeLiteLLM:
    """The part of litellm the model layer uses; ``script`` says what each request gets."""

    RateLimitError = RateLimitError

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []

    def completion(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def completion_cost(self, completion_response: Any) -> float:
        return 0.0

    def stream_chunk_builder(self, chunks: list[Any], messages: Any = None) -> Any:
        return _response("".join(c.choices[0].delta.content for c in chunks if c.choices))


class S(TypedDict, total=False):
    answer: str


def _graph(**params: Any) -> Graph:
    g = Graph("provider", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        return {"answer": ctx.llm("hello", model="openai/gpt-4o-mini", **params).text}

    g.sequence(START, "ask", END)
    return g


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(script: list[Any]) -> FakeLiteLLM:
        stand_in = FakeLiteLLM(script)
        monkeypatch.setattr(client, "_litellm", stand_in)
        return stand_in

    return install


def test_an_attempt_is_one_request_and_retry_after_is_honoured(store: TraceStore, fake: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm's provider SDK retried every request twice itself: one recorded attempt was
    three requests, and ``retries=0`` still retried. The provider's Retry-After was ignored."""
    waits: list[float] = []
    monkeypatch.setattr(client, "_sleep", waits.append)
    stand_in = fake([RateLimitError("7"), _response("fine")])
    result = Runner(_graph(retries=1, backoff=0.01), store).run({})
    assert result.state["answer"] == "fine"
    assert [r["max_retries"] for r in stand_in.requests] == [0, 0]
    assert waits == [7.0]
    [call] = store.query_dicts("SELECT attempts, params FROM llm_calls WHERE run_id = ?", [result.run_id])
    assert call["attempts"] == 2 and "max_retries" not in call["params"]  # not part of the recorded request
    once = fake([RateLimitError()])
    assert Runner(_graph(retries=0), store).run({}).status == "failed"
    assert len(once.requests) == 1
    asked = fake([_response("ok")])
    Runner(_graph(max_retries=3), store).run({})
    assert asked.requests[0]["max_retries"] == 3  # the caller's own setting is kept


def _chunk(text: str | None) -> Any:
    if text is None:  # the usage chunk of stream_options={"include_usage": True}
        return SimpleNamespace(choices=[], usage=SimpleNamespace(prompt_tokens=3, completion_tokens=2))
    return SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text))])


def test_a_streamed_answer_with_a_usage_chunk_is_taken(store: TraceStore, fake: Any) -> None:
    """``stream_options={"include_usage": True}`` ends the stream with a chunk that has no
    choices: the call failed with IndexError after the whole answer had streamed."""
    fake([iter([_chunk("Hel"), _chunk("lo"), _chunk(None)])])
    result = Runner(_graph(stream=True, stream_options={"include_usage": True}), store).run({})
    assert result.status == "completed", result.error
    assert result.state["answer"] == "Hello"


def test_a_streamed_answer_is_bounded_by_its_timeout_as_a_whole(store: TraceStore, fake: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A model trickling a token every few seconds never tripped the HTTP read timeout: a call
    with ``timeout=5`` took 40 s."""
    clock = iter([100.0, 101.0, 104.0, 106.0, 130.0])
    monkeypatch.setattr(client, "_clock", lambda: next(clock))
    fake([iter([_chunk("a"), _chunk("b"), _chunk("c"), _chunk("d")])])
    result = Runner(_graph(stream=True, timeout=5, retries=0), store).run({})
    assert result.status == "failed"
    assert "no whole answer within 5s (timeout)" in (result.error or "")


def test_one_fallback_given_as_a_string_is_one_model() -> None:
    """``fallbacks="openai/gpt-4o"`` was read as the models "o", "p", "e", "n", ..."""
    from workbench.llm.config import resolve_fallbacks

    assert resolve_fallbacks("openai/gpt-4o") == ["openai/gpt-4o"]
    assert resolve_fallbacks(["a", "b"]) == ["a", "b"]


def test_litellms_first_import_does_not_count_against_a_nodes_timeout(store: TraceStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The first model call of a process waits for litellm's import (seconds): a node with
    ``timeout=2`` timed out on it, even on the offline demo model; its recorded duration
    already left the import out."""
    import time

    def slow_import() -> Any:
        time.sleep(0.5)  # an import taking longer than the node's timeout (a duration, not a wait for anything)
        return FakeLiteLLM([_response("answered")])

    monkeypatch.setattr(client, "_litellm", None)
    monkeypatch.setattr(client, "litellm_module", slow_import)
    g = Graph("import_wait", S)

    @g.node(timeout=0.2)
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        return {"answer": ctx.llm("hello", model="openai/gpt-4o-mini").text}

    g.sequence(START, "ask", END)

    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert result.state["answer"] == "answered"


@pytest.mark.parametrize("option, value, says", [
    ("retries", -1, "ctx.llm(retries=...) must be a whole number of 0 or more, got -1"),
    ("retries", 1.5, "ctx.llm(retries=...) must be a whole number of 0 or more, got 1.5"),
    ("timeout", 0, "ctx.llm(timeout=...) must be a number of seconds greater than 0, got 0"),
    ("timeout", None, "ctx.llm(timeout=...) must be a number of seconds greater than 0, got None"),
    ("backoff", -1, "ctx.llm(backoff=...) must be a number of seconds, 0 or more, got -1"),
])
def test_the_model_calls_own_options_are_checked_before_any_request(store: TraceStore, fake: Any, option: str,
                                                                   value: Any, says: str) -> None:
    """``retries=-1`` made no attempt and gave no reason; ``timeout=0`` still sent the request;
    ``timeout=None`` was a TypeError; ``backoff=-1`` failed after an unrecorded request."""
    stand_in = fake([_response("never")])
    result = Runner(_graph(**{option: value}), store).run({})
    assert result.status == "failed" and says in (result.error or "")
    assert stand_in.requests == []


def test_one_failed_attempt_is_said_in_the_singular(store: TraceStore, fake: Any) -> None:
    fake([RateLimitError()])
    result = Runner(_graph(retries=0), store).run({})
    assert "model call failed after 1 attempt: " in (result.error or "")

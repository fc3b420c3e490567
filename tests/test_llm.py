"""The LLM layer: recorded calls through litellm with the offline demo model, secrets kept out
of the store, retries and fallbacks, failures, streaming, and where the model name comes from.
No test here touches the network (sockets are blocked)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, TypedDict

import pytest

from workbench import END, START, Graph, Runner
from workbench.errors import LLMError
from workbench.llm import DEMO_MODEL, resolve_model
from workbench.llm.client import call_llm, public_params
from workbench.llm.config import resolve_fallbacks
from workbench.store import TraceStore

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")

API_KEY = "sk-test-SECRETKEY-0123456789abcdef"
AUTH = "Bearer tok-SECRETHEADER-fedcba9876543210"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"network access attempted in a test: {args[1:] if args else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


class S(TypedDict):
    prompt: str
    answer: str
    model: str
    tokens: int


def _one_call(**params: Any) -> Graph:
    g = Graph("llm_one", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        reply = ctx.llm([{"role": "system", "content": "Classify the message. Categories: billing, technical"},
                         {"role": "user", "content": state["prompt"]}], **params)
        return {"answer": reply.text, "model": reply.model, "tokens": reply.prompt_tokens + reply.completion_tokens}

    g.sequence(START, "ask", END)
    return g


def _all_text(store: TraceStore) -> str:
    """Every value of every base table, as text."""
    parts = []
    for (table,) in store.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                                "AND table_type = 'BASE TABLE'"):
        for row in store.query(f'SELECT * FROM "{table}"'):
            parts.append(repr(row))
    return "\n".join(parts)


# ---------------------------------------------------------------- recording


def test_demo_call_is_recorded(store: TraceStore) -> None:
    result = Runner(_one_call(), store).run({"prompt": "I get an error when I log in"})
    assert result.status == "completed", result.error
    assert result.state["answer"] == "technical"
    assert result.state["model"] == DEMO_MODEL
    rows = store.query_dicts("SELECT * FROM llm_calls WHERE run_id = ?", [result.run_id])
    assert len(rows) == 1
    row = rows[0]
    assert row["step"] == 1 and row["node"] == "ask" and row["model"] == DEMO_MODEL
    assert json.loads(row["messages"]) == [
        {"role": "system", "content": "Classify the message. Categories: billing, technical"},
        {"role": "user", "content": "I get an error when I log in"},
    ]
    assert json.loads(row["response"])["content"] == "technical"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["prompt_tokens"] + row["completion_tokens"] == result.state["tokens"]
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert row["cost_usd"] is not None and row["cost_usd"] >= 0
    assert row["error"] is None
    assert row["attempts"] == 1 and row["seq"] == 0
    assert row["fingerprint"]


def test_demo_model_is_deterministic(store: TraceStore) -> None:
    a = Runner(_one_call(), store).run({"prompt": "my invoice is wrong"})
    b = Runner(_one_call(), store).run({"prompt": "my invoice is wrong"})
    assert a.state == b.state and a.state["answer"] == "billing"
    fa, fb = (store.llm_calls(r.run_id)[0]["fingerprint"] for r in (a, b))
    assert fa == fb


def test_params_recorded_but_secrets_never_stored(tmp_path: Path) -> None:
    db = tmp_path / "secrets.duckdb"
    st = TraceStore(str(db))
    try:
        result = Runner(_one_call(api_key=API_KEY, extra_headers={"Authorization": AUTH}, temperature=0.25,
                                  max_tokens=50), st).run({"prompt": "hello"})
        assert result.status == "completed", result.error
        # A failing call with the same credentials records its error, still without them.
        failed = Runner(_one_call(model="workbench-demo/broken", api_key=API_KEY, retries=0,
                                  extra_headers={"Authorization": AUTH}), st).run({"prompt": "hello"})
        assert failed.status == "failed"
        assert st.llm_calls(failed.run_id)[0]["error"]
        call = st.llm_calls(result.run_id)[0]
        assert call["params"] == {"temperature": 0.25, "max_tokens": 50, "api_key": "[redacted]",
                                  "extra_headers": "[redacted]"}
        everything = _all_text(st)
        assert "temperature" in everything  # the check can see params at all
        assert "SECRETKEY" not in everything and "SECRETHEADER" not in everything
        journal = Path(str(db) + ".journal")
        if journal.exists():
            data = journal.read_bytes()
            assert b"SECRETKEY" not in data and b"SECRETHEADER" not in data
    finally:
        st.close()
    for f in (p for p in tmp_path.rglob("*") if p.is_file()):
        data = f.read_bytes()
        assert b"SECRETKEY" not in data and b"SECRETHEADER" not in data, f.name


def test_secret_looking_params_are_redacted() -> None:
    params = {"api_key": 1, "extra_headers": 2, "headers": 3, "aws_secret_access_key": 4, "password": 5,
              "access_token": 6, "authorization": 7, "vertex_credentials": 8, "temperature": 9,
              "max_tokens": 10, "top_k": 11, "max_completion_tokens": 12, "seed": 13}
    secret = ["api_key", "extra_headers", "headers", "aws_secret_access_key", "password", "access_token",
              "authorization", "vertex_credentials"]
    assert public_params(params) == {**{k: "[redacted]" for k in secret}, "temperature": 9, "max_tokens": 10,
                                     "top_k": 11, "max_completion_tokens": 12, "seed": 13}


def test_prompt_string_becomes_user_message(store: TraceStore) -> None:
    g = Graph("prompt_str", S)
    g.add_node("ask", lambda s, ctx: {"answer": ctx.llm("just a string", model="workbench-demo/echo").text})
    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.state["answer"] == "just a string"
    assert store.llm_calls(result.run_id)[0]["messages"] == [{"role": "user", "content": "just a string"}]


def test_bad_messages_refused() -> None:
    with pytest.raises(LLMError, match="messages"):
        call_llm(None, [("user", "tuple")])


def test_call_outside_a_run() -> None:
    reply = call_llm(None, "ping", model="workbench-demo/echo")
    assert reply.text == "ping" and not reply.served and reply.attempts == 1


def test_async_call_is_recorded(store: TraceStore) -> None:
    g = Graph("allm", S)

    @g.node
    async def ask(state: S, ctx: Any) -> dict[str, Any]:
        a = await ctx.allm("first", model="workbench-demo/echo")
        b = await ctx.allm("second", model="workbench-demo/echo")
        return {"answer": f"{a.text}+{b.text}"}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.state["answer"] == "first+second"
    calls = store.llm_calls(result.run_id)
    assert [(c["seq"], c["messages"][0]["content"]) for c in calls] == [(0, "first"), (1, "second")]


def test_token_and_cost_totals_in_run_list(store: TraceStore) -> None:
    result = Runner(_one_call(), store).run({"prompt": "password reset please"})
    listed = next(r for r in store.list_runs() if r["run_id"] == result.run_id)
    assert listed["tokens"] == result.state["tokens"] > 0


# ---------------------------------------------------------------- retries, fallbacks, failures


def test_rate_limited_model_falls_back(store: TraceStore) -> None:
    g = _one_call(model="workbench-demo/rate-limited", fallbacks=["workbench-demo/echo"], backoff=0)
    result = Runner(g, store).run({"prompt": "please echo me"})
    assert result.status == "completed", result.error
    assert result.state["answer"] == "please echo me"
    assert result.state["model"] == "workbench-demo/echo"
    calls = store.llm_calls(result.run_id)
    assert len(calls) == 1
    call = calls[0]
    assert call["model"] == "workbench-demo/echo"
    assert call["attempts"] == 4  # three tries of the rate-limited model (2 retries), then the fallback
    assert call["error"] is None


def test_retries_count_per_call(store: TraceStore) -> None:
    g = _one_call(model="workbench-demo/rate-limited", fallbacks=["workbench-demo/echo"], backoff=0, retries=0)
    result = Runner(g, store).run({"prompt": "x"})
    assert store.llm_calls(result.run_id)[0]["attempts"] == 2


def test_fallbacks_from_environment(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FALLBACKS", "workbench-demo/broken, workbench-demo/echo")
    g = _one_call(model="workbench-demo/rate-limited", backoff=0, retries=0)
    result = Runner(g, store).run({"prompt": "via env"})
    assert result.state["answer"] == "via env"
    assert store.llm_calls(result.run_id)[0]["attempts"] == 3


def test_a_model_failure_handed_to_on_error_replays_identically(store: TraceStore) -> None:
    """The handler of a node whose model call failed read ctx.error["type"] == "LLMError" live
    and "RecordedLLMError" in the replay, so the replay diverged on unchanged code."""
    from workbench.replay import replay_run

    g = Graph("llm_handled", S)

    @g.node(on_error="apologise")
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        return {"answer": ctx.llm("hello", model="workbench-demo/broken", backoff=0, retries=0).text}

    @g.node
    def apologise(state: S, ctx: Any) -> dict[str, Any]:
        return {"answer": f"sorry: {ctx.error['type']}"}

    g.sequence(START, "ask", END)
    g.edge("apologise", END)
    result = Runner(g, store).run({})
    assert result.status == "completed" and result.state["answer"] == "sorry: LLMError"
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)


def test_model_that_always_fails_raises_llm_error(store: TraceStore) -> None:
    seen: list[BaseException] = []
    g = Graph("llm_broken", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        try:
            ctx.llm("hello", model="workbench-demo/broken", backoff=0, retries=1)
        except LLMError as exc:
            seen.append(exc)
            raise
        return {}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "LLMError" in result.error
    assert len(seen) == 1 and "2 attempts" in str(seen[0]) and "workbench-demo/broken" in str(seen[0])
    calls = store.query_dicts("SELECT * FROM llm_calls WHERE run_id = ?", [result.run_id])
    assert len(calls) == 1
    assert calls[0]["error"] and "broken" in calls[0]["error"]
    assert calls[0]["response"] is None
    assert calls[0]["attempts"] == 2


def test_failed_call_is_made_again_on_resume(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded failure is not served as an answer: after a fix the call goes live again."""
    models = {"m": "workbench-demo/broken"}
    g = Graph("llm_fix", S)
    g.add_node("ask", lambda s, ctx: {"answer": ctx.llm("hi", model=models["m"], retries=0).text})
    g.sequence(START, "ask", END)
    first = Runner(g, store).run({})
    assert first.status == "failed"
    models["m"] = "workbench-demo/echo"
    done = Runner(g, store).resume(first.run_id)
    assert done.status == "completed" and done.state["answer"] == "hi"
    assert [c["error"] is None for c in store.llm_calls(first.run_id)] == [False, True]


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("use_async", [False, True])
def test_streaming_emits_tokens(store: TraceStore, use_async: bool) -> None:
    tokens: list[str] = []

    def listen(event: Any) -> None:
        if event.kind == "token":
            assert event.node == "stream" and event.step == 1
            tokens.append(event.data["data"])

    g = Graph("streaming", S)
    prompt = [{"role": "system", "content": "You draft a short, friendly support reply."},
              {"role": "user", "content": "Category: technical\nCustomer name: Ada\nMessage: it crashes"}]
    if use_async:
        async def stream(state: S, ctx: Any) -> dict[str, Any]:
            return {"answer": (await ctx.allm(prompt, stream=True)).text}
    else:
        def stream(state: S, ctx: Any) -> dict[str, Any]:  # type: ignore[misc]
            return {"answer": ctx.llm(prompt, stream=True).text}

    g.add_node("stream", stream)
    g.sequence(START, "stream", END)
    result = Runner(g, store, listener=listen).run({})
    assert result.status == "completed", result.error
    text = result.state["answer"]
    assert text.startswith("Hi Ada,") and "password" in text
    assert len(tokens) > 5
    assert "".join(tokens) == text
    call = store.llm_calls(result.run_id)[0]
    assert call["response"]["content"] == text
    assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0


# ---------------------------------------------------------------- which model


def test_model_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model() == DEMO_MODEL
    (tmp_path / "workbench.toml").write_text('[llm]\nmodel = "from-config/model"\nfallbacks = ["cfg/fb"]\n')
    assert resolve_model() == "from-config/model"
    assert resolve_fallbacks() == ["cfg/fb"]
    monkeypatch.setenv("WORKBENCH_MODEL", "from-env/model")
    monkeypatch.setenv("WORKBENCH_FALLBACKS", "env/a, env/b")
    assert resolve_model() == "from-env/model"
    assert resolve_fallbacks() == ["env/a", "env/b"]
    assert resolve_model("explicit/model") == "explicit/model"
    assert resolve_fallbacks(["x"]) == ["x"]
    assert resolve_fallbacks([]) == []


def test_unreadable_config_is_an_error_not_the_demo_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A production config with a typo must not quietly send every call to the demo model."""
    from workbench.project_config import ConfigError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "workbench.toml").write_text('[llm\nmodel = "openai/gpt-4o-mini"\n')
    with pytest.raises(ConfigError, match=r"^workbench.toml is not valid TOML: .*\(at line 1, column 5\)$"):
        resolve_model()
    (tmp_path / "workbench.toml").write_text('[llm]\nmodle = "openai/gpt-4o-mini"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'modle' in \[llm\] \(known keys: model, fallbacks\)"):
        resolve_model()
    (tmp_path / "workbench.toml").write_text('[llm]\nfallbacks = "a/b"\n')
    with pytest.raises(ConfigError, match=r"\[llm\] fallbacks must be a list"):
        resolve_fallbacks()
    # The environment wins over the file, as documented: the file is not consulted then.
    monkeypatch.setenv("WORKBENCH_MODEL", "from-env/model")
    assert resolve_model() == "from-env/model"


def test_configured_model_is_used_by_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workbench.toml").write_text('[llm]\nmodel = "workbench-demo/echo"\n')
    with TraceStore(str(tmp_path / "m.duckdb")) as st:
        r1 = Runner(_one_call(), st).run({"prompt": "from config"})
        assert r1.state["answer"] == "from config"
        monkeypatch.setenv("WORKBENCH_MODEL", DEMO_MODEL)
        r2 = Runner(_one_call(), st).run({"prompt": "my invoice"})
        assert r2.state["answer"] == "billing"
        r3 = Runner(_one_call(model="workbench-demo/echo"), st).run({"prompt": "explicit"})
        assert r3.state["answer"] == "explicit"
        assert [st.llm_calls(r.run_id)[0]["model"] for r in (r1, r2, r3)] == [
            "workbench-demo/echo", DEMO_MODEL, "workbench-demo/echo"]


def test_litellm_uses_local_price_list() -> None:
    from workbench.llm.client import litellm_module

    litellm_module()
    assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP") == "True"


def test_an_answer_served_from_the_recording_carries_its_attempts_and_latency(store: TraceStore) -> None:
    """A node that keeps how many tries its answer took replays identically (a served answer
    said 0 tries and 0 ms, so the replay diverged)."""
    from workbench.replay import replay_run

    g = Graph("tries", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        r = ctx.llm("ping", model="workbench-demo/rate-limited", fallbacks=["workbench-demo/echo"], backoff=0.01)
        return {"answer": f"{r.text}|{r.model}|{r.attempts}|{r.latency_ms > 0}"}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    tries = store.llm_calls(result.run_id)[0]["attempts"]
    assert tries > 1 and result.state["answer"] == f"ping|workbench-demo/echo|{tries}|True"
    report = replay_run(store, result.run_id, g)
    assert report.identical, report.divergence

"""Secrets never reach the record (issue 7, item 3): credentials in call arguments at any depth,
in URLs, in the environment, and echoed back by a provider's error are kept out of the trace
store (tables and files on disk), exports, and the terminal. A provider that refuses a request
(authentication, bad request) is not retried (issue 7, item 14).

No test here touches the network (sockets are blocked) or sleeps (backoffs are zero).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import cli_env, workbench_cmd

from workbench import END, START, Graph, RetryPolicy, Runner, tool
from workbench.errors import LLMError, LLMRejectedError
from workbench.llm.client import litellm_module
from workbench.redact import (
    REDACTED,
    forget_secrets,
    is_secret_key,
    known_secrets,
    redact,
    remember_secret,
    remember_secrets_in,
    scrub,
    scrub_value,
)
from workbench.replay import replay_run
from workbench.store import TraceStore
from workbench.transfer import export_runs

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")

LEAKY = "wbtest-leaky"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No network; no remembered secret carried from one test to the next."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    forget_secrets()
    yield
    forget_secrets()


def _secret(label: str) -> str:
    return f"sk-test-{label}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------- redact


def test_secret_keys_redacted_at_any_depth_and_kept_as_keys() -> None:
    value = {
        "api_key": "k1-0123456789",
        "temperature": 0.2,
        "metadata": {"api_key": "k2-0123456789", "trace": "t-1", "session": {"userToken": "k3-0123456789"}},
        "extra_body": {"user_token": "k4-0123456789", "items": [{"password": "pw-0123456789", "n": 1}, "plain"]},
        "extra_headers": {"Authorization": "Bearer tok-0123456789", "X-Trace": "abc"},
        "messages": [{"role": "user", "content": "hello", "X-Api-Key": "k5-0123456789"}],
        "clientSecret": 12345678901,
    }
    original = json.loads(json.dumps(value))
    out = redact(value)
    assert out == {
        "api_key": REDACTED,
        "temperature": 0.2,
        "metadata": {"api_key": REDACTED, "trace": "t-1", "session": {"userToken": REDACTED}},
        "extra_body": {"user_token": REDACTED, "items": [{"password": REDACTED, "n": 1}, "plain"]},
        "extra_headers": REDACTED,
        "messages": [{"role": "user", "content": "hello", "X-Api-Key": REDACTED}],
        "clientSecret": REDACTED,
    }
    assert value == original  # a copy: the arguments passed on to the provider are untouched
    assert redact(out) == out  # idempotent: a fingerprint over redacted params is stable


def test_non_secret_keys_are_kept() -> None:
    value = {"max_tokens": 50, "max_completion_tokens": 60, "top_k": 3, "temperature": 0.1, "seed": 7,
             "key": "customer:42", "prompt_cache_key": "pck", "tokens": ["a", "b"], "author": "ada",
             "keyword": "refund", "api_base": "https://api.example.com/v1", "monkey": "banana"}
    assert redact(value) == value
    for name in ("max_tokens", "maxTokens", "top_k", "key", "cache_key", "public_key", "temperature"):
        assert not is_secret_key(name), name
    for name in ("api_key", "apiKey", "X-API-KEY", "Authorization", "Proxy-Authorization", "extra_headers",
                 "aws_secret_access_key", "user_token", "access-token", "password", "vertex_credentials",
                 "client_secret", "Cookie", "secret_key"):
        assert is_secret_key(name), name


def test_no_credential_passed_stays_visible() -> None:
    assert redact({"api_key": None, "auth": False, "token": ""}) == {"api_key": None, "auth": False, "token": ""}


def test_json_schema_property_names_are_not_values() -> None:
    tools = [{"type": "function", "function": {"name": "reset", "parameters": {
        "type": "object",
        "properties": {"password": {"type": "string", "description": "the new password"},
                       "token": "tok-0123456789"},
    }}}]
    out = redact({"tools": tools})
    props = out["tools"][0]["function"]["parameters"]["properties"]
    assert props["password"] == {"type": "string", "description": "the new password"}
    assert props["token"] == REDACTED  # a string there is a value, not a schema


def test_url_credentials_are_stripped() -> None:
    assert redact({"api_base": "http://u:pa55word-123@127.0.0.1:9/v1"}) == {"api_base": "http://[redacted]@127.0.0.1:9/v1"}
    assert redact(["https://ghp_0123456789abcdef@github.com/x.git"]) == ["https://[redacted]@github.com/x.git"]
    assert redact("https://host/v1/models?key=AIza0123456789&alt=sse") == "https://host/v1/models?key=[redacted]&alt=sse"
    text = "failed: POST http://bob:hunter2hunter2@proxy:8080/x?api_key=abcdefgh123&q=1 (see me@example.com)"
    assert scrub(text) == "failed: POST http://[redacted]@proxy:8080/x?api_key=[redacted]&q=1 (see me@example.com)"
    assert redact("https://example.com/a@b") == "https://example.com/a@b"  # '@' in a path is no userinfo


def test_url_userinfo_runs_to_the_last_at_of_the_authority(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password holding an ``@`` is taken whole, known or not: URL parsers read the userinfo up
    to the last ``@`` before the host."""
    url = "postgres://admin:p@ssw0rd-longvalue@db/x"
    assert redact(url) == "postgres://[redacted]@db/x"
    assert scrub(url) == "postgres://[redacted]@db/x"
    assert redact("see postgresql://admin:p@ss@w0rd@db.internal:5432/app?x=1 or me@example.com") == \
        "see postgresql://[redacted]@db.internal:5432/app?x=1 or me@example.com"
    monkeypatch.setenv("DB_PASSWORD", "p@ssw0rd-longvalue")
    assert scrub(f"cannot connect to {url} as p@ssw0rd-longvalue") == \
        "cannot connect to postgres://[redacted]@db/x as [redacted]"
    monkeypatch.delenv("DB_PASSWORD")
    remember_secrets_in({"dsn": "postgresql://admin:p@ss-remembered-1@db:5432/app"})
    assert "p@ss-remembered-1" in known_secrets()
    assert scrub("password p@ss-remembered-1 refused") == "password [redacted] refused"


def test_known_secret_holding_an_ampersand_is_scrubbed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "abc&def=ghijkl123")
    assert scrub("GET https://h/x?token=abc&def=ghijkl123&page=2 failed") == \
        "GET https://h/x?token=[redacted]&page=2 failed"
    remember_secret("q&r=stuvwxyz987")
    assert scrub("POST /v1?a=1&auth=q&r=stuvwxyz987") == "POST /v1?a=1&auth=[redacted]"


def test_provider_credential_variables_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm's credentials whose names do not end in ``_KEY``/``_TOKEN``: a Bedrock bearer
    token, a Snowflake JWT, watsonx's Zen API key, Google credentials given inline as JSON."""
    values = {name: _secret(name.lower()) for name in
              ("AWS_BEARER_TOKEN_BEDROCK", "SNOWFLAKE_JWT", "WATSONX_ZENAPIKEY",
               "GOOGLE_APPLICATION_CREDENTIALS_JSON", "CIRCLE_OIDC_TOKEN_V2")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    plain = {"JWT_AUDIENCE": "https://audience.example.com", "AWS_BEARER_TOKEN_FILE": "/var/run/aws/token-file",
             "TOKENIZERS_PARALLELISM": "false-setting", "ANTHROPIC_TOKEN_COUNTING_BETA_VERSION": "2024-11-01"}
    for name, value in plain.items():
        monkeypatch.setenv(name, value)
    text = " ".join([*values.values(), *plain.values()])
    assert scrub(text) == " ".join([REDACTED] * len(values) + list(plain.values()))
    assert is_secret_key("snowflake_jwt") and is_secret_key("jwt")


def test_presigned_url_signatures_are_redacted() -> None:
    """An S3 presigned URL keeps what says how it was signed and loses what signs it; an Azure
    SAS loses its ``sig``."""
    s3 = ("https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101"
          "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
          "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr&X-Amz-Signature=abcdef0123456789")
    expected = ("https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[redacted]"
                "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
                "&X-Amz-Security-Token=[redacted]&X-Amz-Signature=[redacted]")
    assert redact(s3) == expected and scrub(f"403 for {s3}") == f"403 for {expected}"
    sas = "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2030-01-01&sig=AbCdEf%2Bghij%3D"
    assert redact({"url": sas}) == {"url": "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2030-01-01"
                                            "&sig=[redacted]"}
    assert redact("https://h/x?X-Goog-Signature=0a1b2c3d4e5f&design=flat&cache_key=k1") == \
        "https://h/x?X-Goog-Signature=[redacted]&design=flat&cache_key=k1"


def test_remembered_secrets_are_scrubbed_from_text() -> None:
    meta, body, password = _secret("meta"), _secret("body"), _secret("pw")
    remember_secrets_in({"metadata": {"api_key": meta}, "extra_body": {"user_token": body, "n": 5},
                         "api_base": f"http://user:{password}@127.0.0.1:9", "temperature": 0.5,
                         "extra_headers": {"Authorization": "Bearer tok-abcdefgh0123"}})
    text = f"error: {meta} / {body} / {password} / tok-abcdefgh0123"
    assert scrub(text) == "error: [redacted] / [redacted] / [redacted] / [redacted]"
    assert scrub_value({"e": [text], text: 1}) == {"e": [scrub(text)], scrub(text): 1}
    assert "user" not in known_secrets()  # the short user name is not remembered
    forget_secrets()
    assert meta in scrub(text)


def test_environment_secrets_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {name: _secret(name.lower()) for name in
              ("FOO_API_KEY", "GITHUB_TOKEN", "APP_SECRET", "DB_PASSWORD", "SIGNING_KEY",
               # PostgreSQL's and MySQL's own variables (fleet.md has users export PGPASSWORD),
               # numbered keys, personal access tokens, SECRET_ as a word, a bare PASS
               "PGPASSWORD", "MYSQL_PWD", "OPENAI_API_KEY_2", "GITHUB_PAT", "SECRET_KEY_BASE", "DB_PASS")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PLAIN_SETTING", "not-a-secret-at-all")
    monkeypatch.setenv("OLDPWD", "/home/someone/projects")  # the shell's directories are not secrets
    text = " ".join(values.values()) + " not-a-secret-at-all /home/someone/projects"
    assert scrub(text) == " ".join([REDACTED] * len(values)) + " not-a-secret-at-all /home/someone/projects"
    # Read at each use: a variable removed (or changed) is followed at once.
    monkeypatch.delenv("FOO_API_KEY")
    assert values["FOO_API_KEY"] in scrub(text)
    monkeypatch.setenv("FOO_API_KEY", "sk-rotated-0123456789")
    assert scrub("sk-rotated-0123456789") == REDACTED


def test_secrets_echoed_encoded_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider or library that echoes a key URL-encoded (a query string, a form body) or in
    base64 (``Authorization: Basic`` of ``user:key``, at any offset in the encoded bytes)."""
    import base64
    from urllib.parse import quote, quote_plus

    key = "sk-live-ABCdef123/+=xyz"
    remember_secret(key)
    monkeypatch.setenv("SERVICE_API_KEY", "Zk29dkfj3kdkslQ")
    for text in (key, "Zk29dkfj3kdkslQ"):
        for prefix in ("", "u", "us", "user:"):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                blob = encode(f"{prefix}{text} and more".encode()).decode()
                out = scrub(f"Authorization: Basic {blob}")
                assert REDACTED in out, (prefix, blob)
                # What is left is what encodes the rest, and a few bits of the value at each end.
                rest = len(out.removeprefix("Authorization: Basic ").replace(REDACTED, ""))
                assert rest <= len(encode(f"{prefix} and more".encode())) + 4, (prefix, out)
    assert scrub(f"GET /v1?q={quote(key, safe='')}&x=1") == f"GET /v1?q={REDACTED}&x=1"
    assert scrub("body=" + quote_plus(f"a b {key}")) == f"body=a+b+{REDACTED}"
    ordinary = base64.b64encode(b"an ordinary sentence of text").decode()
    assert scrub(ordinary) == ordinary


def test_short_values_are_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_TOKEN", "abc123")
    remember_secret("short")
    remember_secrets_in({"api_key": "1234567"})
    assert scrub("abc123 short 1234567 plain text") == "abc123 short 1234567 plain text"
    assert "abc123" not in known_secrets() and "short" not in known_secrets()


def test_scrub_leaves_plain_text_alone() -> None:
    assert scrub("") == "" and scrub("ok") == "ok"
    text = "ValueError: invalid literal for int() with base 10: 'x'"
    assert scrub(text) == text


# ---------------------------------------------------------------- a provider that echoes secrets


class Secrets:
    """Distinct secrets planted in each place a credential can be passed."""

    def __init__(self) -> None:
        self.key = _secret("key")        # api_key=
        self.meta = _secret("meta")      # metadata={"api_key": ...}
        self.body = _secret("body")      # extra_body={"user_token": ...}
        self.url = _secret("url")        # api_base="http://u:...@host"
        self.env = _secret("env")        # FOO_API_KEY in the environment

    def all(self) -> list[str]:
        return [self.key, self.meta, self.body, self.url, self.env]

    def call_params(self, **extra: Any) -> dict[str, Any]:
        return {"api_key": self.key, "metadata": {"api_key": self.meta, "team": "support"},
                "extra_body": {"user_token": self.body}, "api_base": f"http://u:{self.url}@127.0.0.1:9",
                "temperature": 0.1, **extra}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Secrets:
    s = Secrets()
    monkeypatch.setenv("FOO_API_KEY", s.env)
    return s


@pytest.fixture
def leaky_provider(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A litellm provider whose every error echoes what it was given: the key, the URL with its
    password, the nested parameters, and an environment secret. ``wbtest-leaky/auth`` refuses
    (AuthenticationError); ``wbtest-leaky/flaky`` fails like a dropped connection. Returns the
    models called, as the provider sees them (``auth``, ``flaky``)."""
    litellm = litellm_module()
    from litellm import CustomLLM

    calls: list[str] = []

    def fail(model: str, kwargs: dict[str, Any]) -> Exception:
        calls.append(model)
        echo = (f"{kwargs.get('api_key')} for {kwargs.get('api_base')}; body {kwargs.get('optional_params')}; "
                f"meta {(kwargs.get('litellm_params') or {}).get('metadata')}; env {os.environ.get('FOO_API_KEY')}")
        if model.endswith("auth"):
            return litellm.AuthenticationError(message=f"Incorrect API key provided: {echo}", llm_provider=LEAKY,
                                               model=model)
        return RuntimeError(f"connection reset: {echo}\nsecond line {kwargs.get('api_key')}")

    class Leaky(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            raise fail(model, kwargs)

        async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            raise fail(model, kwargs)

    monkeypatch.setattr(litellm, "custom_provider_map",
                        [*litellm.custom_provider_map, {"provider": LEAKY, "custom_handler": Leaky()}])
    return calls


class S(TypedDict, total=False):
    prompt: str
    answer: str


def _llm_graph(params: dict[str, Any], *, use_async: bool = False, attempts: int = 3) -> Graph:
    g = Graph("leaky", S)

    if use_async:
        @g.node(retry=RetryPolicy(attempts=attempts, initial_delay=0, jitter=False))
        async def ask(state: S, ctx: Any) -> dict[str, Any]:
            return {"answer": (await ctx.allm(state["prompt"], **params)).text}
    else:
        @g.node(retry=RetryPolicy(attempts=attempts, initial_delay=0, jitter=False))
        def ask(state: S, ctx: Any) -> dict[str, Any]:  # type: ignore[misc]
            return {"answer": ctx.llm(state["prompt"], **params).text}

    g.sequence(START, "ask", END)
    return g


def _assert_nowhere(values: list[str], db: Path, run_ids: list[str], out: str) -> None:
    """None of ``values`` in any wb_* table, the store's files on disk, an export, or ``out``."""
    export = db.parent / "export.jsonl"
    st = TraceStore(str(db))
    try:
        tables = [t for (t,) in st.query("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_name LIKE 'wb_%' AND table_type = 'BASE TABLE'")]
        assert "wb_runs" in tables and "wb_llm_calls" in tables
        rows = "\n".join(repr(row) for t in tables for row in st.query(f'SELECT * FROM "{t}"'))
        assert "[redacted]" in rows  # the check sees the recorded calls at all
        export_runs(st, run_ids, str(export))
    finally:
        st.close()
    files = {str(p.relative_to(db.parent)): p.read_bytes() for p in db.parent.rglob("*") if p.is_file()}
    assert export.name in files and db.name in files
    for value in values:
        assert value not in rows, f"secret in the trace store's tables: {value}"
        assert value not in out, f"secret printed: {value}"
        for name, data in files.items():
            assert value.encode() not in data, f"secret in {name}: {value}"


def _run_leaky(db: Path, graph: Graph) -> Any:
    with TraceStore(str(db)) as st:
        return Runner(graph, st).run({"prompt": "hello"})


@pytest.mark.parametrize("use_async", [False, True])
def test_refused_call_records_no_secret_and_is_not_retried(
    tmp_path: Path, secrets: Secrets, leaky_provider: list[str], capfd: pytest.CaptureFixture[str], use_async: bool
) -> None:
    db = tmp_path / "trace.duckdb"
    params = secrets.call_params(model=f"{LEAKY}/auth", fallbacks=[f"{LEAKY}/auth"], retries=2, backoff=0)
    result = _run_leaky(db, _llm_graph(params, use_async=use_async))
    assert result.status == "failed"
    # One attempt: not retried by the call (retries=2), nor by the node's RetryPolicy(attempts=3),
    # and a fallback that is the same model is not tried twice.
    assert leaky_provider == ["auth"]
    assert "LLMRejectedError" in (result.error or "")
    assert "\n" not in (result.error or "") and len(result.error or "") < 600
    with TraceStore(str(db)) as st:
        [call] = st.llm_calls(result.run_id)
        steps = st.tasks(result.run_id)
    assert call["attempts"] == 1
    assert call["error"].startswith(LLMRejectedError.PREFIX) and "Incorrect API key" in call["error"]
    assert call["params"] == {"api_key": REDACTED, "metadata": {"api_key": REDACTED, "team": "support"},
                              "extra_body": {"user_token": REDACTED}, "api_base": "http://[redacted]@127.0.0.1:9",
                              "temperature": 0.1}
    assert [s["attempt"] for s in steps] == [1]
    assert steps[0]["traceback"] and REDACTED in steps[0]["error"]
    captured = capfd.readouterr()
    _assert_nowhere(secrets.all(), db, [result.run_id], captured.out + captured.err)


def test_transient_failures_then_refusal_record_no_secret(
    tmp_path: Path, secrets: Secrets, leaky_provider: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "trace.duckdb"
    params = secrets.call_params(model=f"{LEAKY}/flaky", fallbacks=[f"{LEAKY}/auth"], retries=1, backoff=0)
    result = _run_leaky(db, _llm_graph(params, attempts=2))
    assert result.status == "failed"
    # The flaky model is retried (2 tries), the refusing fallback tried once; one model's failure
    # was transient, so the node's RetryPolicy tries again.
    assert leaky_provider == ["flaky", "flaky", "auth"] * 2
    with TraceStore(str(db)) as st:
        calls = st.llm_calls(result.run_id)
    assert [c["attempts"] for c in calls] == [3, 3]
    error = calls[0]["error"]
    assert error.startswith("model call failed after 3 attempts") and "(2 times)" in error
    assert "\n" not in error and "second line" not in error
    captured = capfd.readouterr()
    _assert_nowhere(secrets.all(), db, [result.run_id], captured.out + captured.err)


def test_refusal_replays_without_retry(tmp_path: Path, secrets: Secrets, leaky_provider: list[str]) -> None:
    """A recorded refusal replays as an LLMRejectedError: the node is not retried in the replay
    either, so the replay matches the recording."""
    db = tmp_path / "trace.duckdb"
    graph = _llm_graph(secrets.call_params(model=f"{LEAKY}/auth", backoff=0))
    result = _run_leaky(db, graph)
    with TraceStore(str(db)) as st:
        report = replay_run(st, result.run_id, graph)
    assert report.identical, report.divergence
    assert leaky_provider == ["auth"]  # nothing called live in the replay


def test_missing_credentials_error_from_a_real_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm reports a missing OpenAI key as an InternalServerError; it is refused all the same:
    no retry, one short line."""
    from workbench.llm.client import call_llm

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMRejectedError) as info:
        call_llm(None, "hi", model="openai/gpt-4o-mini", retries=5, backoff=0)
    message = str(info.value)
    assert message.startswith(LLMRejectedError.PREFIX)
    assert "credentials" in message.lower() or "api key" in message.lower()
    assert "\n" not in message and len(message) < 400
    assert isinstance(info.value, LLMError)


def test_node_and_tool_errors_record_no_secret(
    tmp_path: Path, secrets: Secrets, capfd: pytest.CaptureFixture[str]
) -> None:
    token = _secret("tool")

    @tool
    def fetch_account(url: str, api_key: str, options: dict[str, Any]) -> dict[str, Any]:
        raise PermissionError(f"401 for key {api_key} at {url} (options {options})")

    @tool
    def lookup(key: str, auth: dict[str, Any]) -> str:
        return key.upper()

    g = Graph("leaky_tools", S)
    called = threading.Event()  # the sibling fails once both tools were called (else it may
    # fail first and cancel this step's other task before its calls: a race, not the point)

    @g.node
    def look(state: S) -> dict[str, Any]:
        try:
            assert lookup("customer:42", {"token": token}) == "CUSTOMER:42"
            fetch_account(f"https://bob:{secrets.url}@crm.invalid/v1?token={secrets.body}", secrets.key,
                          {"auth": {"password": secrets.meta}, "n": 1})
        finally:
            called.set()
        return {}

    @g.node
    def explode(state: S) -> dict[str, Any]:
        assert called.wait(timeout=60)
        raise RuntimeError(f"config is broken: FOO_API_KEY={os.environ['FOO_API_KEY']}")

    g.edge(START, "look").edge(START, "explode").edge("look", END).edge("explode", END)
    db = tmp_path / "trace.duckdb"
    with TraceStore(str(db)) as st:
        result = Runner(g, st).run({})
        assert result.status == "failed"
        rows = st.query_dicts("SELECT * FROM tool_calls WHERE run_id = ? ORDER BY seq", [result.run_id])
    by_tool = {r["tool"]: r for r in rows}
    assert json.loads(by_tool["lookup"]["args"]) == {"key": "customer:42", "auth": REDACTED}
    assert json.loads(by_tool["fetch_account"]["args"]) == {
        "url": "https://[redacted]@crm.invalid/v1?token=[redacted]", "api_key": REDACTED,
        "options": {"auth": REDACTED, "n": 1}}
    assert by_tool["fetch_account"]["error"].startswith("PermissionError: 401 for key [redacted]")
    captured = capfd.readouterr()
    _assert_nowhere([*secrets.all(), token], db, [result.run_id], captured.out + captured.err)


def test_tool_url_argument_with_an_at_in_its_password_records_no_part_of_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "p@ssw0rd-longvalue"

    @tool
    def connect(dsn: str) -> str:
        raise ConnectionError(f"could not connect to {dsn}")

    g = Graph("connects", S)

    @g.node
    def open_db(state: S) -> dict[str, Any]:
        connect(f"postgresql://admin:{password}@db.internal:5432/app")
        return {}

    g.sequence(START, "open_db", END)
    db = tmp_path / "trace.duckdb"
    with TraceStore(str(db)) as st:
        result = Runner(g, st).run({})
        assert result.status == "failed"
        [row] = st.query_dicts("SELECT args, error FROM tool_calls WHERE run_id = ?", [result.run_id])
    assert json.loads(row["args"]) == {"dsn": "postgresql://[redacted]@db.internal:5432/app"}
    assert row["error"] == "ConnectionError: could not connect to postgresql://[redacted]@db.internal:5432/app"
    assert "[redacted]" in (result.error or "")
    captured = capfd.readouterr()
    for part in (password, "ssw0rd-longvalue"):
        assert part not in json.dumps(row) and part not in (result.error or "")
        assert part not in captured.out + captured.err
        for p in tmp_path.rglob("*"):
            if p.is_file():
                assert part.encode() not in p.read_bytes(), p


def test_cli_prints_no_secret(project: Path) -> None:
    """The real CLI in a subprocess: a node's error echoing an environment secret is scrubbed from
    what is printed, recorded, shown and exported."""
    secret = _secret("cli")
    (project / "graphs" / "leak.py").write_text(textwrap.dedent("""
        import os
        from typing import TypedDict
        from workbench import END, START, Graph

        class S(TypedDict, total=False):
            x: int

        graph = Graph("leak", S)

        @graph.node
        def boom(state):
            raise RuntimeError("cannot connect with FOO_API_KEY=" + os.environ["FOO_API_KEY"])

        graph.sequence(START, "boom", END)
    """))
    env = cli_env(FOO_API_KEY=secret)
    out = []
    for args in (["run", "leak", "--input", "{}"], ["show", "last"], ["runs"],
                 ["sql", "SELECT error, traceback FROM steps"], ["export", "last", "--to", "leak.jsonl"]):
        res = subprocess.run([*workbench_cmd(), *args], cwd=project, env=env, capture_output=True, text=True,
                             timeout=120)
        out.append(res.stdout + res.stderr)
    text = "\n".join(out)
    assert "cannot connect with FOO_API_KEY=[redacted]" in text
    assert secret not in text
    for p in project.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            assert secret.encode() not in p.read_bytes(), p

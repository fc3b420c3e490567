"""Tools: functions whose calls are recorded like model calls and served on replay (issue 3, §4)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, RetryPolicy, Runner, append, interrupt, tool
from workbench.replay import replay_run
from workbench.store import TraceStore


class S(TypedDict):
    item: str
    value: Any
    answer: Any
    log: Annotated[list[str], append]


def tool_rows(store: TraceStore, run_id: str) -> list[dict[str, Any]]:
    rows = store.query_dicts("SELECT * FROM tool_calls WHERE run_id = ? ORDER BY step, task, attempt, seq", [run_id])
    for r in rows:
        r["args"] = json.loads(r["args"]) if r["args"] is not None else None
        r["result"] = json.loads(r["result"]) if r["result"] is not None else None
    return rows


def test_sync_tool_is_recorded(store: TraceStore) -> None:
    calls: list[tuple[str, int]] = []

    @tool
    def stock(item: str, warehouse: int = 3) -> dict[str, Any]:
        """How many of ITEM are in stock."""
        calls.append((item, warehouse))
        return {"item": item, "count": 7}

    assert stock.__name__ == "stock" and "stock" in (stock.__doc__ or "")
    g = Graph("sync_tool", S)

    @g.node
    def look(state: S) -> dict[str, Any]:
        return {"value": stock(state["item"])}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "bolt"})
    assert result.status == "completed" and result.state["value"] == {"item": "bolt", "count": 7}
    assert calls == [("bolt", 3)]
    [row] = tool_rows(store, result.run_id)
    assert row["tool"] == "stock" and row["node"] == "look" and row["step"] == 1
    assert row["args"] == {"item": "bolt", "warehouse": 3}
    assert row["result"] == {"item": "bolt", "count": 7}
    assert row["error"] is None
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert row["fingerprint"]
    # Tools are not model calls.
    assert store.query("SELECT count(*) FROM llm_calls WHERE run_id = ?", [result.run_id]) == [(0,)]


def test_async_tool_in_async_node_and_custom_name(store: TraceStore) -> None:
    calls: list[str] = []

    @tool(name="inventory.count")
    async def count(item: str) -> int:
        await asyncio.sleep(0)
        calls.append(item)
        return 41 + len(calls)

    g = Graph("async_tool", S)

    @g.node
    async def look(state: S) -> dict[str, Any]:
        first = await count(state["item"])
        second = await count(state["item"] + "s")
        return {"value": [first, second]}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "nut"})
    assert result.status == "completed" and result.state["value"] == [42, 43]
    rows = tool_rows(store, result.run_id)
    assert [(r["tool"], r["args"], r["result"], r["seq"]) for r in rows] == [
        ("inventory.count", {"item": "nut"}, 42, 0), ("inventory.count", {"item": "nuts"}, 43, 1)
    ]
    calls.clear()
    assert replay_run(store, result.run_id, g).identical
    assert calls == []


def test_tool_error_is_recorded(store: TraceStore) -> None:
    @tool
    def flaky(item: str) -> str:
        raise ValueError(f"no such item {item}")

    g = Graph("tool_error", S)

    @g.node
    def look(state: S) -> dict[str, Any]:
        return {"value": flaky(state["item"])}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "gear"})
    assert result.status == "failed" and "no such item gear" in (result.error or "")
    [row] = tool_rows(store, result.run_id)
    assert row["result"] is None
    assert row["error"] == "ValueError: no such item gear"
    assert replay_run(store, result.run_id, g).identical


def test_tool_outside_a_run_is_a_plain_call(store: TraceStore) -> None:
    seen: list[str] = []

    @tool
    def double(x: int) -> int:
        seen.append("sync")
        return 2 * x

    @tool
    async def adouble(x: int) -> int:
        seen.append("async")
        return 2 * x

    assert double(4) == 8
    assert asyncio.run(adouble(5)) == 10
    assert seen == ["sync", "async"]
    assert store.query("SELECT count(*) FROM tool_calls") == [(0,)]
    with pytest.raises(TypeError):
        double()  # a plain call: plain Python errors


@dataclass
class Account:
    id: str
    balance: float


def test_replay_serves_the_recorded_result_typed(store: TraceStore) -> None:
    executed: list[str] = []

    @tool
    def account(customer: str) -> Account:
        executed.append(customer)
        return Account(customer, 12.5)

    g = Graph("typed_tool", S)

    @g.node
    def look(state: S) -> dict[str, Any]:
        acc = account(state["item"])
        assert isinstance(acc, Account)
        return {"value": acc.balance, "log": [acc.id]}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "C-1"})
    assert result.status == "completed" and executed == ["C-1"]
    assert tool_rows(store, result.run_id)[0]["result"] == {"id": "C-1", "balance": 12.5}
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)
    assert executed == ["C-1"]


def test_changed_tool_arguments_are_a_request_divergence(store: TraceStore) -> None:
    executed: list[str] = []

    @tool
    def lookup(key: str) -> str:
        executed.append(key)
        return key.upper()

    def build(suffix: str) -> Graph:
        g = Graph("args", S)

        @g.node
        def look(state: S) -> dict[str, Any]:
            return {"value": lookup(state["item"] + suffix)}

        g.sequence(START, "look", END)
        return g

    result = Runner(build(""), store).run({"item": "k"})
    report = replay_run(store, result.run_id, build("-v2"))
    assert not report.identical
    d = report.divergence
    assert (d.kind, d.step, d.node) == ("request", 1, "look")
    assert "k-v2" in d.diff and '"k"' in d.diff
    assert executed == ["k"]


def test_resumed_task_does_not_repeat_a_tool_call_made_before_the_interrupt(store: TraceStore) -> None:
    executed: list[str] = []

    @tool
    def charge(item: str) -> str:
        executed.append(item)
        return f"charged {item}"

    g = Graph("charge_then_ask", S)

    @g.node
    def pay(state: S) -> dict[str, Any]:
        receipt = charge(state["item"])
        answer = interrupt({"receipt": receipt})
        return {"value": receipt, "answer": answer}

    g.sequence(START, "pay", END)
    runner = Runner(g, store)
    waiting = runner.run({"item": "book"})
    assert waiting.status == "waiting" and waiting.interrupt == {"receipt": "charged book"}
    assert executed == ["book"]
    done = runner.resume(waiting.run_id, "ok")
    assert done.status == "completed" and done.state == {**done.state, "value": "charged book", "answer": "ok"}
    assert executed == ["book"]
    assert len(tool_rows(store, waiting.run_id)) == 1
    assert replay_run(store, waiting.run_id, g).identical
    assert executed == ["book"]


def test_tool_calls_of_parallel_tasks_and_retries(store: TraceStore) -> None:
    failures = {"b": 1}
    executed: list[str] = []

    @tool
    def fetch(name: str) -> str:
        executed.append(name)
        if failures.get(name, 0) > 0:
            failures[name] -= 1
            raise ConnectionError("try again")
        return name * 2

    g = Graph("parallel_tools", S)

    def make(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            return {"log": [fetch(name)]}

        fn.__name__ = name
        return fn

    g.node(make("a"), name="a")
    g.node(make("b"), name="b", retry=RetryPolicy(attempts=2, initial_delay=0.0))
    g.edge(START, "a")
    g.edge(START, "b")
    g.edge("a", END)
    g.edge("b", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    assert sorted(result.state["log"]) == ["aa", "bb"]
    rows = tool_rows(store, result.run_id)
    got = sorted((r["node"], r["task"], r["attempt"], r["error"] is None) for r in rows)
    assert got == [("a", 0, 1, True), ("b", 1, 1, False), ("b", 1, 2, True)]
    executed.clear()
    assert replay_run(store, result.run_id, g).identical
    assert executed == []


def test_replay_of_a_handled_tool_error(store: TraceStore) -> None:
    @tool
    def lookup(key: str) -> str:
        raise KeyError(key)

    g = Graph("handled_tool_error", S)

    @g.node
    def look(state: S) -> dict[str, Any]:
        try:
            return {"value": lookup(state["item"])}
        except KeyError:
            return {"value": "fallback"}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "x"})
    assert result.status == "completed" and result.state["value"] == "fallback"
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)


# --------------------------------------------------------------------------- results that cannot be stored (issue 7)


class Conn:
    """Not JSON: a tool returning one has a result that cannot be recorded."""


def test_a_result_that_cannot_be_stored_fails_the_node_and_is_never_fetched_twice(store: TraceStore) -> None:
    executed: list[str] = []

    @tool
    def connect(item: str) -> dict[str, Any]:
        executed.append(item)
        return {"host": item, "conn": Conn()}

    g = Graph("unstorable", S)

    @g.node
    def look(state: S) -> dict[str, Any]:
        return {"value": connect(state["item"])["host"]}

    g.sequence(START, "look", END)
    result = Runner(g, store).run({"item": "db1"})
    assert result.status == "failed"
    assert executed == ["db1"]
    for needle in ("SerializationError", "tool 'connect'", "result.conn", "Conn"):
        assert needle in (result.error or ""), needle
    # Recorded as made (no error: the tool itself worked), the reason in place of the result.
    [row] = tool_rows(store, result.run_id)
    assert row["error"] is None and "result.conn" in row["result"]["$not_stored"]
    assert [c["params"] for c in store.llm_calls(result.run_id)] == [{"result_stored": False}]
    [task] = store.tasks(result.run_id)
    assert task["status"] == "failed" and "tool 'connect'" in task["error"]
    # Replay fails the same way, without calling the tool.
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)
    assert report.status == "failed"
    assert executed == ["db1"]


def test_resume_and_replay_raise_the_same_error_instead_of_calling_the_tool_again(store: TraceStore) -> None:
    executed: list[str] = []
    seen: list[str] = []

    @tool
    async def open_session(item: str) -> Any:
        executed.append(item)
        return Conn()

    g = Graph("unstorable_then_ask", S)

    @g.node
    async def pay(state: S) -> dict[str, Any]:
        from workbench.errors import SerializationError

        try:
            await open_session(state["item"])
            outcome = "stored"
        except SerializationError as exc:
            seen.append(str(exc))
            outcome = "not stored"
        answer = interrupt({"outcome": outcome})
        return {"value": outcome, "answer": answer}

    g.sequence(START, "pay", END)
    runner = Runner(g, store)
    waiting = runner.run({"item": "card"})
    assert waiting.status == "waiting" and waiting.interrupt == {"outcome": "not stored"}
    done = runner.resume(waiting.run_id, "ok")
    assert done.status == "completed" and done.state["value"] == "not stored" and done.state["answer"] == "ok"
    assert executed == ["card"]  # the resumed node was served the recorded call, not a second session
    assert len(seen) == 2 and seen[0] == seen[1] and "tool 'open_session'" in seen[0]
    assert len(tool_rows(store, waiting.run_id)) == 1
    report = replay_run(store, waiting.run_id, g)
    assert report.identical, str(report.divergence)
    assert executed == ["card"] and seen[2] == seen[0]


# --------------------------------------------------------------------------- a tool's own exception type, served


class CrmDown(Exception):
    """A tool's own exception type, with an attribute a retry policy reads."""

    def __init__(self, message: str, status_code: int = 503) -> None:
        super().__init__(message)
        self.status_code = status_code


def test_a_tools_own_exception_type_is_served_again_on_resume_and_replay(store: TraceStore) -> None:
    """A node catching a tool's own exception type, a retry policy testing it and a handler
    reading ctx.error["type"] saw a RecordedCallError when the failed call was served (replay
    diverged); a node run again after an interrupt called the failed tool a second time."""
    calls: list[str] = []

    @tool
    def crm(cid: str) -> dict[str, Any]:
        calls.append(cid)
        if cid == "flaky" and calls.count(cid) > 1:
            return {"cid": cid}
        raise CrmDown(f"crm down for {cid}", status_code=429 if cid == "flaky" else 503)

    g = Graph("own_exception", S)

    @g.node
    def fetch(state: S) -> dict[str, Any]:
        try:
            account: Any = crm(state["item"])
        except CrmDown as exc:
            account = {"fallback": exc.status_code}
        return {"value": account, "answer": interrupt({"q": "go on?", "account": account})}

    g.sequence(START, "fetch", END)
    runner = Runner(g, store)
    first = runner.run({"item": "C-2"})
    assert first.status == "waiting" and calls == ["C-2"]
    done = runner.resume(first.run_id, "yes")
    assert done.status == "completed" and done.state["value"] == {"fallback": 503}
    assert calls == ["C-2"]  # served from the record, not called again
    [row] = tool_rows(store, first.run_id)
    assert row["error"] == "CrmDown: crm down for C-2"
    assert replay_run(store, first.run_id, g).identical

    g2 = Graph("own_exception_retried", S)

    @g2.node(retry=RetryPolicy(attempts=3, initial_delay=0, retry_on=lambda e: getattr(e, "status_code", 0) == 429))
    def look(state: S) -> dict[str, Any]:
        return {"value": crm(state["item"])}

    @g2.node(on_error="handle")
    def strict(state: S) -> dict[str, Any]:
        return {"value": crm("down")}

    @g2.node
    def handle(state: S, ctx: Any) -> dict[str, Any]:
        return {"log": [f"{ctx.error['type']}: {ctx.error['message']}"]}

    g2.sequence(START, "look", "strict", END)
    g2.edge("handle", END)
    calls.clear()
    result = Runner(g2, store).run({"item": "flaky"})
    assert result.status == "completed" and calls == ["flaky", "flaky", "down"]
    assert result.state["log"] == ["CrmDown: CrmDown: crm down for down"]
    report = replay_run(store, result.run_id, g2)
    assert report.identical, str(report.divergence)
    assert calls == ["flaky", "flaky", "down"]  # the replay called nothing


def test_a_served_failure_never_imports_or_constructs_what_the_record_names() -> None:
    """The record names a type by module and name: only modules already loaded are searched,
    nothing but an exception type is made, and never through its constructor."""
    import sys

    from workbench.context import RecordedCallError, recorded_failure

    def served(error_type: str, error: str = "Boom: it broke") -> Exception:
        return recorded_failure({"kind": "tool", "error": error,
                                 "params": json.dumps({"error_type": error_type, "error_args": ["it broke"],
                                                       "error_attrs": {"status_code": 429}})})

    assert "xml.dom.minidom" not in sys.modules
    for name in ("xml.dom.minidom:Node", "os:system", "builtins:print", "json:loads", f"{__name__}:S",
                 "tests.nowhere:Boom", f"{__name__}:test_tools.<locals>.X"):
        exc = served(name)
        assert type(exc) is RecordedCallError and exc.recorded_type == "Boom" and str(exc) == "it broke", name
    assert "xml.dom.minidom" not in sys.modules
    made = served(f"{__name__}:CrmDown", "CrmDown: it broke")
    assert type(made) is CrmDown and str(made) == "it broke" and made.status_code == 429  # type: ignore[attr-defined]
    import subprocess

    # A type whose constructor needs other arguments is made without calling it.
    called = served("subprocess:CalledProcessError", "CalledProcessError: it broke")
    assert type(called) is subprocess.CalledProcessError and called.args == ("it broke",)
    assert type(served("builtins:KeyError", "KeyError: 'k'")) is KeyError


def test_a_graph_files_exception_type_is_found_by_other_processes(tmp_path: Path) -> None:
    """A graph file's module name carries a per-process digest: the record leaves it out, so a
    resume and a replay in other processes serve the failure as the file's own type (the resume
    failed the node with the uncaught stand-in; the replay diverged)."""
    from conftest import process_cli

    graph = str(Path(__file__).parent / "graphs" / "crm_down.py")
    db = str(tmp_path / "t.duckdb")
    first = process_cli("run", graph, "--db", db, "--json", cwd=tmp_path)
    assert first.returncode == 3, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    done = process_cli("resume", run_id, "--input", '"yes"', "--graph", graph, "--db", db, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == {"account": {"fallback": True}, "answer": "yes"}
    replayed = process_cli("replay", run_id, "--graph", graph, "--db", db, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    with TraceStore(db) as store:
        [row] = tool_rows(store, run_id)
    assert row["error"] == "CrmDown: crm down for C-2"


class Slotted(Exception):
    __slots__ = ("code",)


def test_a_served_failure_is_the_whole_exception_or_says_it_is_not() -> None:
    """Only what JSON carries back whole is made again: a CalledProcessError with its command
    list, an OSError with its file name. One with bytes, a tuple or __slots__ attributes was
    served half-built (its str() failed, an attribute missing): it is served as a
    RecordedCallError naming its type now. An exception raised without a message keeps its
    type's name; looking a type up runs no module's __getattr__."""
    import subprocess
    import sys

    from workbench.context import RecordedCallError, recorded_failure
    from workbench.failures import identity, type_name

    def round_trip(exc: BaseException) -> Exception:
        text = f"{type(exc).__name__}: {exc}"
        return recorded_failure({"kind": "tool", "error": text, "params": json.dumps(identity(exc))})

    called = round_trip(subprocess.CalledProcessError(1, ["git", "x"]))
    assert type(called) is subprocess.CalledProcessError
    assert str(called) == "Command '['git', 'x']' returned non-zero exit status 1."
    missing = round_trip(FileNotFoundError(2, "No such file", "f.txt"))
    assert type(missing) is FileNotFoundError and str(missing) == "[Errno 2] No such file: 'f.txt'"
    slotted = Slotted("boom")
    slotted.code = 7
    for exc in (slotted, UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), KeyError(("a", 1))):
        served = round_trip(exc)
        assert type(served) is RecordedCallError and type_name(served) == type(exc).__name__, exc
    silent = recorded_failure({"kind": "tool", "error": "CrmDown: ", "params": {"error_type": "nowhere:CrmDown"}})
    assert type_name(silent) == "CrmDown"
    sys.modules.pop("concurrent.futures.process", None)
    import concurrent.futures  # noqa: F401  (loaded: its lazy names come through __getattr__)

    lazy = recorded_failure({"kind": "tool", "error": "X: y",
                             "params": {"error_type": "concurrent.futures:ProcessPoolExecutor.X"}})
    assert type(lazy) is RecordedCallError and "concurrent.futures.process" not in sys.modules


def test_an_edited_model_answer_is_never_given_to_a_tool_call(store: TraceStore) -> None:
    """A fork's edited answer was served to whatever call came first at its place: a tool call
    the edited state now made got the model's answer as its result (the tool never ran)."""
    @tool
    def lookup(key: str) -> str:
        return f"looked up {key}"

    g = Graph("edit_vs_tool", S)

    @g.node
    def step(state: S, ctx: Any) -> dict[str, Any]:
        looked = lookup("x") if state.get("item") == "tool" else None
        return {"value": looked, "answer": ctx.llm("hi", model="workbench-demo/echo").text}

    g.sequence(START, "step", END)
    runner = Runner(g, store)
    parent = runner.run({"item": "no"})
    fork = runner.fork(parent.run_id, 1, set_state={"item": "tool"}, llm_responses={1: "EDITED"})
    assert fork.status == "failed"
    assert "EditedCallError" in (fork.error or "") and fork.state.get("value") != {"role": "assistant",
                                                                                   "content": "EDITED"}

"""Human input: interrupt(), pausing, resuming from a fresh Runner and TraceStore (as another
process would), and model calls made before the pause not being made again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, NO_VALUE, START, Graph, Runner, Send, append, interrupt
from workbench.errors import InputError, RunStateError, WorkbenchError
from workbench.store import TraceStore

PROVIDER = "wbtest-count"


class Counter:
    """A litellm custom provider that counts the calls it really receives."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def install(self) -> None:
        from litellm import CustomLLM
        from litellm.types.utils import ModelResponse

        from workbench.llm.client import litellm_module

        litellm = litellm_module()
        calls = self.calls

        def respond(model: str, messages: list[dict[str, Any]]) -> Any:
            last = str(messages[-1]["content"])
            calls.append(last)
            return ModelResponse(
                model=model,
                choices=[{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": f"answer to {last}"}}],
                usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            )

        class Counting(CustomLLM):  # type: ignore[misc]
            def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
                return respond(model, messages)

            async def acompletion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
                return respond(model, messages)

        others = [p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER]
        litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": Counting()}]

    def uninstall(self) -> None:
        from workbench.llm.client import litellm_module

        litellm = litellm_module()
        litellm.custom_provider_map = [p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER]


@pytest.fixture
def counter() -> Any:
    c = Counter()
    c.install()
    yield c
    c.uninstall()


MODEL = f"{PROVIDER}/m"


class S(TypedDict):
    question: str
    answers: Annotated[list[Any], append]
    log: Annotated[list[str], append]
    reply: str


def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "hitl.duckdb")


# ---------------------------------------------------------------- the basic cycle


def _approval_graph(execs: dict[str, int]) -> Graph:
    g = Graph("approval", S)

    @g.node
    def prepare(state: S) -> dict[str, Any]:
        execs["prepare"] = execs.get("prepare", 0) + 1
        return {"log": "prepared"}

    @g.node
    def ask(state: S) -> dict[str, Any]:
        execs["ask"] = execs.get("ask", 0) + 1
        value = interrupt({"question": state["question"], "options": ["yes", "no"]})
        return {"answers": [value], "reply": f"human said {value}"}

    @g.node
    def finish(state: S) -> dict[str, Any]:
        execs["finish"] = execs.get("finish", 0) + 1
        return {"log": "finished"}

    g.sequence(START, "prepare", "ask", "finish", END)
    return g


def test_interrupt_pauses_and_resume_from_new_runner_and_store_continues(tmp_path: Path) -> None:
    execs: dict[str, int] = {}
    with TraceStore(db_path(tmp_path)) as st:
        first = Runner(_approval_graph(execs), st).run({"question": "ship it?"})
        assert first.status == "waiting"
        assert first.interrupt == {"question": "ship it?", "options": ["yes", "no"]}
        assert first.state["log"] == ["prepared"]
        run = st.get_run(first.run_id)
        assert run["status"] == "waiting" and run["ended_at"] is None
        rows = st.interrupts(first.run_id)
        assert [(r["node"], r["payload"], r["response"], r["resumed_at"]) for r in rows] == [
            ("ask", {"question": "ship it?", "options": ["yes", "no"]}, None, None)]
        assert [(t["node"], t["status"]) for t in st.tasks(first.run_id)] == [("prepare", "completed"),
                                                                              ("ask", "interrupted")]

    # "Another process": a new store on the same file, a new graph object and runner.
    with TraceStore(db_path(tmp_path)) as st:
        done = Runner(_approval_graph(execs), st).resume(first.run_id, "yes")
        assert done.status == "completed", done.error
        assert done.state["answers"] == ["yes"]
        assert done.state["reply"] == "human said yes"
        assert done.state["log"] == ["prepared", "finished"]
        rows = st.interrupts(first.run_id)
        assert len(rows) == 1 and rows[0]["response"] == "yes" and rows[0]["resumed_at"] is not None
        assert st.get_run(first.run_id)["status"] == "completed"
        sql = st.query("SELECT node, payload, response FROM interrupts WHERE run_id = ?", [first.run_id])
        assert sql[0][0] == "ask" and '"yes"' in sql[0][2]
    # What re-runs on resume: the node that asked, from its top; nothing before it.
    assert execs == {"prepare": 1, "ask": 2, "finish": 1}


def test_resume_value_may_be_any_json(store: TraceStore) -> None:
    value = {"approve": True, "notes": ["a", None, 3.5], "nested": {"k": [1, 2]}}
    first = Runner(_approval_graph({}), store).run({"question": "q"})
    done = Runner(_approval_graph({}), store).resume(first.run_id, value)
    assert done.state["answers"] == [value]


def test_resume_of_waiting_run_without_value_refused(store: TraceStore) -> None:
    first = Runner(_approval_graph({}), store).run({"question": "q"})
    with pytest.raises(RunStateError, match="'ask'"):
        Runner(_approval_graph({}), store).resume(first.run_id)
    with pytest.raises(RunStateError):
        Runner(_approval_graph({}), store).resume(first.run_id, NO_VALUE)
    # Still waiting and still resumable.
    assert store.get_run(first.run_id)["status"] == "waiting"
    assert Runner(_approval_graph({}), store).resume(first.run_id, "ok").status == "completed"


def test_resume_of_completed_run_refused(store: TraceStore) -> None:
    first = Runner(_approval_graph({}), store).run({"question": "q"})
    Runner(_approval_graph({}), store).resume(first.run_id, "ok")
    with pytest.raises(RunStateError, match="completed"):
        Runner(_approval_graph({}), store).resume(first.run_id, "again")
    with pytest.raises(RunStateError, match="completed"):
        Runner(_approval_graph({}), store).resume(first.run_id)


def test_unserializable_resume_value_refused(store: TraceStore) -> None:
    first = Runner(_approval_graph({}), store).run({"question": "q"})
    with pytest.raises(InputError, match="resume value"):
        Runner(_approval_graph({}), store).resume(first.run_id, object())
    assert store.get_run(first.run_id)["status"] == "waiting"


def test_interrupt_outside_a_node_is_an_error() -> None:
    with pytest.raises(WorkbenchError, match="outside a running node"):
        interrupt("x")


def test_interrupt_via_ctx_and_async_node(store: TraceStore) -> None:
    g = Graph("actx", S)

    @g.node
    async def ask(state: S, ctx: Any) -> dict[str, Any]:
        value = ctx.interrupt("name?")
        again = interrupt("surname?")
        return {"reply": f"{value} {again}"}

    g.sequence(START, "ask", END)
    first = Runner(g, store).run({})
    assert (first.status, first.interrupt) == ("waiting", "name?")
    second = Runner(g, store).resume(first.run_id, "Ada")
    assert (second.status, second.interrupt) == ("waiting", "surname?")
    done = Runner(g, store).resume(first.run_id, "Lovelace")
    assert done.state["reply"] == "Ada Lovelace"


def test_unserializable_interrupt_payload_fails_the_node(store: TraceStore) -> None:
    g = Graph("badpayload", S)
    g.add_node("ask", lambda s: {"reply": interrupt({"obj": object()})})
    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert "interrupt payload" in result.error and "obj" in result.error


# ---------------------------------------------------------------- several interrupts


def test_multiple_interrupts_in_one_node(tmp_path: Path) -> None:
    execs = {"n": 0}

    def build() -> Graph:
        g = Graph("multi", S)

        @g.node
        def interview(state: S) -> dict[str, Any]:
            execs["n"] += 1
            name = interrupt({"ask": "name"})
            age = interrupt({"ask": "age", "name": name})
            colour = interrupt({"ask": "colour"})
            return {"answers": [name, age, colour]}

        g.sequence(START, "interview", END)
        return g

    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(build(), st).run({})
        assert r.interrupt == {"ask": "name"}
    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(build(), st).resume(r.run_id, "Ada")
        assert (r.status, r.interrupt) == ("waiting", {"ask": "age", "name": "Ada"})
    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(build(), st).resume(r.run_id, 36)
        assert (r.status, r.interrupt) == ("waiting", {"ask": "colour"})
    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(build(), st).resume(r.run_id, "green")
        assert r.status == "completed", r.error
        assert r.state["answers"] == ["Ada", 36, "green"]
        rows = st.interrupts(r.run_id)
        assert [(x["idx"], x["response"]) for x in rows] == [(0, "Ada"), (1, 36), (2, "green")]
        assert all(x["resumed_at"] is not None for x in rows)
    assert execs["n"] == 4


def test_interrupt_in_parallel_branch_keeps_sibling_result(store: TraceStore) -> None:
    execs: dict[str, int] = {}

    def build() -> Graph:
        g = Graph("par_hitl", S)

        def make(name: str, asks: bool) -> Any:
            def fn(state: S) -> dict[str, Any]:
                execs[name] = execs.get(name, 0) + 1
                value = interrupt(f"{name}?") if asks else name
                return {"answers": [value]}

            return fn

        g.add_node("auto", make("auto", False))
        g.add_node("human", make("human", True))
        g.add_node("auto2", make("auto2", False))
        for n in ("auto", "human", "auto2"):
            g.edge(START, n)
            g.edge(n, END)
        return g

    first = Runner(build(), store).run({})
    assert first.status == "waiting" and first.interrupt == "human?"
    # Nothing of the step is merged while one branch waits.
    assert first.state["answers"] == []
    done = Runner(build(), store).resume(first.run_id, "H")
    assert done.status == "completed", done.error
    assert done.state["answers"] == ["auto", "H", "auto2"]  # branch order, not resume order
    assert execs == {"auto": 1, "human": 2, "auto2": 1}


def test_two_parallel_branches_both_interrupt(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    g = Graph("two_hitl", S)

    def make(name: str) -> Any:
        def fn(state: S) -> dict[str, Any]:
            execs[name] = execs.get(name, 0) + 1
            return {"answers": [interrupt(f"{name}?")]}

        return fn

    for n in ("first", "second"):
        g.add_node(n, make(n))
        g.edge(START, n)
        g.edge(n, END)
    r = Runner(g, store).run({})
    assert (r.status, r.interrupt) == ("waiting", "first?")
    r = Runner(g, store).resume(r.run_id, 1)
    assert (r.status, r.interrupt) == ("waiting", "second?")
    r = Runner(g, store).resume(r.run_id, 2)
    assert r.status == "completed", r.error
    assert r.state["answers"] == [1, 2]
    assert execs == {"first": 2, "second": 3}
    rows = store.interrupts(r.run_id)
    assert [(x["node"], x["response"]) for x in rows] == [("first", 1), ("second", 2)]


def test_interrupt_in_send_branch(store: TraceStore) -> None:
    g = Graph("send_hitl", S)
    g.add_node("plan", lambda s: None)

    def review(arg: dict[str, Any]) -> dict[str, Any]:
        if arg["needs_human"]:
            return {"answers": [{"item": arg["item"], "verdict": interrupt(arg["item"])}]}
        return {"answers": [{"item": arg["item"], "verdict": "auto"}]}

    g.add_node("review", review)
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("review", {"item": i, "needs_human": i == "b"}) for i in "abc"],
            targets=["review"])
    g.edge("review", END)
    r = Runner(g, store).run({})
    assert (r.status, r.interrupt) == ("waiting", "b")
    r = Runner(g, store).resume(r.run_id, "ok")
    assert r.status == "completed", r.error
    assert r.state["answers"] == [{"item": "a", "verdict": "auto"}, {"item": "b", "verdict": "ok"},
                                  {"item": "c", "verdict": "auto"}]


# ---------------------------------------------------------------- model calls are not repeated


def _llm_then_ask(served: list[bool]) -> Graph:
    g = Graph("llm_hitl", S)

    @g.node
    def think(state: S, ctx: Any) -> dict[str, Any]:
        first = ctx.llm(f"draft for {state['question']}", model=MODEL)
        served.append(first.served)
        decision = interrupt({"draft": first.text})
        second = ctx.llm(f"polish {decision}", model=MODEL)
        served.append(second.served)
        final = interrupt({"polished": second.text})
        return {"reply": f"{first.text} | {second.text} | {final}"}

    g.sequence(START, "think", END)
    return g


def test_llm_calls_before_interrupt_are_not_made_again(tmp_path: Path, counter: Counter) -> None:
    served: list[bool] = []
    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(_llm_then_ask(served), st).run({"question": "Q"})
        assert r.status == "waiting" and r.interrupt == {"draft": "answer to draft for Q"}
    assert counter.calls == ["draft for Q"]

    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(_llm_then_ask(served), st).resume(r.run_id, "go")
        assert r.status == "waiting" and r.interrupt == {"polished": "answer to polish go"}
    assert counter.calls == ["draft for Q", "polish go"]

    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(_llm_then_ask(served), st).resume(r.run_id, "final")
        assert r.status == "completed", r.error
        assert r.state["reply"] == "answer to draft for Q | answer to polish go | final"
        calls = st.llm_calls(r.run_id)
        assert [(c["seq"], c["model"], c["messages"][-1]["content"]) for c in calls] == [
            (0, MODEL, "draft for Q"), (1, MODEL, "polish go")]
    # Only two live calls ever; the re-executions were served from the recording.
    assert counter.calls == ["draft for Q", "polish go"]
    assert served == [False, True, False, True, True]


def test_changed_request_after_resume_goes_live(store: TraceStore, counter: Counter) -> None:
    prompts = iter(["one", "two"])
    g = Graph("llm_changed", S)

    @g.node
    def think(state: S, ctx: Any) -> dict[str, Any]:
        text = ctx.llm(next(prompts), model=MODEL).text
        return {"reply": f"{text} / {interrupt('ok?')}"}

    g.sequence(START, "think", END)
    r = Runner(g, store).run({})
    r = Runner(g, store).resume(r.run_id, "yes")
    assert r.state["reply"] == "answer to two / yes"
    assert counter.calls == ["one", "two"]


def test_llm_calls_of_finished_sibling_not_repeated_on_resume(store: TraceStore, counter: Counter) -> None:
    g = Graph("llm_par", S)

    @g.node
    def writer(state: S, ctx: Any) -> dict[str, Any]:
        return {"log": ctx.llm("write", model=MODEL).text}

    @g.node
    def approver(state: S) -> dict[str, Any]:
        return {"reply": interrupt("approve?")}

    for n in ("writer", "approver"):
        g.edge(START, n)
        g.edge(n, END)
    r = Runner(g, store).run({})
    assert r.status == "waiting"
    r = Runner(g, store).resume(r.run_id, "approved")
    assert r.status == "completed"
    assert r.state == {"question": "", "answers": [], "log": ["answer to write"], "reply": "approved"}
    assert counter.calls == ["write"]


# ---------------------------------------------------------------- subgraphs


class Inner(TypedDict):
    question: str
    answers: Annotated[list[Any], append]


def _with_sub(execs: dict[str, int]) -> Graph:
    sub = Graph("asker", Inner)

    @sub.node
    def prep(state: Inner) -> dict[str, Any]:
        execs["prep"] = execs.get("prep", 0) + 1
        return {"answers": ["prep"]}

    @sub.node
    def ask_inner(state: Inner) -> dict[str, Any]:
        execs["ask_inner"] = execs.get("ask_inner", 0) + 1
        return {"answers": [interrupt({"inner": state["question"]})]}

    sub.sequence(START, "prep", "ask_inner", END)
    g = Graph("outer_hitl", S)
    g.add_node("asker", sub)
    g.add_node("after", lambda s: {"reply": f"{len(s['answers'])} answers"})
    g.sequence(START, "asker", "after", END)
    return g


def test_interrupt_inside_subgraph(tmp_path: Path) -> None:
    execs: dict[str, int] = {}
    with TraceStore(db_path(tmp_path)) as st:
        r = Runner(_with_sub(execs), st).run({"question": "inner q"})
        assert r.status == "waiting" and r.interrupt == {"inner": "inner q"}
        assert st.interrupts(r.run_id) == []  # the question belongs to the inner node, in the child run
        rows = st.tree_interrupts(r.run_id)
        assert [(x["run_id"], x["node"], x["path"]) for x in rows] == [
            (f"{r.run_id}/1.0.0", "ask_inner", "asker/ask_inner")]
    with TraceStore(db_path(tmp_path)) as st:
        done = Runner(_with_sub(execs), st).resume(r.run_id, "from human")
        assert done.status == "completed", done.error
        assert done.state["answers"] == ["prep", "from human"]
        assert done.state["reply"] == "2 answers"
    # The subgraph continues where it stopped: its completed step 'prep' does not run again.
    assert execs == {"prep": 1, "ask_inner": 2}


# ---------------------------------------------------------------- interrupts and failures


def _ask_then_check(execs: dict[str, int], retry: bool) -> Graph:
    from workbench import RetryPolicy

    g = Graph("ask_check", S)

    def ask(state: S) -> dict[str, Any]:
        execs["ask"] = execs.get("ask", 0) + 1
        value = interrupt("a number, please")
        if not str(value).isdigit():
            raise ValueError(f"not a number: {value!r}")
        return {"answers": [int(value)]}

    g.add_node("ask", ask, retry=RetryPolicy(attempts=2, initial_delay=0) if retry else None)
    g.sequence(START, "ask", END)
    return g


def test_retry_after_bad_answer_asks_again(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(_ask_then_check(execs, retry=True), store).run({})
    r = Runner(_ask_then_check(execs, retry=True), store).resume(r.run_id, "seven")
    assert (r.status, r.interrupt) == ("waiting", "a number, please")
    assert [x["resumed_at"] is None for x in store.interrupts(r.run_id)].count(True) == 1
    done = Runner(_ask_then_check(execs, retry=True), store).resume(r.run_id, "7")
    assert done.status == "completed", done.error
    assert done.state["answers"] == [7]


def test_resume_of_failed_run_after_bad_answer_asks_again(store: TraceStore) -> None:
    execs: dict[str, int] = {}
    r = Runner(_ask_then_check(execs, retry=False), store).run({})
    r = Runner(_ask_then_check(execs, retry=False), store).resume(r.run_id, "seven")
    assert r.status == "failed" and "not a number" in r.error
    r = Runner(_ask_then_check(execs, retry=False), store).resume(r.run_id)
    assert (r.status, r.interrupt) == ("waiting", "a number, please")
    done = Runner(_ask_then_check(execs, retry=False), store).resume(r.run_id, "7")
    assert done.status == "completed", done.error
    assert done.state["answers"] == [7]


def test_interrupt_after_failed_attempt_resumes_same_attempt(store: TraceStore, counter: Counter) -> None:
    from workbench import RetryPolicy

    seen: list[int] = []
    g = Graph("flaky_then_ask", S)

    @g.node(retry=RetryPolicy(attempts=3, initial_delay=0))
    def work(state: S, ctx: Any) -> dict[str, Any]:
        seen.append(ctx.attempt)
        text = ctx.llm(f"attempt {ctx.attempt}", model=MODEL).text
        if ctx.attempt == 1:
            raise ConnectionError("flaky")
        return {"reply": f"{text} / {interrupt('ok?')}"}

    g.sequence(START, "work", END)
    r = Runner(g, store).run({})
    assert r.status == "waiting"
    done = Runner(g, store).resume(r.run_id, "yes")
    assert done.status == "completed", done.error
    assert done.state["reply"] == "answer to attempt 2 / yes"
    assert seen == [1, 2, 2]
    assert counter.calls == ["attempt 1", "attempt 2"]
    rows = [(t["attempt"], t["status"]) for t in store.tasks(r.run_id)]
    assert rows == [(1, "failed"), (2, "interrupted"), (2, "completed")]


def test_llm_calls_inside_subgraph_not_repeated_on_resume(store: TraceStore, counter: Counter) -> None:
    sub = Graph("sub_llm", Inner)

    @sub.node
    def think(state: Inner, ctx: Any) -> dict[str, Any]:
        return {"answers": [ctx.llm("inner think", model=MODEL).text]}

    @sub.node
    def confirm(state: Inner) -> dict[str, Any]:
        return {"answers": [interrupt("confirm?")]}

    sub.sequence(START, "think", "confirm", END)
    g = Graph("outer_llm", S)
    g.add_node("sub_llm", sub)
    g.sequence(START, "sub_llm", END)
    r = Runner(g, store).run({})
    assert r.status == "waiting"
    done = Runner(g, store).resume(r.run_id, "confirmed")
    assert done.status == "completed", done.error
    assert done.state["answers"] == ["answer to inner think", "confirmed"]
    assert counter.calls == ["inner think"]


def test_interrupt_in_one_branch_of_subgraph_fanout(store: TraceStore) -> None:
    sub = Graph("per_item", Inner)

    @sub.node
    def decide(state: Inner) -> dict[str, Any]:
        q = state["question"]
        return {"answers": [f"{q}:{interrupt(q) if q == 'b' else 'auto'}"]}

    sub.sequence(START, "decide", END)
    g = Graph("fan_sub_hitl", S)
    g.add_node("plan", lambda s: None)
    g.add_node("per_item", sub)
    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("per_item", {"question": q}) for q in "abc"], targets=["per_item"])
    g.edge("per_item", END)
    r = Runner(g, store).run({})
    assert (r.status, r.interrupt) == ("waiting", "b")
    done = Runner(g, store).resume(r.run_id, "human")
    assert done.status == "completed", done.error
    assert done.state["answers"] == ["a:auto", "b:human", "c:auto"]

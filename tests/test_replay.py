"""Playback (a recorded run rebuilt from the store alone) and replay (today's code, recorded
answers, no live call) of the demo graphs, and divergence detection (issue 3, §1, §2).

"No live call" is proved, not assumed: during every replay the litellm entry points are
replaced by a refuser that records and fails any attempt, and the tools' side effects are
counted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, RetryPolicy, Runner, append, interrupt, tool
from workbench.errors import RunNotFoundError
from workbench.history import RunHistory, state_diff
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.store import TraceStore

REPO = Path(__file__).resolve().parents[1]

TECHNICAL = {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"}
REFUND_SMALL = {"message": "I was charged twice, I want a refund of $40", "customer_id": "C-1002"}
REFUND_BIG = {"message": "Please refund the $500 you took from me", "customer_id": "C-1003"}
QUESTION = {"question": "Should we use Postgres or DuckDB for analytics?"}


# --------------------------------------------------------------------------- helpers


class _Refuser:
    """Stands in for the litellm module: any use is recorded and fails."""

    def __init__(self, log: list[str]) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        self._log.append(name)
        raise AssertionError(f"live model call during replay (litellm.{name})")


def block_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on every attempt to reach a model is recorded in the returned list and fails."""
    import workbench.llm.client as client

    attempts: list[str] = []

    def refuse() -> Any:
        attempts.append("litellm_module")
        raise AssertionError("live model call during replay")

    monkeypatch.setattr(client, "litellm_module", refuse)
    monkeypatch.setattr(client, "_litellm", _Refuser(attempts))
    try:
        import litellm
    except ImportError:  # pragma: no cover
        return attempts

    def refuse_completion(*args: Any, **kwargs: Any) -> Any:
        attempts.append("completion")
        raise AssertionError("live model call during replay")

    monkeypatch.setattr(litellm, "completion", refuse_completion)
    monkeypatch.setattr(litellm, "acompletion", refuse_completion)
    return attempts


@pytest.fixture
def no_live_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """For the whole test: every attempt to reach a model is recorded and fails."""
    return block_models(monkeypatch)


class CountingAccounts(dict):  # type: ignore[type-arg]
    """The support graph's CRM, counting lookups (the tool's side effect)."""

    def __init__(self, data: dict[str, Any], fail_first: int = 0) -> None:
        super().__init__(data)
        self.lookups = 0
        self.fail_first = fail_first

    def get(self, key: Any, default: Any = None) -> Any:
        self.lookups += 1
        if self.lookups <= self.fail_first:
            raise ConnectionError("CRM unavailable")
        return super().get(key, default)


def count_crm(graph: Graph, fail_first: int = 0) -> CountingAccounts:
    """Replace the support graph module's ACCOUNTS with a counting copy."""
    module_globals = graph.nodes["fetch_account"].fn.__globals__  # type: ignore[union-attr]
    accounts = CountingAccounts(module_globals["ACCOUNTS"], fail_first)
    module_globals["ACCOUNTS"] = accounts
    return accounts


@pytest.fixture
def support_file(tmp_path: Path) -> Path:
    """A private copy of graphs/support.py (tests edit or delete it)."""
    dst = tmp_path / "g" / "support.py"
    dst.parent.mkdir()
    shutil.copy(REPO / "graphs" / "support.py", dst)
    return dst


def edit(path: Path, old: str, new: str) -> Graph:
    """Change the graph file (the text must be there) and load the new version."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return load_graph(str(path))


def steps_of(store: TraceStore, run_id: str) -> list[list[str]]:
    return [v.nodes for v in RunHistory(store, run_id).steps()]


# --------------------------------------------------------------------------- playback


def test_playback_reconstructs_every_step(store: TraceStore, support_file: Path) -> None:
    graph = load_graph(str(support_file))
    result = Runner(graph, store).run(REFUND_SMALL)
    assert result.status == "completed", result.error
    rid = result.run_id
    store.flush()
    # The graph file is gone: playback needs nothing but the store.
    support_file.unlink()
    history = RunHistory(store, rid)
    views = history.steps()
    assert [v.nodes for v in views] == [
        ["classify"], ["fetch_account"], ["retrieve_policy"], ["draft"], ["check"], ["draft"], ["check"], ["send"]
    ]
    assert history.last_step == 8
    prev: dict[str, Any] = dict(store.state_at(rid, 0))
    assert prev["message"] == REFUND_SMALL["message"]
    for v in views:
        assert v.owner == rid
        assert v.state_before == prev
        assert v.state_after == store.state_at(rid, v.step)
        # The diff is exactly what the node's update changed.
        [task] = v.tasks
        assert task["status"] == "completed"
        update = task["update"] or {}
        changed = {k for k, _, _ in v.diff()}
        assert changed <= set(update)
        for key, before, after in v.diff():
            assert before == prev.get(key)
            assert after == v.state_after[key]
        prev = v.state_after
    assert prev == {**result.state}
    # Calls: the model at classify and at each draft, the CRM tool at fetch_account.
    kinds = {v.step: [(c["kind"], c["model"]) for c in v.calls] for v in views}
    assert kinds[1] == [("llm", "workbench-demo/assistant")]
    assert kinds[2] == [("tool", "crm_lookup")]
    assert kinds[3] == [] and kinds[5] == [] and kinds[8] == []
    assert kinds[4] == kinds[6] == [("llm", "workbench-demo/assistant")]
    first_draft = views[3].calls[0]
    assert "guarantee" in first_draft["response"]["content"].lower()
    assert views[4].state_after["safety_issues"] == ["'guarantee'", "'full refund'"]
    assert "Safety feedback" in views[5].calls[0]["messages"][1]["content"]
    assert views[1].calls[0]["messages"] == {"customer_id": "C-1002"}
    assert views[1].calls[0]["response"]["name"] == "Grace Hopper"


def test_playback_of_a_failed_and_of_a_waiting_run(store: TraceStore, tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "graphs_replay" / "orders.py", tmp_path / "orders.py")
    graph = load_graph(str(tmp_path / "orders.py"))
    failed = Runner(graph, store).run({"items": []})
    waiting = Runner(graph, store).run({"items": ["melon"]})
    assert (failed.status, waiting.status) == ("failed", "waiting")
    (tmp_path / "orders.py").unlink()

    h = RunHistory(store, failed.run_id)
    assert h.last_step == 2
    bad = h.step(2)
    assert bad.nodes == ["stats"] and bad.state_after is None and bad.diff() == []
    [task] = bad.tasks
    assert task["status"] == "failed" and "ZeroDivisionError" in task["error"]
    assert "ZeroDivisionError" in task["traceback"]
    assert bad.state_before == h.step(1).state_after

    h = RunHistory(store, waiting.run_id)
    assert h.last_step == 3
    ask = h.step(3)
    assert ask.nodes == ["approve"] and ask.state_after is None
    [i] = ask.interrupts
    assert i["payload"] == {"question": "approve this order?", "total": 150.0} and i["resumed_at"] is None
    Runner(load_graph(str(REPO / "tests" / "graphs_replay" / "orders.py")), store).resume(waiting.run_id, True)
    ask = RunHistory(store, waiting.run_id).step(3)
    assert ask.interrupts[0]["response"] is True and ask.state_after is not None
    assert ask.state_after["approved"] is True


def test_state_diff_lists_changed_keys() -> None:
    assert state_diff({"a": 1, "b": [1]}, {"a": 1, "b": [1, 2], "c": None}) == [("b", [1], [1, 2])]


# --------------------------------------------------------------------------- replay: zero live calls


def test_refuser_catches_a_live_call(store: TraceStore, no_live_models: list[str]) -> None:
    """The proof below is not vacuous: with the refuser on, a live model call fails."""

    class S(TypedDict):
        x: str

    g = Graph("live", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        return {"x": ctx.llm("hello", model="workbench-demo/echo", retries=0).text}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    assert no_live_models


def test_replay_support_runs_with_zero_live_calls(project: Path, store: TraceStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    graph = load_graph("support")
    runner = Runner(graph, store)
    ids = [runner.run(TECHNICAL).run_id, runner.run(REFUND_SMALL).run_id]
    waited = runner.run(REFUND_BIG)
    assert waited.status == "waiting"
    still_waiting = runner.run({"message": "I want to speak to your manager", "customer_id": "C-1001"})
    assert still_waiting.status == "waiting"
    assert runner.resume(waited.run_id, {"reply": "A human will call you."}).status == "completed"
    ids += [waited.run_id, still_waiting.run_id]

    calls = block_models(monkeypatch)
    crm = count_crm(graph)
    for rid in ids:
        report = replay_run(store, rid, graph)
        assert report.identical, (rid, str(report.divergence))
        assert report.status == store.get_run(rid)["status"]
        assert report.changed_nodes == []
    assert calls == []
    assert crm.lookups == 0
    report = replay_run(store, waited.run_id, graph)
    assert report.steps == 4 and report.status == "completed"


def test_replay_research_with_zero_live_calls(project: Path, store: TraceStore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    graph = load_graph("research")
    result = Runner(graph, store).run(QUESTION)
    assert result.status == "completed", result.error
    assert any(len(nodes) > 1 for nodes in steps_of(store, result.run_id))  # a real fan-out
    attempts = block_models(monkeypatch)
    report = replay_run(store, result.run_id, graph)
    assert report.identical, str(report.divergence)
    assert report.steps == result.step and report.status == "completed"
    assert attempts == []


def test_replay_forks_with_zero_live_calls(project: Path, store: TraceStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    graph = load_graph("support")
    runner = Runner(graph, store)
    parent = runner.run(TECHNICAL)
    guarantee = runner.fork(parent.run_id, 4, llm_responses={1: "We guarantee this will be fixed today."})
    handoff = runner.fork(parent.run_id, 3, set_state={"category": "escalation"})
    assert guarantee.status == "completed" and guarantee.state["drafts"] == 2
    assert handoff.status == "waiting"
    grandchild = runner.fork(guarantee.run_id, 6, set_state={"draft": "A short, safe answer."})
    assert grandchild.status == "completed"

    attempts = block_models(monkeypatch)
    crm = count_crm(graph)
    for rid in (guarantee.run_id, handoff.run_id, grandchild.run_id):
        report = replay_run(store, rid, graph)
        assert report.identical, (rid, str(report.divergence))
    assert attempts == [] and crm.lookups == 0


def test_replay_of_a_run_with_retries(project: Path, store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_account fails once (the CRM is down) and is retried; replay serves the recorded answer."""
    graph = load_graph("support")
    crm = count_crm(graph, fail_first=1)
    result = Runner(graph, store).run(TECHNICAL)
    assert result.status == "completed", result.error
    tries = [(t["attempt"], t["status"]) for t in store.tasks(result.run_id, 2)]
    assert tries == [(1, "failed"), (2, "completed")]
    assert crm.lookups == 2
    tool_rows = store.query("SELECT attempt, error IS NULL FROM tool_calls WHERE run_id = ? ORDER BY attempt",
                            [result.run_id])
    assert tool_rows == [(1, False), (2, True)]

    attempts = block_models(monkeypatch)
    report = replay_run(store, result.run_id, graph)
    assert report.identical, str(report.divergence)
    assert attempts == [] and crm.lookups == 2


def test_replay_of_model_retries_and_fallbacks(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    class S(TypedDict):
        answer: str

    g = Graph("fallback", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        reply = ctx.llm("say hi", model="workbench-demo/rate-limited", fallbacks=["workbench-demo/echo"],
                        retries=1, backoff=0)
        return {"answer": f"{reply.model}: {reply.text}"}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "completed", result.error
    [row] = store.llm_calls(result.run_id)
    assert row["attempts"] == 3 and row["model"] == "workbench-demo/echo"
    attempts = block_models(monkeypatch)
    assert replay_run(store, result.run_id, g).identical
    assert attempts == []


def test_replay_of_a_retry_that_changes_its_request(store: TraceStore) -> None:
    class S(TypedDict):
        answer: str

    g = Graph("switch", S)

    @g.node(retry=RetryPolicy(attempts=2, initial_delay=0.0))
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        model = "workbench-demo/broken" if ctx.attempt == 1 else "workbench-demo/echo"
        return {"answer": ctx.llm("hello", model=model, retries=0).text}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "completed"
    assert [(t["attempt"], t["status"]) for t in store.tasks(result.run_id)] == [(1, "failed"), (2, "completed")]
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)


def test_replay_of_a_handled_model_failure(store: TraceStore) -> None:
    from workbench.errors import LLMError

    class S(TypedDict):
        answer: str

    g = Graph("handled", S)

    @g.node
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        try:
            return {"answer": ctx.llm("hello", model="workbench-demo/broken", retries=0).text}
        except LLMError:
            return {"answer": "fallback"}

    g.sequence(START, "ask", END)
    result = Runner(g, store).run({})
    assert result.status == "completed" and result.state["answer"] == "fallback"
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)


def test_replay_of_a_failed_run_reproduces_the_failure(store: TraceStore, tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "graphs_replay" / "orders.py", tmp_path / "orders.py")
    graph = load_graph(str(tmp_path / "orders.py"))
    failed = Runner(graph, store).run({"items": []})
    assert failed.status == "failed"
    report = replay_run(store, failed.run_id, graph)
    assert report.identical, str(report.divergence)
    assert report.status == "failed"
    fixed = edit(tmp_path / "orders.py", "/ len(state[\"items\"])  # BUG: an order without items",
                 "/ len(state[\"items\"]) if state[\"items\"] else 0.0")
    report = replay_run(store, failed.run_id, fixed)
    assert not report.identical
    assert report.divergence.step == 2 and report.divergence.node == "stats"
    assert report.changed_nodes == ["stats"]


def test_replay_unknown_run(store: TraceStore) -> None:
    graph = load_graph(str(REPO / "tests" / "graphs_replay" / "orders.py"))
    with pytest.raises(RunNotFoundError):
        replay_run(store, "nope", graph)


# --------------------------------------------------------------------------- divergence


@pytest.fixture
def technical_run(store: TraceStore, support_file: Path) -> str:
    graph = load_graph(str(support_file))
    result = Runner(graph, store).run(TECHNICAL)
    assert result.status == "completed", result.error
    assert steps_of(store, result.run_id) == [["classify"], ["fetch_account"], ["retrieve_policy"], ["draft"],
                                               ["check"], ["send"]]
    assert replay_run(store, result.run_id, graph).identical
    return result.run_id


def test_changed_prompt_is_a_request_divergence(store: TraceStore, support_file: Path, technical_run: str,
                                                no_live_models: list[str]) -> None:
    graph = edit(support_file, "You draft a short, friendly support reply.", "You draft a short, warm support reply.")
    report = replay_run(store, technical_run, graph)
    assert not report.identical
    d = report.divergence
    assert (d.kind, d.step, d.node) == ("request", 4, "draft")
    assert "-" in d.diff and "+" in d.diff
    removed = [ln for ln in d.diff.splitlines() if ln.startswith("-") and "friendly" in ln]
    added = [ln for ln in d.diff.splitlines() if ln.startswith("+") and "warm" in ln]
    assert removed and added, d.diff
    assert report.changed_nodes == ["draft"]
    assert report.steps == 4
    assert "draft" in str(d) and "step 4" in str(d)
    assert no_live_models == []
    # Playback does not depend on the graph file: the recording still reads the same.
    assert steps_of(store, technical_run)[3] == ["draft"]
    assert "friendly" in RunHistory(store, technical_run).step(4).calls[0]["messages"][0]["content"]


def test_a_request_that_differs_only_in_its_model_points_at_the_configuration(
        store: TraceStore, support_file: Path, technical_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run recorded with one configured model and replayed where another is configured
    diverged with "the request differs" and nothing pointing at the setting."""
    monkeypatch.setenv("WORKBENCH_MODEL", "workbench-demo/echo")
    report = replay_run(store, technical_run, load_graph(str(support_file)))
    assert report.divergence is not None and report.divergence.kind == "request"
    assert ("(model workbench-demo/echo now, workbench-demo/assistant recorded: check WORKBENCH_MODEL and "
            "[llm] model in workbench.toml where it was recorded)") in report.divergence.message
    monkeypatch.delenv("WORKBENCH_MODEL")
    graph = edit(support_file, "You draft a short, friendly support reply.", "You draft a short, warm support reply.")
    assert "WORKBENCH_MODEL" not in replay_run(store, technical_run, graph).divergence.message  # type: ignore[union-attr]


def test_changed_update_is_an_update_divergence(store: TraceStore, support_file: Path, technical_run: str,
                                                no_live_models: list[str]) -> None:
    graph = edit(support_file, 'return {"policies": [POLICIES[state["category"]]]}',
                 'return {"policies": [POLICIES[state["category"]].upper()]}')
    report = replay_run(store, technical_run, graph)
    d = report.divergence
    assert d is not None and (d.kind, d.step, d.node) == ("update", 3, "retrieve_policy")
    assert "SUGGEST A PASSWORD RESET" in d.diff and "Suggest a password reset" in d.diff
    assert report.changed_nodes == ["retrieve_policy"]
    assert no_live_models == []


def test_changed_routing_is_a_path_divergence(store: TraceStore, support_file: Path, technical_run: str,
                                              no_live_models: list[str]) -> None:
    graph = edit(support_file, '        return "handoff"\n    return "draft"', '        return "handoff"\n'
                 '    return "handoff"')
    report = replay_run(store, technical_run, graph)
    d = report.divergence
    assert d is not None and (d.kind, d.step) == ("path", 4)
    assert "handoff" in d.message and "draft" in d.message
    assert no_live_models == []


def test_extra_tool_call_is_an_extra_call_divergence(store: TraceStore, support_file: Path, technical_run: str,
                                                     no_live_models: list[str]) -> None:
    graph = edit(support_file, '    return {"reply": state["draft"], "handled_by": "assistant"}',
                 '    crm_lookup(state["customer_id"])\n'
                 '    return {"reply": state["draft"], "handled_by": "assistant"}')
    crm = count_crm(graph)
    report = replay_run(store, technical_run, graph)
    d = report.divergence
    assert d is not None and (d.kind, d.step, d.node) == ("extra_call", 6, "send")
    assert "crm_lookup" in d.message
    assert crm.lookups == 0  # the extra call was not made live either
    assert no_live_models == []


def test_extra_model_call_is_an_extra_call_divergence(store: TraceStore, support_file: Path, technical_run: str,
                                                      no_live_models: list[str]) -> None:
    graph = edit(support_file, '    category = answer.text.strip().lower()\n',
                 '    category = answer.text.strip().lower()\n    ctx.llm("Are you sure?")\n')
    report = replay_run(store, technical_run, graph)
    d = report.divergence
    assert d is not None and (d.kind, d.step, d.node) == ("extra_call", 1, "classify")
    assert "call 2" in d.message
    assert no_live_models == []


def test_unchanged_code_elsewhere_in_the_file_is_still_identical(store: TraceStore, support_file: Path,
                                                                technical_run: str,
                                                                no_live_models: list[str]) -> None:
    graph = edit(support_file, "MAX_DRAFTS = 3\n", "MAX_DRAFTS = 3\n# a comment added later\n")
    report = replay_run(store, technical_run, graph)
    assert report.identical and report.changed_nodes == []
    assert no_live_models == []


def test_dropped_call_is_a_divergence(store: TraceStore, support_file: Path, technical_run: str) -> None:
    graph = edit(support_file, '    return {"account": crm_lookup(state["customer_id"] or "anonymous")}',
                 '    return {"account": {"id": "C-1001", "name": "Ada Lovelace", "tier": "pro", '
                 '"open_tickets": 0}}')
    report = replay_run(store, technical_run, graph)
    assert not report.identical
    assert report.divergence.step == 2 and report.divergence.node == "fetch_account"


# --------------------------------------------------------------------------- tools and interrupts in replay


class T(TypedDict):
    item: str
    value: int
    approved: Any
    log: Annotated[list[str], append]


def test_replay_serves_tools_and_interrupt_answers(store: TraceStore) -> None:
    executed: list[str] = []

    @tool
    def stock(item: str) -> int:
        executed.append(item)
        return 7

    g = Graph("stockcheck", T)

    @g.node
    def look(state: T) -> dict[str, Any]:
        return {"value": stock(state["item"]), "log": ["looked"]}

    @g.node
    def ask(state: T) -> dict[str, Any]:
        return {"approved": interrupt({"value": state["value"]}), "log": ["asked"]}

    g.sequence(START, "look", "ask", END)
    runner = Runner(g, store)
    result = runner.run({"item": "bolt"})
    assert result.status == "waiting"
    assert runner.resume(result.run_id, {"ok": True}).status == "completed"
    assert executed == ["bolt"]
    report = replay_run(store, result.run_id, g)
    assert report.identical, str(report.divergence)
    assert executed == ["bolt"]


def _question_graph(question: str) -> Graph:
    g = Graph("questions", T)

    @g.node
    def ask(state: T) -> dict[str, Any]:
        return {"approved": interrupt({"question": question, "item": state["item"]}), "log": ["asked"]}

    g.sequence(START, "ask", END)
    return g


def test_a_question_that_changed_is_a_divergence_not_served_the_old_answer(store: TraceStore) -> None:
    """A human approved "Ship bolt?"; the code now asks "Delete bolt?". The replay served the
    approval to the new question and said "replays identically". It is a divergence now; an
    unchanged question, or a payload whose keys come in another order, replays identically."""
    runner = Runner(_question_graph("Ship it?"), store)
    waiting = runner.run({"item": "bolt"})
    assert runner.resume(waiting.run_id, {"ok": True}).status == "completed"
    assert replay_run(store, waiting.run_id, _question_graph("Ship it?")).identical
    report = replay_run(store, waiting.run_id, _question_graph("Delete it?"))
    assert not report.identical and report.divergence is not None
    div = report.divergence
    assert (div.kind, div.step, div.node) == ("question", 1, "ask")
    assert "question 1 now asks something else" in div.message
    assert "Ship it?" in div.diff and "Delete it?" in div.diff

    reordered = Graph("questions", T)

    @reordered.node
    def ask(state: T) -> dict[str, Any]:
        return {"approved": interrupt({"item": state["item"], "question": "Ship it?"}), "log": ["asked"]}

    reordered.sequence(START, "ask", END)
    assert replay_run(store, waiting.run_id, reordered).identical


# --------------------------------------------------------------------------- how the run ends (issue 7, item 10)


class E(TypedDict):
    x: int
    log: Annotated[list[str], append]


def ends_graph(end_after_a: bool = False, b_fails: bool = False, gate_in_b: bool = False) -> Graph:
    """``a → (b if x > 0 else END) → END``; variants end after ``a``, fail in ``b`` or ask in ``b``."""
    g = Graph("ends", E)

    @g.node
    def a(state: E) -> dict[str, Any]:
        return {"log": ["a"]}

    @g.node
    def b(state: E) -> dict[str, Any]:
        if b_fails:
            raise ValueError("b broke")
        if gate_in_b:
            interrupt({"ok?": state["x"]})
        return {"log": ["b"]}

    g.edge(START, "a")
    g.route("a", lambda s: END if end_after_a or s["x"] <= 0 else "b", targets=["b", END])
    g.edge("b", END)
    return g


def test_a_run_that_now_ends_earlier_diverges(store: TraceStore) -> None:
    recorded = Runner(ends_graph(), store).run({"x": 1})
    assert recorded.status == "completed" and recorded.step == 2
    assert replay_run(store, recorded.run_id, ends_graph()).identical
    report = replay_run(store, recorded.run_id, ends_graph(end_after_a=True))
    assert not report.identical
    d = report.divergence
    assert (d.kind, d.step, d.node) == ("end", 1, None)
    assert d.message == "the run now ends completed after step 1; the recording went on to step 2 (b)"
    assert report.steps == 1 and report.status == "completed"


def test_a_run_that_now_goes_on_diverges(store: TraceStore) -> None:
    recorded = Runner(ends_graph(end_after_a=True), store).run({"x": 1})
    assert recorded.status == "completed" and recorded.step == 1
    report = replay_run(store, recorded.run_id, ends_graph())
    assert not report.identical
    assert (report.divergence.kind, report.divergence.step) == ("path", 2)
    assert "goes on to b" in report.divergence.message


def test_a_run_that_now_ends_earlier_than_a_failed_or_waiting_recording_diverges(store: TraceStore) -> None:
    failed = Runner(ends_graph(b_fails=True), store).run({"x": 1})
    assert failed.status == "failed" and failed.step == 2
    assert replay_run(store, failed.run_id, ends_graph(b_fails=True)).identical
    report = replay_run(store, failed.run_id, ends_graph(end_after_a=True))
    assert report.divergence is not None and report.divergence.kind == "end"
    assert report.divergence.message == "the run now ends completed after step 1; the recording went on to step 2 (b)"

    waiting = Runner(ends_graph(gate_in_b=True), store).run({"x": 1})
    assert waiting.status == "waiting" and waiting.step == 2
    assert replay_run(store, waiting.run_id, ends_graph(gate_in_b=True)).identical
    report = replay_run(store, waiting.run_id, ends_graph(end_after_a=True, gate_in_b=True))
    assert report.divergence is not None and report.divergence.kind == "end"
    assert "went on to step 2 (b)" in report.divergence.message


def test_paused_and_crashed_recordings_still_replay(store: TraceStore) -> None:
    runner = Runner(ends_graph(), store)
    paused = runner.run({"x": 1}, break_before=["b"])
    assert paused.status == "paused"
    report = replay_run(store, paused.run_id, ends_graph())
    assert report.identical, str(report.divergence)
    assert report.status == "paused" and report.steps == 1
    after = runner.run({"x": 1}, break_after=["a"])
    assert after.status == "paused"
    assert replay_run(store, after.run_id, ends_graph()).identical
    # Paused after the last step: nothing was planned next, the run would end there.
    at_end = runner.run({"x": 1}, break_after=["b"])
    assert at_end.status == "paused"
    report = replay_run(store, at_end.run_id, ends_graph())
    assert report.identical, str(report.divergence)
    assert report.status == "paused" and report.steps == 2
    assert replay_run(store, at_end.run_id, ends_graph(end_after_a=True)).divergence is not None
    # A recording that stops before b: ending after a is not a divergence the recording can show.
    assert replay_run(store, paused.run_id, ends_graph(end_after_a=True)).divergence is not None


def test_the_same_nodes_given_other_inputs_are_named_as_such(store: TraceStore) -> None:
    """A divergence in what the planned nodes are given (a Send's argument) says so, rather
    than 'takes [work, work]; the recording took [work, work]'."""
    from workbench import Send

    def fan(upper: bool) -> Graph:
        g = Graph("fan_inputs", T)
        g.add_node("work", lambda item: {"log": [item]})
        g.route(START, lambda s: [Send("work", x.upper() if upper else x) for x in ("a", "b")], targets=["work"])
        g.edge("work", END)
        return g

    rid = Runner(fan(False), store).run({}).run_id
    report = replay_run(store, rid, fan(True))
    assert report.divergence is not None and report.divergence.kind == "path"
    assert report.divergence.message.startswith("the run now takes [work, work] with other inputs")


class N(TypedDict):
    n: int


def _looping(name: str, limit: int) -> Graph:
    g = Graph(name, N, max_steps=limit)
    g.add_node("inc", lambda s: {"n": s["n"] + 1})
    g.edge(START, "inc")
    g.route("inc", lambda s: "inc" if s["n"] < 5 else END, targets=["inc", END])
    return g


def test_a_run_stopped_by_its_step_limit_replays_identically(store: TraceStore) -> None:
    """It stopped before a step it had planned, and so does its replay (which said 'the recording
    went on to step 4'); inside a subgraph too, whose limit is its graph's own."""
    g = _looping("limit", 3)
    failed = Runner(g, store).run({"n": 0})
    assert failed.status == "failed" and "step limit of 3" in (failed.error or "")
    assert replay_run(store, failed.run_id, g).identical

    outer = Graph("limit_outer", N)
    outer.add_node("sub", _looping("limit_inner", 3))
    outer.sequence(START, "sub", END)
    nested = Runner(outer, store).run({"n": 0})
    assert nested.status == "failed"
    assert "the subgraph's run reached its step limit of 3" in (nested.error or "")
    assert "--max-steps" not in (nested.error or "")  # resume --max-steps raises the root's limit only
    assert replay_run(store, nested.run_id, outer).identical


def test_a_replayed_node_sees_the_run_id_it_was_recorded_under(store: TraceStore) -> None:
    """ctx.run_id in a replay is the recorded one (the run's, a fork's parent's before the fork
    step, a subgraph's child run's), so a request built from it (an idempotency key) matches."""
    seen: list[str] = []

    @tool
    def effect(key: str) -> str:
        seen.append(key)
        return "done"

    def node(name: str) -> Any:
        return lambda state, ctx: {"log": [effect(f"{ctx.run_id}:{name}")]}

    inner = Graph("ids_inner", T)
    inner.add_node("deep", node("deep"))
    inner.sequence(START, "deep", END)
    g = Graph("ids", T)
    g.add_node("a", node("a"))
    g.add_node("sub", inner)
    g.add_node("b", node("b"))
    g.sequence(START, "a", "sub", "b", END)
    runner = Runner(g, store)
    parent = runner.run({})
    fork = runner.fork(parent.run_id, 3)
    assert seen[-1] == f"{fork.run_id}:b" and seen[1] == f"{parent.run_id}/2.0.0:deep"
    for rid in (parent.run_id, fork.run_id):
        assert replay_run(store, rid, g).identical, rid


class Both(TypedDict):
    notes: Annotated[list[str], append]


def _both(b_body: Any, c_body: Any) -> Graph:
    g = Graph("both", Both)
    g.add_node("a", lambda s: {"notes": ["a"]})
    g.add_node("b", b_body)
    g.add_node("c", c_body)
    g.edge(START, "a")
    for n in ("b", "c"):
        g.edge("a", n)
        g.edge(n, END)
    return g


def test_a_run_that_died_inside_a_step_a_branch_finished_replays_to_there(tmp_path: Path) -> None:
    """The process died in step 2 after branch c had finished, branch b in flight. Replay said
    "diverged: node now completed; the recording has it not recorded" for b; the recording ends
    inside the step, and so does the replay ("ends running": interrupted), once c agrees."""
    import threading

    c_done = threading.Event()

    def c(state: Both) -> dict[str, Any]:
        c_done.set()
        return {"notes": ["c"]}

    def b_dies(state: Both) -> dict[str, Any]:
        assert c_done.wait(timeout=30)
        raise KeyboardInterrupt  # the process stops here, c recorded, b not

    db = str(tmp_path / "t.duckdb")
    with TraceStore(db) as store, pytest.raises(KeyboardInterrupt):
        Runner(_both(b_dies, c), store).run({})
    with TraceStore(db) as store:
        [run] = store.list_runs()
        assert store.query("SELECT node, status FROM steps WHERE run_id = ? AND step = 2",
                           [run["run_id"]]) == [("c", "completed")]
        today = _both(lambda s: {"notes": ["b"]}, c)
        report = replay_run(store, run["run_id"], today)
        assert report.identical and report.status == "running" and report.steps == 1, report.divergence
        # What c recorded is still checked: a c that now does otherwise diverges.
        other = replay_run(store, run["run_id"], _both(lambda s: {"notes": ["b"]}, lambda s: {"notes": ["C!"]}))
        assert not other.identical and other.divergence.node == "c"

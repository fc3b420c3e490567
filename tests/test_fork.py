"""Fork a recorded run from any step, with edits (issue 3, §3), through the library.

A fork is a new run linked to its parent (runs.parent_run_id, runs.fork_step = STEP - 1) that
shares the parent's history before STEP without copying it, applies the edits (state keys, a
recorded model answer at STEP) and continues live with the current code.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from workbench import Runner, append
from workbench.errors import InputError, RunStateError, WorkbenchError
from workbench.history import RunHistory
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.store import TraceStore

REPO = Path(__file__).resolve().parents[1]
ORDERS = REPO / "tests" / "graphs_replay" / "orders.py"
BUG = 'average = state["total"] / len(state["items"])  # BUG: an order without items'
FIX = 'average = state["total"] / len(state["items"]) if state["items"] else 0.0'
TECHNICAL = {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"}
TABLES = ("wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_llm_calls", "wb_interrupts", "wb_events")


@pytest.fixture
def orders_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "g" / "orders.py"
    path.parent.mkdir()
    shutil.copy(ORDERS, path)
    monkeypatch.setenv("WB_TOOL_LOG", str(tmp_path / "tool.log"))
    return path


@pytest.fixture
def orders(orders_file: Path) -> Any:
    return load_graph(str(orders_file))


def tool_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "tool.log"
    return log.read_text().splitlines() if log.exists() else []


def counts(store: TraceStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def run_row(store: TraceStore, run_id: str) -> dict[str, Any]:
    return store.query_dicts("SELECT * FROM runs WHERE run_id = ?", [run_id])[0]


def sql_state_at(store: TraceStore, run_id: str, step: int) -> dict[str, Any]:
    import json

    [(state,)] = store.query("SELECT state FROM state_at(?, ?)", [run_id, step])
    return json.loads(state) if state else {}


# --------------------------------------------------------------------------- linking and sharing


def test_fork_links_to_its_parent_and_shares_history(store: TraceStore, orders: Any, tmp_path: Path) -> None:
    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple", "pear"]})
    assert parent.status == "completed" and parent.step == 3
    assert tool_log(tmp_path) == ["apple", "pear"]
    before = counts(store)

    fork = runner.fork(parent.run_id, 2)
    assert fork.status == "completed" and fork.run_id != parent.run_id
    assert fork.state == parent.state
    # Step 1 (the tool calls) is shared, not run again.
    assert tool_log(tmp_path) == ["apple", "pear"]

    row = run_row(store, fork.run_id)
    assert row["parent_run_id"] == parent.run_id and row["fork_step"] == 1
    assert row["status"] == "completed" and row["graph"] == "orders"
    assert run_row(store, parent.run_id)["parent_run_id"] is None

    # Only the fork's own steps are stored for it: nothing before its fork point.
    own_steps = store.query("SELECT DISTINCT step FROM steps WHERE run_id = ? ORDER BY step", [fork.run_id])
    assert [s for (s,) in own_steps] == [2, 3]
    own_changes = store.query("SELECT min(step) FROM state_changes WHERE run_id = ?", [fork.run_id])[0][0]
    assert own_changes == 2
    assert store.query("SELECT min(step) FROM supersteps WHERE run_id = ?", [fork.run_id])[0][0] == 2
    assert store.query("SELECT count(*) FROM tool_calls WHERE run_id = ?", [fork.run_id])[0][0] == 0
    after = counts(store)
    assert after["wb_tasks"] - before["wb_tasks"] == 2
    assert after["wb_changes"] - before["wb_changes"] < before["wb_changes"]

    for k in (0, 1):
        assert store.state_at(fork.run_id, k) == store.state_at(parent.run_id, k)
        assert sql_state_at(store, fork.run_id, k) == sql_state_at(store, parent.run_id, k)
    for k in (2, 3):
        assert store.state_at(fork.run_id, k) == store.state_at(parent.run_id, k)

    # Playback of the fork shows the whole run, the shared steps owned by the parent.
    history = RunHistory(store, fork.run_id)
    assert [v.nodes for v in history.steps()] == [["price"], ["stats"], ["confirm"]]
    assert [v.owner for v in history.steps()] == [parent.run_id, fork.run_id, fork.run_id]
    assert history.step(1).calls and history.step(1).calls[0]["model"] == "price_lookup"
    events = [e for e in store.events(fork.run_id) if e["kind"] == "forked"]
    assert events and events[0]["detail"]["parent"] == parent.run_id


def test_fork_with_state_edits_reaches_another_branch(store: TraceStore, orders: Any, tmp_path: Path) -> None:
    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple"]})
    assert parent.status == "completed" and parent.state["status"] == "confirmed"
    fork = runner.fork(parent.run_id, 2, set_state={"items": ["melon"], "total": 150.0})
    assert fork.status == "waiting"
    assert fork.interrupt == {"question": "approve this order?", "total": 150.0}
    # The edits are the fork's only rows at its fork step.
    edits = store.query("SELECT key, op, value FROM state_changes WHERE run_id = ? AND step = 1 ORDER BY key",
                        [fork.run_id])
    assert edits == [("items", "set", '["melon"]'), ("total", "set", "150.0")]
    assert store.query("SELECT min(step) FROM state_changes WHERE run_id = ?", [fork.run_id])[0][0] == 1
    assert store.state_at(fork.run_id, 0) == store.state_at(parent.run_id, 0)
    edited = {**store.state_at(parent.run_id, 1), "items": ["melon"], "total": 150.0}
    assert store.state_at(fork.run_id, 1) == edited
    assert sql_state_at(store, fork.run_id, 1) == edited
    # The parent is untouched.
    assert store.get_run(parent.run_id)["status"] == "completed"
    assert store.state_at(parent.run_id, 1)["total"] == 2.0

    done = runner.resume(fork.run_id, True)
    assert done.status == "completed" and done.state["approved"] is True
    assert done.state["log"] == ["priced", "stats", "approval", "confirmed"]
    assert replay_run(store, fork.run_id, orders).identical


def test_fork_at_step_one_reruns_from_the_input(store: TraceStore, orders: Any, tmp_path: Path) -> None:
    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple"]})
    fork = runner.fork(parent.run_id, 1, set_state={"items": ["pear"]})
    assert fork.status == "completed" and fork.state["prices"] == {"pear": 3.0}
    assert run_row(store, fork.run_id)["fork_step"] == 0
    assert tool_log(tmp_path) == ["apple", "pear"]


# --------------------------------------------------------------------------- model answer edits


def test_edited_model_answer_makes_the_check_fail_and_redraft(project: Path, store: TraceStore) -> None:
    graph = load_graph("support")
    runner = Runner(graph, store)
    parent = runner.run(TECHNICAL)
    assert parent.status == "completed" and parent.state["drafts"] == 1
    draft_step = 4
    assert RunHistory(store, parent.run_id).step(draft_step).nodes == ["draft"]

    fork = runner.fork(parent.run_id, draft_step, llm_responses={1: "We guarantee it works tomorrow."})
    assert fork.status == "completed", fork.error
    assert fork.state["drafts"] == 2
    assert "guarantee" not in fork.state["reply"].lower()
    history = RunHistory(store, fork.run_id)
    assert [v.nodes for v in history.steps()][3:] == [["draft"], ["check"], ["draft"], ["check"], ["send"]]
    assert history.step(4).calls[0]["response"]["content"] == "We guarantee it works tomorrow."
    assert history.step(4).state_after["draft"] == "We guarantee it works tomorrow."
    assert history.step(5).state_after["safety_issues"] == ["'guarantee'"]
    # The parent's recorded answer is untouched.
    parent_call = RunHistory(store, parent.run_id).step(4).calls[0]
    assert "guarantee" not in parent_call["response"]["content"]
    assert run_row(store, fork.run_id)["fork_step"] == 3


def test_state_edit_reaches_the_human_handoff(project: Path, store: TraceStore) -> None:
    graph = load_graph("support")
    runner = Runner(graph, store)
    parent = runner.run(TECHNICAL)
    fork = runner.fork(parent.run_id, 3, set_state={"category": "escalation"})
    assert fork.status == "waiting"
    assert fork.interrupt["category"] == "escalation"
    assert store.get_run(fork.run_id)["status"] == "waiting"
    done = runner.resume(fork.run_id, {"reply": "A manager will call you."})
    assert done.status == "completed" and done.state["handled_by"] == "human"


def test_llm_response_numbers_count_across_parallel_tasks(project: Path, store: TraceStore) -> None:
    graph = load_graph("research")
    runner = Runner(graph, store)
    parent = runner.run({"question": "Should we use Postgres or DuckDB for analytics?"})
    assert parent.status == "completed"
    step2 = RunHistory(store, parent.run_id).step(2)
    assert step2.nodes == ["research", "research"] and len(step2.calls) == 2
    fork = runner.fork(parent.run_id, 2, llm_responses={2: "EDITED NOTE"})
    assert fork.status == "completed"
    assert fork.state["notes"][1] == "EDITED NOTE"
    assert fork.state["notes"][0] == parent.state["notes"][0]
    assert "EDITED NOTE" in fork.state["report"]
    before = counts(store)
    with pytest.raises(InputError, match="model call"):
        runner.fork(parent.run_id, 2, llm_responses={3: "too far"})
    with pytest.raises(InputError):
        runner.fork(parent.run_id, 2, llm_responses={0: "zero"})
    with pytest.raises(InputError):
        runner.fork(parent.run_id, 3, llm_responses={2: "write has one call"})
    assert counts(store) == before


# --------------------------------------------------------------------------- forks of forks, waiting and paused runs


def test_forks_of_forks(store: TraceStore, orders: Any, tmp_path: Path) -> None:
    runner = Runner(orders, store)
    a = runner.run({"items": ["apple"]})
    b = runner.fork(a.run_id, 2, set_state={"total": 500.0})
    assert b.status == "waiting"
    b_done = runner.resume(b.run_id, False)
    assert b_done.state["status"] == "rejected"
    c = runner.fork(b.run_id, 4, set_state={"approved": True})
    assert c.status == "completed" and c.state["status"] == "confirmed"
    assert run_row(store, c.run_id)["parent_run_id"] == b.run_id
    assert run_row(store, c.run_id)["fork_step"] == 3
    assert store.lineage(c.run_id) == [(c.run_id, 2**31 - 1), (b.run_id, 3), (a.run_id, 1)]
    history = RunHistory(store, c.run_id)
    assert [v.owner for v in history.steps()] == [a.run_id, b.run_id, b.run_id, c.run_id]
    assert [v.nodes for v in history.steps()] == [["price"], ["stats"], ["approve"], ["confirm"]]
    assert store.state_at(c.run_id, 1) == store.state_at(b.run_id, 1)
    assert store.state_at(c.run_id, 0) == store.state_at(a.run_id, 0)
    assert store.state_at(c.run_id, 2) == store.state_at(b.run_id, 2)
    assert sql_state_at(store, c.run_id, 2) == store.state_at(b.run_id, 2)
    assert store.state_at(c.run_id, 2)["total"] == 500.0
    # The fork's only own rows: the edit at step 3, then step 4.
    own = store.query("SELECT DISTINCT step FROM state_changes WHERE run_id = ? ORDER BY step", [c.run_id])
    assert [s for (s,) in own] == [3, 4]
    assert tool_log(tmp_path) == ["apple"]

    # A fork of a fork taken inside the grandparent's shared history.
    d = runner.fork(c.run_id, 2, set_state={"total": 1.0})
    assert d.status == "completed" and d.state["status"] == "confirmed"
    assert store.state_at(d.run_id, 0) == store.state_at(a.run_id, 0)
    for rid in (b.run_id, c.run_id):
        assert replay_run(store, rid, orders).identical, rid


def test_replay_of_a_fork_of_a_fork_at_the_same_step(store: TraceStore, orders: Any) -> None:
    runner = Runner(orders, store)
    a = runner.run({"items": ["apple"]})
    b = runner.fork(a.run_id, 2, set_state={"total": 500.0})
    c = runner.fork(b.run_id, 2, set_state={"total": 1.0})
    assert c.status == "completed" and c.state["average"] == 1.0
    assert store.state_at(c.run_id, 1)["total"] == 1.0
    report = replay_run(store, c.run_id, orders)
    assert report.identical, str(report.divergence)


def test_fork_a_waiting_run(store: TraceStore, orders: Any) -> None:
    runner = Runner(orders, store)
    waiting = runner.run({"items": ["melon"]})
    assert waiting.status == "waiting" and waiting.step == 3
    again = runner.fork(waiting.run_id, 3)
    assert again.status == "waiting"
    assert store.get_run(waiting.run_id)["status"] == "waiting"
    assert runner.resume(again.run_id, True).state["status"] == "confirmed"
    # The parent still waits for its own answer.
    assert runner.resume(waiting.run_id, False).state["status"] == "rejected"
    cheaper = runner.fork(waiting.run_id, 2, set_state={"total": 3.0})
    assert cheaper.status == "completed" and cheaper.state["status"] == "confirmed"


def test_fork_a_paused_run(store: TraceStore, orders: Any) -> None:
    runner = Runner(orders, store)
    paused = runner.run({"items": ["apple"]}, break_before=["confirm"])
    assert paused.status == "paused" and paused.step == 3
    # A fork is a fresh live run: it does not inherit the parent's breakpoints ...
    free = runner.fork(paused.run_id, 3, set_state={"total": 9.0})
    assert free.status == "completed" and free.state["total"] == 9.0
    assert free.state["log"] == ["priced", "stats", "confirmed"]
    # ... but can be given its own.
    stopped = runner.fork(paused.run_id, 2, set_state={"total": 9.0}, break_before=["confirm"])
    assert stopped.status == "paused" and stopped.state["total"] == 9.0
    assert runner.resume(stopped.run_id).status == "completed"
    assert store.get_run(paused.run_id)["status"] == "paused"
    assert runner.resume(paused.run_id).status == "completed"


def test_fork_at_the_failed_step_after_a_fix(store: TraceStore, orders_file: Path, orders: Any) -> None:
    failed = Runner(orders, store).run({"items": []})
    assert failed.status == "failed"
    at = store.get_run(failed.run_id)["last_step"]
    assert at == 2
    # Same code: fails again at the same step.
    again = Runner(orders, store).fork(failed.run_id, at)
    assert again.status == "failed" and "ZeroDivisionError" in again.error
    orders_file.write_text(orders_file.read_text().replace(BUG, FIX))
    fixed = load_graph(str(orders_file))
    fork = Runner(fixed, store).fork(failed.run_id, at)
    assert fork.status == "completed" and fork.state["average"] == 0.0
    assert replay_run(store, fork.run_id, fixed).identical
    report = replay_run(store, fork.run_id, orders)
    assert not report.identical and report.divergence.step == 2


# --------------------------------------------------------------------------- code version


def test_fork_records_the_current_code_version(store: TraceStore, orders_file: Path, orders: Any) -> None:
    parent = Runner(orders, store).run({"items": ["apple"]})
    orders_file.write_text(orders_file.read_text().replace('"log": ["confirmed"]', '"log": ["confirmed v2"]'))
    changed = load_graph(str(orders_file))
    fork = Runner(changed, store).fork(parent.run_id, 2)
    assert fork.state["log"][-1] == "confirmed v2"
    p, f = store.get_run(parent.run_id), store.get_run(fork.run_id)
    assert run_row(store, parent.run_id)["code_version"] != run_row(store, fork.run_id)["code_version"]
    diff = sorted(n for n in p["node_versions"] if p["node_versions"][n] != f["node_versions"][n])
    assert diff == ["confirm"]
    assert replay_run(store, fork.run_id, changed).changed_nodes == []
    report = replay_run(store, parent.run_id, changed)
    assert report.changed_nodes == ["confirm"]
    assert report.divergence is not None and report.divergence.kind == "update" and report.divergence.step == 3


# --------------------------------------------------------------------------- invalid edits


@pytest.mark.parametrize(("at", "options", "match"), [
    (2, {"set_state": {"nope": 1}}, "set_state.*nope"),
    (2, {"set_state": {"total": "a lot"}}, "total"),
    (2, {"set_state": {"items": "apple"}}, "items"),
    (2, {"set_state": {"total": object()}}, "total"),
    (2, {"llm_responses": {1: "no model call at this step"}}, "llm_responses: .*model call"),
    (2, {"llm_responses": {"1": "a string key"}}, "llm_responses: number the model calls 1, 2, .* got '1'"),
    (2, {"llm_responses": {True: "a bool key"}}, "got True"),
    (2, {"llm_responses": {1: {"role": "assistant"}}}, "llm_responses 1: the answer is the model's text, got dict"),
    (0, {}, "at_step 0 is out of range"),
    (6, {}, "out of range"),
    (-1, {}, "out of range"),
    ("2/nope/1", {}, "at_step: step 2 of run .* does not run 'nope'"),
    (True, {}, "at_step: give a step number or an address like '3/review/2', got True"),
    (2, {"set_state": [1]}, "set_state: give an object of state key to value, got list"),
    (2, {"llm_responses": [(1, "x")]}, "llm_responses: give an object of call number to answer text, got list"),
])
def test_invalid_edits_are_refused_and_record_nothing(store: TraceStore, orders: Any, at: Any,
                                                      options: dict[str, Any], match: str) -> None:
    """Through the Python API, errors name its keyword arguments (the CLI's name its flags:
    test_cli_replay.py). A model answer keyed by the text "1", or not text, used to be a bare
    TypeError deep in the recorder."""
    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple"]})
    before = counts(store)
    with pytest.raises(InputError, match=match):
        runner.fork(parent.run_id, at, **options)
    assert counts(store) == before


def test_set_state_of_an_append_key_must_be_a_list(store: TraceStore, orders: Any) -> None:
    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple"]})
    before = counts(store)
    with pytest.raises(InputError, match="log"):
        runner.fork(parent.run_id, 2, set_state={"log": "not a list"})
    assert counts(store) == before


def test_fork_of_another_graphs_run_or_unknown_run_is_refused(project: Path, store: TraceStore, orders: Any) -> None:
    parent = Runner(orders, store).run({"items": ["apple"]})
    before = counts(store)
    with pytest.raises(RunStateError, match="orders"):
        Runner(load_graph("support"), store).fork(parent.run_id, 1)
    with pytest.raises(WorkbenchError):
        Runner(orders, store).fork("nope", 1)
    assert counts(store) == before


def test_fork_needs_a_store(orders: Any) -> None:
    with pytest.raises(RunStateError):
        Runner(orders).fork("x", 1)


# --------------------------------------------------------------------------- several model calls in one node


def _two_call_graph() -> Any:
    from typing import TypedDict

    from workbench import END, START, Graph

    class QA(TypedDict):
        first: str
        second: str

    g = Graph("two_calls", QA)

    @g.node
    def ask(state: QA, ctx: Any) -> dict[str, Any]:
        first = ctx.llm("first question", model="workbench-demo/echo").text
        second = ctx.llm(f"about: {first}", model="workbench-demo/echo").text
        return {"first": first, "second": second}

    g.sequence(START, "ask", END)
    return g


def test_llm_response_edits_one_call_of_a_node(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _two_call_graph()
    runner = Runner(g, store)
    parent = runner.run({})
    assert parent.state == {"first": "first question", "second": "about: first question"}

    # Editing call 1: call 2 now asks about the edited answer, live.
    fork1 = runner.fork(parent.run_id, 1, llm_responses={1: "EDITED"})
    assert fork1.state == {"first": "EDITED", "second": "about: EDITED"}

    # Editing the last call: call 1 is served from the recording, nothing is called live.
    import workbench.llm.client as client

    live: list[str] = []

    def refuse() -> Any:
        live.append("call")
        raise AssertionError("live model call")

    monkeypatch.setattr(client, "litellm_module", refuse)
    monkeypatch.setattr(client, "_litellm", None)
    fork2 = runner.fork(parent.run_id, 1, llm_responses={2: "SECOND"})
    assert fork2.status == "completed", fork2.error
    assert fork2.state == {"first": "first question", "second": "SECOND"}
    assert live == []
    for rid in (fork1.run_id, fork2.run_id):
        assert replay_run(store, rid, g).identical, rid
    assert live == []


def _topic_graph() -> Any:
    """Two model calls whose prompts come from the state: a --set at the fork step changes them."""
    from typing import TypedDict

    from workbench import END, START, Graph

    class Topic(TypedDict, total=False):
        topic: str
        first: str
        second: str

    g = Graph("topic_calls", Topic)

    @g.node
    def ask(state: Topic, ctx: Any) -> dict[str, Any]:
        first = ctx.llm(f"first about {state['topic']}", model="workbench-demo/echo").text
        second = ctx.llm(f"then about {state['topic']}", model="workbench-demo/echo").text
        return {"first": first, "second": second}

    g.sequence(START, "ask", END)
    return g


def test_an_edited_answer_is_served_when_a_state_edit_changes_its_prompt(store: TraceStore) -> None:
    """A fork with ``set_state`` and ``llm_responses`` at one step: the state edit changed the
    prompt, so the edited answer (recorded under the parent's request) no longer matched; the
    call went live, the edit was lost, the step held two rows for one call and the fork could
    not replay. The edited answer answers the fork's call at its place now, and its row records
    the request the fork made."""
    g = _topic_graph()
    runner = Runner(g, store)
    parent = runner.run({"topic": "cats"})
    fork = runner.fork(parent.run_id, 1, set_state={"topic": "dogs"}, llm_responses={1: "EDITED"})
    assert fork.status == "completed", fork.error
    assert fork.state["first"] == "EDITED" and fork.state["second"] == "then about dogs"
    rows = store.query_dicts("SELECT seq, messages, response, fingerprint FROM llm_calls WHERE run_id = ? "
                             "ORDER BY seq", [fork.run_id])
    assert [r["seq"] for r in rows] == [0, 1]
    assert "first about dogs" in rows[0]["messages"] and "EDITED" in rows[0]["response"]
    assert not rows[0]["fingerprint"].startswith("edited:")
    report = replay_run(store, fork.run_id, g)
    assert report.identical, str(report.divergence)

    # Made and paused before the step runs (as a process that died there): the edit is in the
    # store, and the resume serves it and records the request then.
    paused = runner.fork(parent.run_id, 1, set_state={"topic": "owls"}, llm_responses={2: "SECOND"},
                         break_before=["ask"])
    assert paused.status == "paused"
    [seeded] = store.query_dicts("SELECT seq, fingerprint FROM llm_calls WHERE run_id = ? AND seq = 1",
                                 [paused.run_id])
    assert seeded["fingerprint"].startswith("edited:")
    # Call 1 comes before the edited call 2 and now asks about owls: the parent's answer to it
    # does not apply, so the edit cannot be reached as made. One clear error, not a silent loss.
    done = runner.resume(paused.run_id)
    assert done.status == "failed"
    assert "EditedCallError: model call 1 of this fork asks something else than its parent did" in (done.error or "")
    ok = runner.fork(parent.run_id, 1, set_state={"topic": "owls"}, llm_responses={1: "ONE", 2: "TWO"},
                     break_before=["ask"])
    finished = runner.resume(ok.run_id)
    assert finished.status == "completed" and finished.state["first"] == "ONE" and finished.state["second"] == "TWO"
    assert replay_run(store, finished.run_id, g).identical


def test_llm_response_edit_reaches_the_attempt_that_made_the_call(store: TraceStore) -> None:
    """Call N of a step is numbered among its last attempt's calls (as ``show --step`` lists
    them): the fork continues that attempt, so the edited answer is what the node gets, and no
    call is recorded for an attempt that made none."""
    from typing import TypedDict

    from workbench import END, START, Graph, RetryPolicy

    class S(TypedDict):
        answer: str
        attempt: int

    g = Graph("retry_then_ask", S)

    @g.node(retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=False))
    def ask(state: S, ctx: Any) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise ConnectionError("flaky service, try again")
        return {"answer": ctx.llm("hello there", model="workbench-demo/echo").text, "attempt": ctx.attempt}

    g.sequence(START, "ask", END)
    runner = Runner(g, store)
    parent = runner.run({})
    assert parent.state == {"answer": "hello there", "attempt": 2}
    fork = runner.fork(parent.run_id, 1, llm_responses={1: "EDITED"})
    assert fork.status == "completed", fork.error
    assert fork.state == {"answer": "EDITED", "attempt": 2}
    calls = store.query("SELECT attempt, response->>'content' FROM llm_calls WHERE run_id = ? ORDER BY attempt, seq",
                        [fork.run_id])
    assert calls == [(2, "EDITED")]
    tasks = store.query("SELECT attempt, status FROM steps WHERE run_id = ? AND step = 1", [fork.run_id])
    assert tasks == [(2, "completed")]
    assert replay_run(store, fork.run_id, g).identical


class T(TypedDict):
    category: str
    items: list[str]
    log: Annotated[list[str], append]


def _routed_graph() -> Any:
    from workbench import END, START, Graph, Send

    g = Graph("routed", T)

    @g.node
    def triage(state: T, ctx: Any) -> dict[str, Any]:
        return {"category": ctx.llm("technical", model="workbench-demo/echo").text, "log": ["triaged"]}

    @g.node
    def answer(state: T) -> dict[str, Any]:
        return {"log": ["answered by the model"]}

    @g.node
    def ask_human(state: T) -> dict[str, Any]:
        return {"log": ["asked a human"]}

    @g.node
    def work(item: str) -> dict[str, Any]:
        return {"log": [f"worked on {item}"]}

    g.edge(START, "triage")
    g.route("triage", lambda s: "ask_human" if s["category"] == "billing" else "answer",
            targets=["answer", "ask_human"])
    g.route("answer", lambda s: [Send("work", i) for i in s["items"]] or END, targets=["work", END])
    g.edge("ask_human", END)
    g.edge("work", END)
    return g


def test_a_state_edit_routes_the_fork_step_again(store: TraceStore) -> None:
    """``--set`` at step N edits the state the routers of step N-1 read: step N is planned
    again from it (another branch, another fan-out width), and the fork replays identically."""
    g = _routed_graph()
    runner = Runner(g, store)
    parent = runner.run({"items": ["a", "b"]})
    assert parent.state["log"] == ["triaged", "answered by the model", "worked on a", "worked on b"]

    billing = runner.fork(parent.run_id, 2, set_state={"category": "billing"})
    assert billing.status == "completed", billing.error
    assert billing.state["log"] == ["triaged", "asked a human"]
    wider = runner.fork(parent.run_id, 3, set_state={"items": ["a", "b", "c"]})
    assert wider.state["log"][-3:] == ["worked on a", "worked on b", "worked on c"]
    for fork in (billing, wider):
        assert replay_run(store, fork.run_id, g).identical, fork.run_id
    [event] = [e for e in store.events(billing.run_id) if e["kind"] == "forked"]
    assert event["detail"]["rerouted"] == {"from": ["answer"], "to": ["ask_human"]}
    # An edit that routes the same way keeps the recorded plan (and says nothing).
    same = runner.fork(parent.run_id, 2, set_state={"category": "technical"})
    assert same.state["log"] == parent.state["log"]
    assert "rerouted" not in next(e for e in store.events(same.run_id) if e["kind"] == "forked")["detail"]
    # Edited answers name the recorded tasks: with a state edit that reroutes, refused.
    with pytest.raises(InputError, match="step 2 runs ask_human, not the recorded answer"):
        runner.fork(parent.run_id, 2, set_state={"category": "billing"}, llm_responses={1: "x"})
    with pytest.raises(InputError, match="the run ends before step 3"):
        runner.fork(parent.run_id, 3, set_state={"items": []})
    # A router that fails on the edited value: refused in one line, nothing recorded.
    picky = _routed_graph()
    picky.routes["triage"].router = lambda s: {"technical": "answer"}[s["category"]]
    before = store.query("SELECT count(*) FROM runs")
    with pytest.raises(InputError, match="a router raised KeyError: 'sales'"):
        Runner(picky, store).fork(parent.run_id, 2, set_state={"category": "sales"})
    assert store.query("SELECT count(*) FROM runs") == before


def test_a_fork_at_step_one_replays_from_its_edited_input(store: TraceStore) -> None:
    """A fork at step 1 edits the input: its first step is routed from the edit, and its replay
    starts from the edited input too (it started from the parent's and diverged)."""
    from workbench import END, START, Graph

    g = Graph("start_routed", T)
    g.add_node("a", lambda s: {"log": ["a"]})
    g.add_node("b", lambda s: {"log": ["b"]})
    g.route(START, lambda s: "b" if s["category"] == "b" else "a", targets=["a", "b"])
    g.edge("a", END)
    g.edge("b", END)
    runner = Runner(g, store)
    parent = runner.run({"category": "a"})
    rerouted = runner.fork(parent.run_id, 1, set_state={"category": "b"})
    same_way = runner.fork(parent.run_id, 1, set_state={"category": "a2"})
    assert rerouted.state["log"] == ["b"] and same_way.state["log"] == ["a"]
    for fork in (rerouted, same_way):
        assert replay_run(store, fork.run_id, g).identical, fork.run_id


def test_an_edited_answer_of_a_retried_node_whose_failed_attempt_called_the_model(tmp_path: Path) -> None:
    """Calls are numbered over each task's last attempt, by ``show --step`` and by the fork
    alike (show numbered every attempt's call); the fork replays identically (its replay
    started at attempt 1, which the fork never ran)."""
    from conftest import run_cli

    source = (
        "from typing import TypedDict\n"
        "from workbench import END, START, Graph, RetryPolicy\n"
        "class S(TypedDict):\n    out: str\n"
        "graph = Graph('retry_calls', S)\n"
        "@graph.node(retry=RetryPolicy(attempts=3, initial_delay=0.0, jitter=False))\n"
        "def work(state, ctx):\n"
        "    reply = ctx.llm('hello', model='workbench-demo/echo')\n"
        "    if ctx.attempt < 2:\n        raise ValueError('flaky')\n"
        "    return {'out': reply.text}\n"
        "graph.sequence(START, 'work', END)\n"
    )
    (tmp_path / "retry_calls.py").write_text(source)
    g = load_graph(str(tmp_path / "retry_calls.py"))
    db = str(tmp_path / "calls.duckdb")
    with TraceStore(db) as store:
        parent = Runner(g, store).run({})
    assert parent.state == {"out": "hello"}
    shown = run_cli("show", parent.run_id, "--step", "1", "--db", db, cwd=tmp_path)
    lines = [ln.strip() for ln in shown.stdout.splitlines() if "model call" in ln]
    assert [ln.split(" (")[0] for ln in lines] == ["model call of attempt 1", "model call 1"], shown.stdout
    with TraceStore(db) as store:
        runner = Runner(g, store)
        fork = runner.fork(parent.run_id, 1, llm_responses={1: "EDITED"})
        assert fork.state == {"out": "EDITED"}
        assert replay_run(store, fork.run_id, g).identical
        with pytest.raises(InputError, match="has 1 model call"):
            runner.fork(parent.run_id, 1, llm_responses={2: "no such call"})


def test_a_fork_of_a_run_deleted_at_that_moment_says_it_is_gone(store: TraceStore, orders: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``workbench rm`` landing while a fork starts: the fork said "has no recorded plan for
    step 3", as though the trace were incomplete; it names the run as gone, as resume does."""
    from workbench.errors import RunNotFoundError

    runner = Runner(orders, store)
    parent = runner.run({"items": ["apple"]})
    real_plan = TraceStore.plan

    def plan_after_rm(self: TraceStore, run_id: str, step: int) -> Any:
        self.delete_runs([run_id], with_descendants=True)  # the other process's rm, just now
        return real_plan(self, run_id, step)

    monkeypatch.setattr(TraceStore, "plan", plan_after_rm)
    with pytest.raises(RunNotFoundError, match=f"no run '{parent.run_id}'"):
        runner.fork(parent.run_id, 2)

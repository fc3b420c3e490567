"""``workbench diff`` shows the difference itself: the changed lines of a text with the changed
words marked, the JSON paths that differ, and the differences inside subgraph runs under the
step that called them. Runs are recorded in-process, the CLI runs as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import cli_env, run_cli, workbench_cmd

from workbench import Runner
from workbench.compare import compare_runs
from workbench.loader import load_graph
from workbench.store import TraceStore

BILLING = {"message": "I was charged twice this month, please refund me", "customer_id": "C-1002"}
ANSWER = "Hi Grace, our billing team will review your refund request within two business days."


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workbench_cmd(), *args], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def db(project: Path) -> str:
    return str(project / "traces" / "diff.duckdb")


@pytest.fixture
def support_fork(db: str) -> tuple[str, str]:
    """The README's walkthrough: a support run, and a fork at the draft step with an edited
    model answer."""
    with TraceStore(db) as store:
        runner = Runner(load_graph("support"), store)
        parent = runner.run(BILLING)
        assert parent.status == "completed"
        fork = runner.fork(parent.run_id, 4, llm_responses={1: ANSWER})
        assert fork.status == "completed"
    return parent.run_id, fork.run_id


@pytest.fixture
def warranty_fork(db: str) -> tuple[str, str]:
    """A warranty run (its review subgraph asks a human) and a fork at an inner step of the
    subgraph with an edited decision."""
    with TraceStore(db) as store:
        runner = Runner(load_graph("warranty"), store)
        parent = runner.run({"message": "Please refund $120 for the broken kettle"})
        assert parent.status == "waiting"
        assert runner.resume(parent.run_id, "yes").status == "completed"
        fork = runner.fork(parent.run_id, "2/review/3", set_state={"decision": "declined"})
        assert fork.status == "completed"
    return parent.run_id, fork.run_id


def test_diff_prints_the_changed_words_not_a_shared_prefix(project: Path, db: str,
                                                         support_fork: tuple[str, str]) -> None:
    parent, fork = support_fork
    res = wb("diff", parent, fork, "--db", db, cwd=project)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "B is a fork of A at step 4" in out and "steps 1-3: same" in out
    step4 = out[out.index("\nstep 4"):out.index("\nstep 5")]
    # The model answer's changed words are marked on the line that changed ...
    assert "draft:" in step4 and "model answer in draft:" in step4
    assert "~ Hi Grace[- Hopper,-]{+, our billing team will review your refund request" in step4
    # ... and the lines only A had are listed as removed, not cut to a common beginning.
    assert "- Thanks for getting in touch." in step4
    assert "Thanks for getting in touch.⏎…" not in out
    # JSON values differ by path.
    step5 = out[out.index("\nstep 5"):]
    assert "safety_issues[0]: removed" in step5
    assert "drafts: A=2  B=1" in out


def test_diff_json_keeps_its_shape_and_adds_the_changes(project: Path, db: str,
                                                        support_fork: tuple[str, str]) -> None:
    parent, fork = support_fork
    res = wb("diff", parent, fork, "--db", db, "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"a", "b", "steps", "totals"}
    four = next(s for s in out["steps"] if s["step"] == 4)
    [draft] = four["state"]
    assert {"key", "a", "b", "changes"} <= set(draft) and draft["b"] == ANSWER
    [change] = draft["changes"]
    assert change["path"] == "" and change["kind"] == "changed"
    inserted = "".join(p["b"] for p in change["text"] if p["op"] in ("insert", "replace"))
    assert "our billing team" in inserted
    assert all("".join(p[side] for p in change["text"]) == draft[side] for side in ("a", "b"))
    assert four["subgraphs"] == []


def test_diff_descends_into_subgraph_runs(project: Path, db: str, warranty_fork: tuple[str, str]) -> None:
    parent, fork = warranty_fork
    res = wb("diff", parent, fork, "--db", db, cwd=project)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"subgraph review (task 0): A {parent}/2.0.0  B {fork}/2.0.0" in out
    inner = out[out.index("subgraph review"):]
    assert "steps 1-2: same" in inner
    assert "step 3  record" in inner and "decision: [-approved-]{+declined+}" in inner

    data = json.loads(wb("diff", parent, fork, "--db", db, "--json", cwd=project).stdout)
    two = next(s for s in data["steps"] if s["step"] == 2)
    [sub] = two["subgraphs"]
    assert sub["path"] == "review" and sub["run_a"] == f"{parent}/2.0.0" and sub["run_b"] == f"{fork}/2.0.0"
    assert sub["same"] is False
    inner_steps = {s["step"]: s for s in sub["steps"]}
    assert inner_steps[1]["same"] and inner_steps[2]["same"]
    assert inner_steps[3]["state"][0]["key"] == "decision"


def test_a_subgraph_difference_alone_makes_the_step_differ(db: str, warranty_fork: tuple[str, str]) -> None:
    parent, fork = warranty_fork
    with TraceStore(db) as store:
        cmp = compare_runs(store, parent, fork)
    two = next(s for s in cmp.steps if s.step == 2)
    assert not two.same and two.subgraphs and not two.subgraphs[0].same
    # A run compared with itself: every step the same, subgraphs included.
    with TraceStore(db) as store:
        same = compare_runs(store, parent, parent)
    assert all(s.same for s in same.steps)


def test_diff_usage_errors_stay_one_line(project: Path, db: str, support_fork: tuple[str, str]) -> None:
    res = wb("diff", support_fork[0], "nope", "--db", db, cwd=project)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


def test_diff_names_a_tool_calls_result_as_the_tools(project: Path, db: str) -> None:
    """A recorded tool call's result that differs was listed as a "model answer" (the totals
    beside it said 0 model calls)."""
    with TraceStore(db) as store:
        runner = Runner(load_graph("support"), store)
        a = runner.run({"message": "My login page shows an error 500", "customer_id": "C-1002"})
        b = runner.run({"message": "My login page shows an error 500", "customer_id": "C-1003"})
    out = wb("diff", a.run_id, b.run_id, "--db", db, cwd=project).stdout
    assert "tool crm_lookup result in fetch_account:" in out and "model answer in fetch_account" not in out
    as_json = json.loads(wb("diff", a.run_id, b.run_id, "--db", db, "--json", cwd=project).stdout)
    kinds = {(x["node"], x["kind"]) for s in as_json["steps"] for x in s["answers"]}
    assert ("fetch_account", "tool crm_lookup") in kinds


def test_diff_lists_an_append_keys_difference_once_not_at_every_later_step(project: Path, db: str) -> None:
    """Two conversations that differ at turn 2 and then say the same: the difference of turn 2's
    messages was listed again at every later step (the key's whole value had changed)."""
    def say(parent: str, text: str) -> str:
        done = runner.continue_run(parent, {"messages": {"role": "user", "content": text}})
        assert done.status == "completed", done.error
        return done.run_id

    with TraceStore(db) as store:
        runner = Runner(load_graph("chat"), store)
        first = runner.run({"messages": [{"role": "user", "content": "Hi"}]}).run_id
        a2, b2 = say(say(first, "apples"), "more"), say(say(first, "pears"), "more")
        a3, b3 = say(a2, "red"), say(b2, "blue")
    out = run_cli("diff", a2, b2, "--db", db, cwd=project).stdout
    assert out.count("messages[2].content: [-apples-]{+pears+}") == 1, out
    assert "step 3  respond  (still different: messages)" in out
    data = json.loads(run_cli("diff", a2, b2, "--db", db, "--json", cwd=project).stdout)
    three = next(s for s in data["steps"] if s["step"] == 3)
    assert three["state"] == [] and three["still_different"] == ["messages"] and not three["same"]
    # A new difference later on: only its own paths are listed, the earlier ones are still different.
    with TraceStore(db) as store:
        cmp = compare_runs(store, a3, b3)
    four = next(s for s in cmp.steps if s.step == 4)
    [(key, _, _)] = four.state
    assert key == "messages" and four.carried == ["messages"]
    assert [c.path for c in four.changes_of(*four.state[0])] == ["[6].content", "[7].content"]
    [listed] = four.to_json()["state"]
    assert [c["path"] for c in listed["changes"]] == ["[6].content", "[7].content"]
    printed = run_cli("diff", a3, b3, "--db", db, cwd=project).stdout
    assert printed.count("messages[2].content") == 1, printed  # not again beside the new paths
    assert "messages[6].content" in printed and "(still different: messages)" in printed

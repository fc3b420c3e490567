"""The CLI contract of replay, fork, test, diff and show --step (issue 3), through subprocesses.

Exit codes: replay 0 identical / 4 diverged; fork as run (0 completed, 1 failed, 3 waiting or
paused); test 0 all passed / 1 any diverged; 2 for bad usage, always one line on stderr.

"No live model call" is proved by running the replaying process with a ``litellm`` package that
cannot be imported on its PYTHONPATH; "no live tool call" by a tool that logs every execution to a
file. Model-calling runs are recorded in-process (one litellm import for the whole session), the
rest through the CLI with the orders graph, which makes no model call.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, copy_store, demo_project, run_cli

from workbench import Runner
from workbench.loader import load_graph
from workbench.store import TraceStore

HERE = Path(__file__).resolve().parent
ORDERS = HERE / "graphs_replay" / "orders.py"
BUG = 'average = state["total"] / len(state["items"])  # BUG: an order without items'
FIX = 'average = state["total"] / len(state["items"]) if state["items"] else 0.0'
TECHNICAL = {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"}
REFUND_BIG = {"message": "Please refund the $500 you took from me", "customer_id": "C-1003"}
TIMEOUT = 120
REPORT_KEYS = {"run_id", "graph", "identical", "steps", "status", "changed_nodes", "divergence"}


# --------------------------------------------------------------------------- helpers


def wb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli; a real process where the environment needs one)."""
    return run_cli(*args, cwd=cwd, env=env, timeout=TIMEOUT)


def ok_json(res: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    return json.loads(res.stdout)


def error_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def run_rows(db: str) -> dict[str, dict[str, Any]]:
    with TraceStore(db) as store:
        return {r["run_id"]: r for r in store.query_dicts("SELECT * FROM runs")}


@pytest.fixture
def blocked_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import litellm`` fails, so any live model call would fail."""
    blocker = tmp_path / "no_litellm" / "litellm"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("litellm is blocked: no live model calls here")\n')
    env = cli_env(PYTHONPATH=str(blocker.parent))
    probe = subprocess.run([sys.executable, "-c", "import litellm"], env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    return env


@pytest.fixture
def db(project: Path) -> str:
    shutil.copy(ORDERS, project / "graphs" / "orders.py")
    return str(project / "traces" / "cli.duckdb")


@pytest.fixture(scope="module")
def support_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """Support runs recorded in-process once: completed, waited-and-resumed, and two forks."""
    proj = demo_project(tmp_path_factory.mktemp("support-runs"))
    db = str(proj / "traces" / "cli.duckdb")
    graph = load_graph(str(proj / "graphs" / "support.py"))
    with TraceStore(db) as store:
        runner = Runner(graph, store)
        tech = runner.run(TECHNICAL).run_id
        waited = runner.run(REFUND_BIG).run_id
        assert runner.resume(waited, {"reply": "Billing will call you."}).status == "completed"
        redraft = runner.fork(tech, 4, llm_responses={1: "We guarantee it is fixed today."})
        assert redraft.status == "completed" and redraft.state["drafts"] == 2
        safe = runner.fork(tech, 4, llm_responses={1: "Hi Ada, please reset your password."})
        assert safe.status == "completed" and safe.state["drafts"] == 1
    return db, {"tech": tech, "waited": waited, "redraft": redraft.run_id, "safe": safe.run_id}


@pytest.fixture
def support_runs(db: str, support_template: tuple[str, dict[str, str]]) -> dict[str, str]:
    """A private copy of the support runs, in the test's ``db``."""
    template, ids = support_template
    copy_store(template, db)
    return dict(ids)


# --------------------------------------------------------------------------- replay


def test_replay_identical_with_no_model_reachable(project: Path, db: str, support_runs: dict[str, str],
                                                  blocked_env: dict[str, str]) -> None:
    before = sha(db)
    for name, rid in support_runs.items():
        report = ok_json(wb("replay", rid, "--db", db, "--json", cwd=project, env=blocked_env))
        assert set(report) == REPORT_KEYS
        assert report["identical"] is True and report["divergence"] is None, (name, report)
        assert report["run_id"] == rid and report["graph"] == "support" and report["changed_nodes"] == []
    res = wb("replay", support_runs["tech"][:12], "--db", db, cwd=project, env=blocked_env)
    assert res.returncode == 0, res.stderr
    assert "replays identically" in res.stdout and "6 steps" in res.stdout and "no live calls" in res.stdout
    res = wb("test", "--graph", "support", "--db", db, cwd=project, env=blocked_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("passed ") == 4 and "4 passed, 0 failed" in res.stdout
    assert sha(db) == before  # replaying writes nothing


def test_replay_diverges_after_a_prompt_change(project: Path, db: str, support_runs: dict[str, str],
                                               blocked_env: dict[str, str]) -> None:
    edit(project / "graphs" / "support.py", "You draft a short, friendly support reply.",
         "You draft a short, warm support reply.")
    report = ok_json(wb("replay", support_runs["tech"], "--db", db, "--json", cwd=project, env=blocked_env), 4)
    assert report["identical"] is False and report["changed_nodes"] == ["draft"]
    d = report["divergence"]
    assert (d["kind"], d["step"], d["node"]) == ("request", 4, "draft")
    assert any(ln.startswith("-") and "friendly" in ln for ln in d["diff"].splitlines())
    assert any(ln.startswith("+") and "warm" in ln for ln in d["diff"].splitlines())

    res = wb("replay", support_runs["tech"], "--db", db, cwd=project, env=blocked_env)
    assert res.returncode == 4
    assert "diverged" in res.stdout and "step 4, node 'draft'" in res.stdout and "warm" in res.stdout

    # As regression tests: the runs that draft diverge, the one handed to a human still passes.
    res = wb("test", "--graph", "support", "--db", db, "--json", cwd=project, env=blocked_env)
    assert res.returncode == 1
    results = {r["run_id"]: r for r in json.loads(res.stdout)}
    assert results[support_runs["waited"]]["passed"] is True
    for name in ("tech", "redraft", "safe"):
        r = results[support_runs[name]]
        assert r["passed"] is False and r["divergence"]["kind"] == "request", name
    res = wb("test", support_runs["tech"], support_runs["waited"], "--db", db, cwd=project, env=blocked_env)
    assert res.returncode == 1 and "1 passed, 1 failed" in res.stdout and "diverged" in res.stdout
    # A graph with no finished run says so (it said to give --graph, which was given).
    res = wb("test", "--graph", "nope", "--db", db, cwd=project, env=blocked_env)
    assert res.returncode == 2 and f"no finished run of graph 'nope' in {db} to test" in res.stderr, res.stderr


def test_replay_serves_tools_and_detects_a_routing_change(project: Path, db: str, tmp_path: Path) -> None:
    log = tmp_path / "tool.log"
    env = cli_env(WB_TOOL_LOG=str(log))
    done = ok_json(wb("run", "orders", "--input", '{"items": ["apple", "pear"]}', "--db", db, "--json",
                      cwd=project, env=env))
    assert done["status"] == "completed" and log.read_text().splitlines() == ["apple", "pear"]
    assert ok_json(wb("replay", done["run_id"], "--db", db, "--json", cwd=project, env=env))["identical"]
    assert log.read_text().splitlines() == ["apple", "pear"]  # the tool did not run again

    edit(project / "graphs" / "orders.py", 'return "approve" if state["total"] > 100 else "confirm"',
         'return "approve" if state["total"] > 1 else "confirm"')
    report = ok_json(wb("replay", done["run_id"], "--db", db, "--json", cwd=project, env=env), 4)
    d = report["divergence"]
    assert (d["kind"], d["step"]) == ("path", 3) and "approve" in d["message"]
    assert log.read_text().splitlines() == ["apple", "pear"]


def test_replay_usage_errors(project: Path, db: str, support_runs: dict[str, str]) -> None:
    assert "nope" in error_line(wb("replay", "nope", "--db", db, cwd=project))
    assert "nope" in error_line(wb("replay", "nope", "--db", db, "--json", cwd=project))
    (project / "graphs" / "support.py").unlink()
    line = error_line(wb("replay", support_runs["tech"], "--db", db, cwd=project))
    assert "support" in line


# --------------------------------------------------------------------------- fork


def test_fork_with_set_and_set_file(project: Path, db: str, tmp_path: Path) -> None:
    log = tmp_path / "tool.log"
    env = cli_env(WB_TOOL_LOG=str(log))
    parent = ok_json(wb("run", "orders", "--input", '{"items": ["apple"]}', "--db", db, "--json", cwd=project,
                        env=env))
    fork = ok_json(wb("fork", parent["run_id"], "--at", "2", "--set", 'items=["melon"]', "--set", "total=150",
                      "--db", db, "--json", cwd=project, env=env), 3)
    assert fork["status"] == "waiting" and fork["interrupt"] == {"question": "approve this order?", "total": 150}
    assert fork["state"]["items"] == ["melon"]
    assert log.read_text().splitlines() == ["apple"]  # step 1 is shared, not re-run

    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"total": 5.0, "items": ["pear"]}))
    child = ok_json(wb("fork", fork["run_id"], "--at", "2", "--set-file", str(edits), "--db", db, "--json",
                       cwd=project, env=env))
    assert child["status"] == "completed" and child["state"]["status"] == "confirmed"
    assert child["state"]["total"] == 5.0

    rows = run_rows(db)
    assert rows[fork["run_id"]]["parent_run_id"] == parent["run_id"] and rows[fork["run_id"]]["fork_step"] == 1
    assert rows[child["run_id"]]["parent_run_id"] == fork["run_id"] and rows[child["run_id"]]["fork_step"] == 1
    with TraceStore(db) as store:
        assert [a for a, _ in store.lineage(child["run_id"])] == [child["run_id"], fork["run_id"], parent["run_id"]]
        own = store.query("SELECT min(step) FROM steps WHERE run_id = ?", [child["run_id"]])
        assert own == [(2,)]

    # The waiting fork resumes like any run.
    done = ok_json(wb("resume", fork["run_id"], "--input", "true", "--db", db, "--json", cwd=project, env=env))
    assert done["status"] == "completed" and done["state"]["approved"] is True
    # Text mode names the fork and its parent.
    res = wb("show", child["run_id"], "--db", db, cwd=project)
    assert res.returncode == 0 and f"forked from {fork['run_id']}" in res.stdout


def test_fork_with_an_edited_model_answer_makes_no_live_call(project: Path, db: str,
                                                             support_runs: dict[str, str],
                                                             blocked_env: dict[str, str]) -> None:
    tech = support_runs["tech"]
    step1 = ok_json(wb("show", tech, "--step", "1", "--db", db, "--json", cwd=project))
    assert step1["nodes"] == ["classify"]
    assert [c["number"] for c in step1["llm_calls"]] == [1]
    assert step1["llm_calls"][0]["response"]["content"] == "technical"
    # Classify now answers 'escalation': the run goes to the human, with no model call made.
    fork = ok_json(wb("fork", tech, "--at", "1", "--llm-response", "1=escalation", "--db", db, "--json",
                      cwd=project, env=blocked_env), 3)
    assert fork["status"] == "waiting" and fork["state"]["category"] == "escalation"
    assert fork["interrupt"]["category"] == "escalation"
    row = run_rows(db)[fork["run_id"]]
    assert row["parent_run_id"] == tech and row["fork_step"] == 0
    shown = ok_json(wb("show", fork["run_id"], "--step", "1", "--db", db, "--json", cwd=project))
    assert shown["llm_calls"][0]["response"]["content"] == "escalation"


INVALID_FORKS = {
    "unknown key": (["--at", "2", "--set", "nope=1"], "nope"),
    "wrong type": (["--at", "2", "--set", 'total="a lot"'], "total"),
    "bad JSON": (["--at", "2", "--set", "total={"], "not valid JSON"),
    "no equals sign": (["--at", "2", "--set", "total"], "KEY=JSON"),
    "llm call out of range": (["--at", "2", "--llm-response", "1=hello"], "model call"),
    "llm call not a number": (["--at", "2", "--llm-response", "one=hello"], "N=TEXT"),
    "at zero": (["--at", "0"], "out of range"),
    "at too far": (["--at", "99"], "out of range"),
    "from-failure of a completed run": (["--from-failure"], "did not fail"),
    "no step": ([], "--at STEP"),
    "missing set-file": (["--at", "2", "--set-file", "{tmp}/missing.json"], "cannot read"),
    "set-file not an object": (["--at", "2", "--set-file", "{tmp}/list.json"], "JSON object"),
    "set-file bad JSON": (["--at", "2", "--set-file", "{tmp}/bad.json"], "not valid JSON"),
}


def test_fork_refuses_invalid_edits_and_records_nothing(project: Path, db: str, tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{total: 1")
    parent = ok_json(wb("run", "orders", "--input", '{"items": ["apple"]}', "--db", db, "--json", cwd=project))
    before = sha(db)
    for case, (args, needle) in INVALID_FORKS.items():
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        line = error_line(wb("fork", parent["run_id"], *args, "--db", db, "--json", cwd=project))
        assert needle in line, (case, line)
        assert sha(db) == before, case
    assert "no run" in error_line(wb("fork", "nope", "--at", "1", "--db", db, cwd=project))
    assert list(run_rows(db)) == [parent["run_id"]]


def test_fork_refuses_a_non_list_for_an_append_key(project: Path, db: str) -> None:
    parent = ok_json(wb("run", "orders", "--input", '{"items": ["apple"]}', "--db", db, "--json", cwd=project))
    before = sha(db)
    line = error_line(wb("fork", parent["run_id"], "--at", "2", "--set", 'log="oops"', "--db", db, cwd=project))
    assert "log" in line
    assert sha(db) == before


def test_fork_records_and_reports_changed_code(project: Path, db: str) -> None:
    parent = ok_json(wb("run", "orders", "--input", '{"items": ["apple"]}', "--db", db, "--json", cwd=project))
    edit(project / "graphs" / "orders.py", '"log": ["confirmed"]', '"log": ["confirmed (v2)"]')
    res = wb("fork", parent["run_id"], "--at", "2", "--db", db, cwd=project)
    assert res.returncode == 0, res.stderr
    assert "code changed since the parent ran: confirm" in res.stdout
    rows = run_rows(db)
    [fork_id] = [r for r in rows if r != parent["run_id"]]
    assert rows[fork_id]["code_version"] != rows[parent["run_id"]]["code_version"]
    assert rows[fork_id]["parent_run_id"] == parent["run_id"]
    # The parent no longer replays on this code; the fork does.
    report = ok_json(wb("replay", parent["run_id"], "--db", db, "--json", cwd=project), 4)
    assert report["changed_nodes"] == ["confirm"] and report["divergence"]["kind"] == "update"
    assert ok_json(wb("replay", fork_id, "--db", db, "--json", cwd=project))["identical"] is True


# --------------------------------------------------------------------------- the regression workflow


def test_failed_run_fixed_forked_and_kept_as_a_regression_test(project: Path, db: str) -> None:
    graph_file = project / "graphs" / "orders.py"
    failed = ok_json(wb("run", "orders", "--input", '{"items": []}', "--db", db, "--json", cwd=project), 1)
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"]
    rid = failed["run_id"]
    # On the buggy code the failure reproduces: the recorded run "passes".
    assert wb("test", rid, "--db", db, cwd=project).returncode == 0

    edit(graph_file, BUG, FIX)
    res = wb("test", rid, "--db", db, cwd=project)
    assert res.returncode == 1 and "diverged" in res.stdout

    fork = ok_json(wb("fork", rid, "--from-failure", "--db", db, "--json", cwd=project))
    assert fork["status"] == "completed" and fork["state"]["average"] == 0.0
    assert fork["state"]["status"] == "confirmed"
    row = run_rows(db)[fork["run_id"]]
    assert row["parent_run_id"] == rid and row["fork_step"] == 1

    res = wb("test", fork["run_id"], "--db", db, cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "passed" in res.stdout and "1 passed, 0 failed" in res.stdout
    results = ok_json(wb("test", fork["run_id"], rid, "--db", db, "--json", cwd=project), 1)
    assert {r["run_id"]: r["passed"] for r in results} == {fork["run_id"]: True, rid: False}

    # Reintroduce the bug: the regression test catches it.
    edit(graph_file, FIX, BUG)
    res = wb("test", fork["run_id"], "--db", db, cwd=project)
    assert res.returncode == 1
    assert "diverged" in res.stdout and "stats" in res.stdout and "step 2" in res.stdout


def test_test_command_usage(project: Path, db: str) -> None:
    ok_json(wb("run", "orders", "--input", '{"items": ["apple"]}', "--db", db, "--json", cwd=project))
    assert "RUN_ID" in error_line(wb("test", "--db", db, cwd=project))
    assert "no finished run of graph 'no-such-graph'" in error_line(wb("test", "--graph", "no-such-graph", "--db", db,
                                                                        cwd=project))
    assert "nope" in error_line(wb("test", "nope", "--db", db, cwd=project))
    results = ok_json(wb("test", "--graph", "orders", "--db", db, "--json", cwd=project))
    assert [r["passed"] for r in results] == [True]
    assert REPORT_KEYS <= set(results[0])


# --------------------------------------------------------------------------- diff and show --step


def test_diff_of_a_fork_and_its_parent(project: Path, db: str, support_runs: dict[str, str]) -> None:
    tech, safe, redraft = support_runs["tech"], support_runs["safe"], support_runs["redraft"]
    out = ok_json(wb("diff", tech, redraft, "--db", db, "--json", cwd=project))
    assert set(out) == {"a", "b", "steps", "totals"}
    assert out["a"]["run_id"] == tech and out["b"]["run_id"] == redraft
    assert out["b"]["parent_run_id"] == tech and out["b"]["fork_step"] == 3
    steps = {s["step"]: s for s in out["steps"]}
    for s in (1, 2, 3):
        assert steps[s]["same"] is True and steps[s]["shared"] is True
    four = steps[4]
    assert four["same"] is False and four["shared"] is False
    assert four["nodes_a"] == four["nodes_b"] == ["draft"]
    assert [d["key"] for d in four["state"]] == ["draft"]
    assert four["state"][0]["b"] == "We guarantee it is fixed today."
    [answer] = four["answers"]
    assert answer["node"] == "draft" and answer["b"] == "We guarantee it is fixed today."
    assert "guarantee" not in answer["a"]
    assert steps[5]["state"][0]["key"] == "safety_issues"
    assert steps[6]["nodes_a"] == ["send"] and steps[6]["nodes_b"] == ["draft"]
    assert out["totals"]["a"]["steps"] == 6 and out["totals"]["b"]["steps"] == 8
    assert out["totals"]["a"]["llm_calls"] == 2 and out["totals"]["b"]["llm_calls"] == 3

    res = wb("diff", tech, safe, "--db", db, cwd=project)
    assert res.returncode == 0, res.stderr
    assert "B is a fork of A at step 4" in res.stdout
    assert "steps 1-3: same" in res.stdout
    assert "model answer in draft" in res.stdout and "please reset your password" in res.stdout
    assert "nope" in error_line(wb("diff", tech, "nope", "--db", db, cwd=project))


def test_show_step_from_the_store_alone(project: Path, db: str, support_runs: dict[str, str]) -> None:
    tech = support_runs["tech"]
    (project / "graphs" / "support.py").unlink()
    step = ok_json(wb("show", tech, "--step", "4", "--db", db, "--json", cwd=project))
    assert step["nodes"] == ["draft"] and step["recorded_by"] == tech
    assert [d["key"] for d in step["diff"]] == ["draft", "drafts"]
    assert step["state_before"]["draft"] == "" and step["state_after"]["drafts"] == 1
    [call] = step["llm_calls"]
    assert call["number"] == 1 and call["node"] == "draft" and call["prompt_tokens"] > 0
    assert step["tasks"][0]["status"] == "completed"
    tool_step = ok_json(wb("show", tech, "--step", "2", "--db", db, "--json", cwd=project))
    assert tool_step["tool_calls"][0]["model"] == "crm_lookup" and tool_step["llm_calls"] == []
    # A fork's shared step is shown as recorded by its parent, its edited step as its own.
    shared = ok_json(wb("show", support_runs["redraft"], "--step", "2", "--db", db, "--json", cwd=project))
    assert shared["recorded_by"] == tech
    res = wb("show", tech, "--step", "2", "--db", db, cwd=project)
    assert res.returncode == 0 and "tool crm_lookup" in res.stdout
    res = wb("show", tech, "--step", "4", "--db", db, cwd=project)
    assert res.returncode == 0 and "model call 1 (draft" in res.stdout
    assert "1..6" in error_line(wb("show", tech, "--step", "99", "--db", db, cwd=project))


# --------------------------------------------------------------------------- a run that now ends earlier (issue 7)

ENDS = '''\
"""a, then b when x > 0."""
from typing import Annotated, TypedDict

from workbench import END, START, Graph, append


class S(TypedDict):
    x: int
    log: Annotated[list[str], append]


graph = Graph("ends", S)


@graph.node
def a(state):
    return {"log": ["a"]}


@graph.node
def b(state):
    return {"log": ["b"]}


def after_a(state):
    return "b" if state["x"] > 0 else END


graph.edge(START, "a")
graph.route("a", after_a, targets=["b", END])
graph.edge("b", END)
'''


def test_replay_and_test_fail_a_run_that_now_ends_earlier(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    path = project / "graphs" / "ends.py"
    path.write_text(ENDS)
    db = str(project / "traces" / "ends.duckdb")
    with TraceStore(db) as store:
        rid = Runner(load_graph("ends"), store).run({"x": 1}).run_id
    assert main(["replay", "last", "--db", db]) == 0
    assert "replays identically — 2 steps" in capsys.readouterr().out

    edit(path, 'return "b" if state["x"] > 0 else END', "return END")
    message = "the run now ends completed after step 1; the recording went on to step 2 (b)"
    assert main(["replay", "last", "--db", db]) == 4
    out = capsys.readouterr().out
    assert "diverged" in out and message in out
    assert main(["replay", rid, "--db", db, "--json"]) == 4
    d = json.loads(capsys.readouterr().out)["divergence"]
    assert (d["kind"], d["step"], d["message"]) == ("end", 1, message)
    assert main(["test", rid, "--db", db]) == 1
    out = capsys.readouterr().out
    assert "diverged" in out and message in out and "0 passed, 1 failed" in out


ROUTES = ENDS.replace('"b" if state["x"] > 0 else END', '"b" if state["x"] > 0 else "c"').replace(
    'targets=["b", END]', 'targets=["b", "c"]').replace('graph.edge("b", END)', '''graph.edge("b", END)
graph.edge("c", END)


@graph.node
def c(state):
    return {"log": ["c"]}''').replace('Graph("ends", S)', 'Graph("routes", S)')


def test_fork_with_a_state_edit_that_reroutes_says_so(project: Path) -> None:
    path = project / "graphs" / "routes.py"
    path.write_text(ROUTES)
    db = str(project / "traces" / "routes.duckdb")
    with TraceStore(db) as store:
        rid = Runner(load_graph("routes"), store).run({"x": 1}).run_id
    res = wb("fork", rid, "--at", "2", "--set", "x=0", "--db", db, "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"]["log"] == ["a", "c"]
    assert res.stderr.strip() == f"workbench: note: from the edited state step 2 runs c (run {rid} ran b there)"
    fork_id = json.loads(res.stdout)["run_id"]
    assert wb("replay", fork_id, "--db", db, cwd=project).returncode == 0
    shown = wb("fork", rid, "--at", "2", "--set", "x=0", "--db", db, cwd=project)
    assert shown.returncode == 0 and not shown.stderr
    assert shown.stdout.splitlines()[0].endswith(", running from step 2; from the edited state step 2 runs c "
                                                 "(the parent ran b)")

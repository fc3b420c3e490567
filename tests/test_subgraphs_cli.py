"""Subgraphs through the CLI, on the warranty demo (graphs/warranty.py): a question asked inside the
review subgraph, breakpoints by path, show, fork at an inner step, replay, export/import, and a
process killed inside a subgraph that resumes without re-running the inner steps it finished."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from conftest import process_cli, run_cli

TIMEOUT = 120
BIG = json.dumps({"message": "Please refund $120 for the broken kettle", "customer_id": "C-1"})


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli)."""
    return run_cli(*args, cwd=cwd, timeout=TIMEOUT)


def ok(res: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    return res.stdout


def as_json(res: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    return json.loads(ok(res, code))


def test_question_inside_a_subgraph_from_the_cli(project: Path) -> None:
    waiting = as_json(wb("run", "warranty", "--input", BIG, "--json", cwd=project), 3)
    assert waiting["status"] == "waiting" and waiting["interrupt"]["question"].startswith("Approve a refund of $120")
    rid = waiting["run_id"]
    runs = as_json(wb("runs", "--json", cwd=project))
    assert [r["run_id"] for r in runs] == [rid]  # the review's child run is not listed
    done = as_json(wb("resume", "last", "--input", '"yes"', "--json", cwd=project))
    assert done["status"] == "completed" and done["state"]["decision"] == "approved"
    assert done["state"]["notes"] == ["request read", "assessed $120.00", "approved by a human",
                                      "decision recorded: approved"]
    rows = as_json(wb("sql", "SELECT path, status FROM steps WHERE root_run_id = "
                      f"'{rid}' AND path LIKE 'review/%' ORDER BY ended_at", "--format", "json", cwd=project))
    assert [(r["path"], r["status"]) for r in rows] == [
        ("review/assess", "completed"), ("review/approve", "interrupted"), ("review/approve", "completed"),
        ("review/record", "completed")]
    shown = ok(wb("show", rid, cwd=project))
    assert "2/review/1" in shown and "review/assess" in shown and "(review/approve)" in shown
    # A replay goes through the subgraph's recording too.
    assert "replays identically" in ok(wb("replay", rid, cwd=project))
    # Forking the review's run directly is refused with the way to do it.
    err = wb("fork", f"{rid}/2.0.0", "--at", "1", cwd=project)
    assert err.returncode == 2 and "fork that run at STEP/review/INNER_STEP" in err.stderr
    # A fork at the approval step inside the review, answered differently.
    fork = as_json(wb("fork", rid, "--at", "2/review/2", "--json", cwd=project), 3)
    assert fork["status"] == "waiting"
    declined = as_json(wb("resume", fork["run_id"], "--input", '"no"', "--json", cwd=project))
    assert declined["state"]["decision"] == "declined"
    assert declined["state"]["notes"][1] == "assessed $120.00"
    # Export and import carry the subgraph runs.
    ok(wb("export", fork["run_id"], "--to", "f.jsonl", cwd=project))
    ok(wb("import", "f.jsonl", "--db", "other.duckdb", cwd=project))
    again = ok(wb("show", fork["run_id"], "--db", "other.duckdb", cwd=project))
    assert "review/record" in again


def test_breakpoints_by_path_from_the_cli(project: Path) -> None:
    paused = as_json(wb("run", "warranty", "--input", BIG, "--break-before", "review/approve", "--json",
                        cwd=project), 3)
    assert paused["status"] == "paused" and paused["paused"]["node"] == "review/approve"
    waiting = as_json(wb("resume", "last", "--json", cwd=project), 3)
    assert waiting["status"] == "waiting"
    done = as_json(wb("resume", "last", "--input", '"no"', "--json", cwd=project))
    assert done["state"]["decision"] == "declined"
    bad = wb("run", "warranty", "--input", BIG, "--break-before", "review/aprove", cwd=project)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "subgraph 'review' (graph 'refund_review') has no node 'aprove'" in bad.stderr
    bad_at = wb("fork", done["run_id"], "--at", "2/review", cwd=project)
    assert bad_at.returncode == 2 and "write STEP, or STEP/NODE/STEP" in bad_at.stderr


KILLED = textwrap.dedent('''
    import os
    from pathlib import Path
    from typing import Annotated, TypedDict
    from workbench import END, START, Graph, append

    HERE = Path(__file__).parent

    class S(TypedDict):
        log: Annotated[list[str], append]

    def count(name):
        with open(HERE / "counts.txt", "a") as fh:
            fh.write(name + "\\n")

    def first(state):
        count("first")
        return {"log": ["first"]}

    def second(state):
        count("second")
        if not (HERE / "once").exists():
            (HERE / "once").write_text("killed")
            os._exit(9)  # the process dies in the middle of the subgraph
        return {"log": ["second"]}

    inner = Graph("inner_steps", S)
    inner.add_node("first", first)
    inner.add_node("second", second)
    inner.sequence(START, "first", "second", END)

    graph = Graph("killed_inside", S)
    graph.add_node("before", lambda s: {"log": ["before"]})
    graph.add_node("sub", inner)
    graph.sequence(START, "before", "sub", END)
''')


def test_a_process_killed_inside_a_subgraph_resumes_inside_it(project: Path) -> None:
    (project / "graphs" / "killed_inside.py").write_text(KILLED)
    died = process_cli("run", "killed_inside", cwd=project, timeout=TIMEOUT)  # the graph calls os._exit
    assert died.returncode == 9
    done = as_json(wb("resume", "last", "--json", cwd=project))
    assert done["status"] == "completed" and done["state"]["log"] == ["before", "first", "second"]
    # 'first' finished before the kill: it ran once.
    assert (project / "graphs" / "counts.txt").read_text().split() == ["first", "second", "second"]


def test_a_conversation_with_a_subgraph_and_deleting_it(project: Path) -> None:
    """Subgraphs meet conversations and rm: a waiting run superseded by a new turn, the new turn's
    own subgraph, and rm taking the subgraphs' runs with the runs that called them."""
    waiting = as_json(wb("run", "warranty", "--input", BIG, "--json", cwd=project), 3)
    turn = as_json(wb("run", "warranty", "--continue", waiting["run_id"], "--input",
                      json.dumps({"message": "Refund $20 please"}), "--json", cwd=project))
    assert turn["status"] == "completed" and turn["state"]["decision"] == "approved"
    runs = {r["run_id"]: r for r in as_json(wb("runs", "--json", cwd=project))}
    assert set(runs) == {waiting["run_id"], turn["run_id"]}
    assert runs[waiting["run_id"]]["status"] == "superseded"
    assert "replays identically" in ok(wb("replay", turn["run_id"], cwd=project))
    children = as_json(wb("sql", "SELECT count(*) AS n FROM subgraph_runs", "--format", "json", cwd=project))
    assert children[0]["n"] == 2
    deleted = as_json(wb("rm", waiting["run_id"], "--with-descendants", "--json", cwd=project))
    assert sorted(deleted["deleted"]) == sorted([waiting["run_id"], turn["run_id"]])
    left = as_json(wb("sql", "SELECT (SELECT count(*) FROM subgraph_runs) AS runs, (SELECT count(*) FROM steps) "
                      "AS steps, (SELECT count(*) FROM interrupts) AS questions", "--format", "json", cwd=project))
    assert left == [{"runs": 0, "steps": 0, "questions": 0}]


def test_show_step_descends_into_a_subgraph_and_fork_closes_its_question(project: Path) -> None:
    waiting = as_json(wb("run", "warranty", "--input", BIG, "--json", cwd=project), 3)
    rid = waiting["run_id"]
    # The calling step lists the review's inner steps under its task, with their model calls.
    step2 = ok(wb("show", rid, "--step", "2", cwd=project))
    assert "2/review/1 review/assess attempt 1: completed" in step2
    assert "2/review/1 model call 1 (review/assess" in step2
    # An inner step in detail, addressed as fork --at takes it; its calls numbered for --llm-response.
    inner = ok(wb("show", rid, "--step", "2/review/1", cwd=project))
    assert f"inner step 1 of subgraph review, run {rid}/2.0.0" in inner
    assert "model call 1 (review/assess" in inner
    detail = as_json(wb("show", rid, "--step", "2/review/2", "--json", cwd=project))
    assert detail["path"] == "review" and detail["subgraph_run_id"] == f"{rid}/2.0.0"
    assert [i["interrupt_id"] for i in detail["interrupts"]] == ["2.0.1.0"]
    for address, message in [("2/revieww/1", "does not run 'revieww'"), ("2/review/9", "step 9 is out of range"),
                              ("2/x", "write STEP"), ("1/intake/1", "recorded no subgraph run for 'intake'")]:
        err = wb("show", rid, "--step", address, cwd=project)
        assert err.returncode == 2 and message in err.stderr and len(err.stderr.strip().splitlines()) == 1
    # Close the review's question by a fork edit at its inner step: the fork does not wait.
    fork = as_json(wb("fork", rid, "--at", "2/review/2", "--close", "2.0.1.0", "--json", cwd=project))
    assert fork["status"] == "completed" and fork["state"]["decision"] == ""
    steps = as_json(wb("sql", f"SELECT status, error FROM steps WHERE run_id = '{fork['run_id']}/2.0.0' "
                       "AND node = 'approve'", "--format", "json", cwd=project))
    assert steps[0]["status"] == "closed" and steps[0]["error"].startswith("closed by a fork edit")
    bad = wb("fork", rid, "--at", "2", "--close", "7.7.7.7", cwd=project)
    assert bad.returncode == 2 and "asked no interrupt 7.7.7.7" in bad.stderr

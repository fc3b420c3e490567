"""Control from inside a node, through the CLI: interrupt ids in ``run``/``show``/``--json``/SQL,
``resume --interrupt/--answers/--close``, Commands and deferred nodes in ``graph``/``show``, a
fresh retry budget per ``resume`` of a failed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, run_cli, workbench_cmd

CONTROL = str(Path(__file__).parent / "graphs" / "control.py")
TIMEOUT = 120


def wb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli; a real process where the environment needs one)."""
    return run_cli(*args, cwd=cwd, env=env, timeout=TIMEOUT)


def as_json(res: subprocess.CompletedProcess[str], code: int) -> Any:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout)


def error_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "db" / "trace.duckdb")


def test_interrupt_ids_and_choosing_what_to_answer(tmp_path: Path, db: str) -> None:
    g = f"{CONTROL}:questions"
    out = as_json(wb("run", g, "--db", db, "--json", cwd=tmp_path), 3)
    rid = out["run_id"]
    assert out["interrupt_id"] == "1.0.1.0"
    assert [(i["id"], i["node"], i["payload"]) for i in out["interrupts"]] == [
        ("1.0.1.0", "p", {"who": "p"}), ("1.1.1.0", "q", {"who": "q"})]
    human = wb("show", rid, "--db", db, cwd=tmp_path)
    assert human.returncode == 0 and "interrupt 1.0.1.0 at step 1 (p)" in human.stdout
    assert "interrupt 1.1.1.0 at step 1 (q)" in human.stdout
    shown = as_json(wb("show", rid, "--db", db, "--json", cwd=tmp_path), 0)
    assert [(i["interrupt_id"], i["status"]) for i in shown["interrupts"]] == [("1.0.1.0", "open"), ("1.1.1.0", "open")]
    sql = as_json(wb("sql", "SELECT interrupt_id, node, status FROM interrupts ORDER BY interrupt_id",
                     "--db", db, "--format", "json", cwd=tmp_path), 0)
    assert sql == [{"interrupt_id": "1.0.1.0", "node": "p", "status": "open"},
                   {"interrupt_id": "1.1.1.0", "node": "q", "status": "open"}]

    # Bad requests: one line, exit 2, nothing changes.
    assert "no interrupt '7.7.7.7'" in error_line(wb("resume", rid, "--graph", g, "--interrupt", "7.7.7.7",
                                                     "--input", '"x"', "--db", db, cwd=tmp_path))
    assert "--input" in error_line(wb("resume", rid, "--graph", g, "--interrupt", "1.1.1.0", "--db", db,
                                      cwd=tmp_path))
    assert "JSON object" in error_line(wb("resume", rid, "--graph", g, "--answers", "[1]", "--db", db,
                                          cwd=tmp_path))

    # Answer q by id: the run waits again for p only (same id as before).
    mid = as_json(wb("resume", rid, "--graph", g, "--interrupt", "1.1.1.0", "--input", '"Q"', "--db", db,
                     "--json", cwd=tmp_path), 3)
    assert [i["id"] for i in mid["interrupts"]] == ["1.0.1.0"]
    done = as_json(wb("resume", rid, "--graph", g, "--input", '"P"', "--db", db, "--json", cwd=tmp_path), 0)
    assert done["state"]["log"][:2] == ["p got P", "q got Q"]
    assert "already" in error_line(wb("resume", rid, "--graph", g, "--input", '"again"', "--db", db, cwd=tmp_path))


def test_answers_mapping_and_close(tmp_path: Path, db: str) -> None:
    g = f"{CONTROL}:questions"
    one = as_json(wb("run", g, "--db", db, "--json", cwd=tmp_path), 3)["run_id"]
    done = as_json(wb("resume", one, "--graph", g, "--answers", '{"1.0.1.0": "A", "1.1.1.0": "B"}',
                      "--db", db, "--json", cwd=tmp_path), 0)
    assert done["state"]["log"][:2] == ["p got A", "q got B"]

    two = as_json(wb("run", g, "--db", db, "--json", cwd=tmp_path), 3)["run_id"]
    res = wb("resume", two, "--graph", g, "--close", "1.0.1.0", "--close", "1.1.1.0", "--db", db, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = as_json(wb("show", two, "--db", db, "--json", cwd=tmp_path), 0)
    assert shown["state"]["log"] == ["r", "after r"]
    assert [i["status"] for i in shown["interrupts"]] == ["closed", "closed"]
    assert [s["status"] for s in shown["steps"] if s["step"] == 1].count("closed") == 2
    human = wb("show", two, "--db", db, cwd=tmp_path).stdout
    assert "closed unanswered" in human
    step1 = wb("show", two, "--step", "1", "--db", db, cwd=tmp_path).stdout
    assert "interrupt 1.0.1.0 (p)" in step1 and "closed unanswered" in step1
    # The waiting run's human output names its interrupt ids and the ways to answer.
    three = wb("run", g, "--db", db, cwd=tmp_path)
    assert three.returncode == 3
    assert "(interrupt 1.0.1.0)" in three.stdout and "also open: interrupt 1.1.1.0 at q" in three.stdout
    assert "--answers" in three.stdout and "--close ID" in three.stdout


def test_command_jump_graph_and_replay(tmp_path: Path, db: str) -> None:
    g = f"{CONTROL}:jump"
    drawn = wb("graph", g, cwd=tmp_path)
    assert drawn.returncode == 0 and "─»▶ yes" in drawn.stdout
    rid = as_json(wb("run", g, "--input", '{"topic": "t"}', "--db", db, "--json", cwd=tmp_path), 3)["run_id"]
    done = as_json(wb("resume", rid, "--graph", g, "--input", '"y"', "--db", db, "--json", cwd=tmp_path), 0)
    assert done["state"]["log"] == ["asked", "yes"]
    sql = as_json(wb("sql", "SELECT node, goto FROM steps WHERE goto IS NOT NULL", "--db", db, "--format",
                     "json", cwd=tmp_path), 0)
    assert sql == [{"node": "ask", "goto": ["yes"]}]
    assert "goto" in wb("show", rid, "--db", db, cwd=tmp_path).stdout
    rep = as_json(wb("replay", rid, "--graph", g, "--db", db, "--json", cwd=tmp_path), 0)
    assert rep["identical"] is True


def test_deferred_and_overwrite_through_the_cli(tmp_path: Path, db: str) -> None:
    out = as_json(wb("run", f"{CONTROL}:deferred", "--db", db, "--json", cwd=tmp_path), 0)
    assert out["state"]["log"] == ["a", "b1", "b2", "summary of 3"]
    assert "deferred" in wb("graph", f"{CONTROL}:deferred", cwd=tmp_path).stdout
    trimmed = as_json(wb("run", f"{CONTROL}:trim", "--db", db, "--json", cwd=tmp_path), 0)
    assert trimmed["state"]["log"] == ["two", "three"]


def test_resume_of_a_failed_run_gives_a_fresh_retry_budget(tmp_path: Path, db: str) -> None:
    g = f"{CONTROL}:flaky"
    first = as_json(wb("run", g, "--db", db, "--json", cwd=tmp_path), 1)
    assert "after 2 attempts" in first["error"]
    again = as_json(wb("resume", first["run_id"], "--graph", g, "--db", db, "--json", cwd=tmp_path), 1)
    assert "after 4 attempts" in again["error"]
    fixed = as_json(wb("resume", first["run_id"], "--graph", g, "--db", db, "--json", cwd=tmp_path,
                       env=cli_env(WORKBENCH_TEST_FIXED="1")), 0)
    assert fixed["state"]["log"][0].startswith("fixed at attempt 5, first started ")


@pytest.mark.parametrize("gate, kill_after_node", [("WORKBENCH_TEST_GATE", "chooser"),
                                                   ("WORKBENCH_TEST_GATE2", "blocker")])
def test_commands_and_deferred_nodes_survive_sigkill(tmp_path: Path, db: str, gate: str,
                                                     kill_after_node: str) -> None:
    """Kill the recording process while a sibling blocks (step 1: after the Command's task was
    recorded; step 2: with the deferred node held in the recorded plan); resume continues exactly."""
    fifo = tmp_path / "gate.fifo"
    os.mkfifo(fifo)
    g = f"{CONTROL}:crashy"
    proc = subprocess.Popen([*workbench_cmd(), "run", g, "--db", db], cwd=tmp_path,
                            env=cli_env(PYTHONUNBUFFERED="1", **{gate: str(fifo)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # progress, not a timer, decides when to kill
            if "✓" in line and kill_after_node in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    rid = as_json(wb("runs", "--db", db, "--json", cwd=tmp_path), 0)[0]["run_id"]
    done = as_json(wb("resume", rid, "--graph", g, "--db", db, "--json", cwd=tmp_path), 0)
    assert done["state"]["log"] == ["chose", "unblocked", "after", "wrapup"]
    steps = as_json(wb("show", rid, "--db", db, "--json", cwd=tmp_path), 0)["steps"]
    done_rows = [(s["step"], s["node"]) for s in steps if s["status"] == "completed"]
    assert done_rows == [(1, "chooser"), (1, "blocker"), (2, "after"), (3, "wrapup")]  # each once

"""Durable execution: SIGKILL a real ``workbench run`` at random points, resume it, same result.

The workload (tests/graphs/crashloop.py) is a 60-step loop with run-time fan-outs and no model
calls. The kill is triggered from observed progress — after the N-th progress line the CLI
prints — never from a timer; N is drawn from a seeded RNG, so a failure replays exactly.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, workbench_cmd

from workbench.store import TraceStore

HERE = Path(__file__).resolve().parent
LOOP = str(HERE / "graphs" / "crashloop.py")
TIMEOUT = 60  # a safety net against a hung subprocess, never used to synchronise


def _env() -> dict[str, str]:
    return cli_env(PYTHONUNBUFFERED="1")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workbench_cmd(), *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


def _run_and_kill(args: list[str], cwd: Path, kill_after: int) -> tuple[bool, int]:
    """Start the CLI, SIGKILL it once it has printed ``kill_after`` progress lines.

    Returns (killed, progress lines seen). When the process ends on its own first, it was not
    killed and its exit code must be a normal one.
    """
    proc = subprocess.Popen([*workbench_cmd(), *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    killed = False
    try:
        for line in proc.stdout:
            if line.lstrip().startswith("step "):
                seen += 1
                if seen >= kill_after:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    if killed:
        # It may have finished between the line and the signal; either way, no traceback.
        assert proc.returncode in (-signal.SIGKILL, 0), stderr
    else:
        assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return killed, seen


def _runs(db: str, cwd: Path) -> list[dict[str, Any]]:
    res = _cli("runs", "--db", db, "--json", cwd=cwd)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def reference_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The final state of an uninterrupted run."""
    d = tmp_path_factory.mktemp("reference")
    res = _cli("run", LOOP, "--db", str(d / "ref.duckdb"), "--json", cwd=d)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "completed"
    assert out["state"]["n"] == 60 and len(out["state"]["items"]) == 60
    assert len(out["state"]["parts"]) == 16
    return out["state"]


@pytest.mark.parametrize("seed", [7, 1234, 99991])
def test_kill_and_resume_reaches_the_uninterrupted_state(
    seed: int, tmp_path: Path, reference_state: dict[str, Any]
) -> None:
    rng = random.Random(seed)
    db = str(tmp_path / "crash.duckdb")

    # Kill the first process early (at least one task finished, so the run is recorded).
    killed, _ = _run_and_kill(["run", LOOP, "--db", db], tmp_path, rng.randint(1, 20))
    runs = _runs(db, tmp_path)
    assert len(runs) == 1
    run_id = runs[0]["run_id"]
    kills = int(killed)

    for _ in range(4):
        if runs[0]["status"] == "completed":
            break
        assert runs[0]["status"] == "running"  # what a killed run looks like
        killed, _ = _run_and_kill(["resume", run_id, "--graph", LOOP, "--db", db], tmp_path, rng.randint(1, 18))
        kills += killed
        runs = _runs(db, tmp_path)

    if runs[0]["status"] != "completed":
        res = _cli("resume", run_id, "--graph", LOOP, "--db", db, "--json", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["status"] == "completed"
        assert out["state"] == reference_state
    assert kills >= 2, "the seeds are chosen so that the run is killed several times"

    with TraceStore(db) as store:
        run = store.get_run(run_id)
        assert run["status"] == "completed"
        assert run["output"] == reference_state
        last = store.last_committed_step(run_id)
        assert store.state_at(run_id, last) == reference_state
        dupes = store.query(
            "SELECT step, task, count(*) FROM steps WHERE run_id = ? AND status = 'completed' "
            "GROUP BY step, task HAVING count(*) > 1", [run_id])
        assert dupes == [], f"tasks completed more than once: {dupes}"
        ticks = store.query(
            "SELECT count(*) FROM steps WHERE run_id = ? AND status = 'completed' AND node = 'tick'", [run_id])
        assert ticks[0][0] == 60
        parts = store.query(
            "SELECT count(*) FROM steps WHERE run_id = ? AND status = 'completed' AND node = 'part'", [run_id])
        assert parts[0][0] == 16
        # Each step's plan (written with the previous step's changes) is recorded once.
        plans = store.query("SELECT step, count(*) FROM supersteps WHERE run_id = ? GROUP BY step "
                            "HAVING count(*) > 1", [run_id])
        assert plans == [], f"steps planned more than once: {plans}"

"""What ``workbench show`` keeps in view after the fact: that a run failed (a router failure, its
step limit) and was resumed, and the turns of a conversation, a superseded one that committed no
step included."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import run_cli

from workbench import END, START, Graph, Runner, add
from workbench.cli.reading import turn_steps
from workbench.loader import load_graph
from workbench.recording import Recorder
from workbench.store import TraceStore

TALK = str(Path(__file__).resolve().parent / "graphs" / "talk.py")


class Count(TypedDict):
    n: Annotated[int, add]


def _loop(broken: list[bool], max_steps: int = 20) -> Graph:
    """``tick`` adds 1 until n reaches 5; its router raises KeyError at n == 3 while ``broken``."""
    g = Graph("loop", Count, max_steps=max_steps)
    g.add_node("tick", lambda s: {"n": 1})

    def again(state: Count) -> str:
        if state["n"] == 3 and broken[0]:
            raise KeyError("n")
        return END if state["n"] >= 5 else "tick"

    g.route("tick", again, targets=["tick", END])
    g.edge(START, "tick")
    return g


def _show(store: TraceStore, run_id: str, cwd: Path) -> str:
    path = store.path
    store.close()
    res = run_cli("show", run_id, "--db", path, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_show_says_a_run_failed_on_its_router_after_it_was_resumed(store: TraceStore, tmp_path: Path) -> None:
    """The failure left no trace once resumed: the run's error is cleared, no step row records a
    router failure, and show read as if the run never failed."""
    broken = [True]
    failed = Runner(_loop(broken), store).run({})
    assert failed.status == "failed" and "router failed at step 3: KeyError" in str(failed.error)
    broken[0] = False
    done = Runner(_loop(broken), store).resume(failed.run_id)
    assert done.status == "completed", done.error
    assert "resumed at step 3 after it failed" in _show(store, failed.run_id, tmp_path)


def test_show_says_a_run_stopped_at_its_step_limit_after_it_was_resumed(store: TraceStore,
                                                                        tmp_path: Path) -> None:
    stopped = Runner(_loop([False], max_steps=2), store).run({})
    assert stopped.status == "failed" and "reached its step limit of 2" in str(stopped.error)
    done = Runner(_loop([False], max_steps=2), store).resume(stopped.run_id, max_steps=10)
    assert done.status == "completed", done.error
    assert "resumed at step 3 after it failed" in _show(store, stopped.run_id, tmp_path)


def test_show_prints_the_reason_a_resumed_event_records(store: TraceStore, tmp_path: Path) -> None:
    broken = [True]
    failed = Runner(_loop(broken), store).run({})
    reason = "router failed at step 3: KeyError: 'n'"
    Recorder(store).event(failed.run_id, 3, "resumed", None, {"from": "failed", "error": reason})
    Recorder(store).event(failed.run_id, 3, "resumed", None, {"from": "paused"})  # not a failure: no line
    out = _show(store, failed.run_id, tmp_path)
    assert f"resumed at step 3 after it failed: {reason}" in out
    assert out.count("resumed at step") == 1


def test_a_resumed_event_records_why_the_run_had_stopped(store: TraceStore) -> None:
    broken = [True]
    failed = Runner(_loop(broken), store).run({})
    broken[0] = False
    Runner(_loop(broken), store).resume(failed.run_id)
    [event] = [e for e in store.events(failed.run_id) if e["kind"] == "resumed"]
    assert event["detail"]["error"] == failed.error


# ---------------------------------------------------------------- conversation turns


def test_a_superseded_turn_that_committed_no_step_says_so(store: TraceStore, tmp_path: Path) -> None:
    """Such a turn was listed as "steps 3-2" (its next turn starts at the same step)."""
    runner = Runner(load_graph(TALK), store)
    first = runner.run({"messages": ["hi"]})
    second = runner.continue_run(first.run_id, {"messages": "how are you"})
    failed = runner.continue_run(second.run_id, {"messages": "fail please"})
    assert failed.status == "failed"
    last = runner.continue_run(failed.run_id, {"messages": "bye"})
    assert last.status == "completed", last.error
    out = _show(store, last.run_id, tmp_path)
    assert f"turn 3  {failed.run_id}  no step committed  superseded" in out, out
    assert f"turn 2  {second.run_id}  step 2  completed" in out
    assert "steps 3-2" not in out


@pytest.mark.parametrize(("first", "last", "shown"),
                         [(3, 3, "step 3"), (3, 5, "steps 3-5"), (3, 2, "no step committed")])
def test_turn_steps(first: int, last: int, shown: str) -> None:
    turn: dict[str, Any] = {"first_step": first, "last_step": last}
    assert turn_steps(turn) == shown

"""Which tasks a fork's first step runs: routed again from the edited state.

The recorded plan of step N was chosen by routers reading the state after step N-1. A fork at N
that edits that state (``--set``) asks what the run does *from* the edited state, so the step is
planned again the way the run planned it: from the outcomes of step N-1 (their edges, routers,
``Command`` destinations and joins), or from ``START`` when N begins a run or a conversation's
turn. Without edits the recorded plan stands (it is what the routers chose then; today's code
runs from there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.graph import START
from workbench.runtime.commands import decode_goto
from workbench.runtime.types import Outcome, TaskSpec
from workbench.store.reader import StoreReader

if TYPE_CHECKING:
    from workbench.runtime.planner import Planner


def starts_a_turn(store: StoreReader, run_id: str, step: int) -> bool:
    """Whether ``step`` of ``run_id`` is planned from START: a run's first step, or the first
    step of a conversation's turn."""
    if step == 1:
        return True
    owner = store.get_run(store.step_owner(run_id, step))
    return int((owner.get("config") or {}).get("first_step") or 1) == step


def replanned(planner: Planner, store: StoreReader, run_id: str, step: int,
              state: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, list[Any]]] | None:
    """The tasks and join bookkeeping of ``step`` planned from ``state`` (the state before it,
    edited), or None when the step before cannot be planned from again: one of its tasks failed
    into an ``on_error`` handler (the plan holds the failure, which routing does not redo)."""
    if starts_a_turn(store, run_id, step):
        finished: list[tuple[TaskSpec, Outcome]] = [(TaskSpec(START), Outcome("completed"))]
        joins: dict[str, list[Any]] = {}
    else:
        owner = store.step_owner(run_id, step - 1)
        before = store.plan(owner, step - 1)
        if before is None:
            return None
        specs = [TaskSpec.from_json(t) for t in before["tasks"]]
        final: dict[int, dict[str, Any]] = {}
        for row in store.tasks(owner, step - 1):
            cur = final.get(row["task"])
            if cur is None or cur["status"] not in ("completed", "closed"):
                final[row["task"]] = row
        finished = []
        for idx, spec in enumerate(specs):
            decided = final.get(idx)
            if decided is None or decided["status"] not in ("completed", "closed"):
                return None
            finished.append((spec, Outcome(decided["status"], goto=decode_goto(decided.get("goto")) or None)))
        joins = before["joins"] or {}
    plan, joins = planner.next(finished, dict(state), joins)
    return [t.to_json() for t in plan], joins

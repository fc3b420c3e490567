"""Playback: a recorded run reconstructed step by step from the trace store alone.

No graph code is imported or run: this works when the graph file has changed or is gone. A
fork's history includes the steps it shares with its ancestors.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.store.store import TraceStore


@dataclass
class StepView:
    """One superstep of a recorded run, as the store has it."""

    step: int
    owner: str  # the run (in a fork's lineage) that recorded this step
    planned: list[dict[str, Any]]
    tasks: list[dict[str, Any]]  # every attempt, in order
    calls: list[dict[str, Any]]  # model and tool calls, in order
    interrupts: list[dict[str, Any]]
    state_before: dict[str, Any]
    state_after: dict[str, Any] | None  # None when the step never committed (failed, waiting)
    edits_after: list[tuple[str, str, Any]] = field(default_factory=list)

    @property
    def nodes(self) -> list[str]:
        return [t["node"] for t in self.planned]

    def final_tasks(self) -> dict[int, dict[str, Any]]:
        """Per task index, the row that decided it: its completed attempt, else its last one."""
        out: dict[int, dict[str, Any]] = {}
        for row in self.tasks:
            cur = out.get(row["task"])
            if cur is None or cur["status"] != "completed":
                out[row["task"]] = row
        return out

    def diff(self) -> list[tuple[str, Any, Any]]:
        """``(key, before, after)`` for every key the step changed."""
        if self.state_after is None:
            return []
        return state_diff(self.state_before, self.state_after)


def state_diff(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two states, with both values (missing = None)."""
    keys = list(dict.fromkeys([*before, *after]))
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def text_diff(a: Any, b: Any, label_a: str = "recorded", label_b: str = "now") -> str:
    """A readable unified diff of two JSON-able values."""
    def lines(v: Any) -> list[str]:
        if isinstance(v, str):
            return v.splitlines()
        return json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False, default=str).splitlines()

    return "\n".join(difflib.unified_diff(lines(a), lines(b), label_a, label_b, lineterm="", n=2))


class RunHistory:
    """A recorded run (with its ancestors' shared history), step by step."""

    def __init__(self, store: TraceStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.run = store.get_run(run_id)
        self.lineage = store.lineage(run_id)
        self._states = store.states(run_id)
        self._steps: dict[int, StepView] = {}

    @property
    def last_step(self) -> int:
        """The highest step that ran (or was in flight when the run stopped)."""
        committed = self.store.last_committed_step(self.run_id)
        plan = self.store.plan(self.run_id, committed + 1)
        return committed if plan is not None and not plan["tasks"] else committed + 1

    def owner(self, step: int) -> str:
        owner = self.run_id
        for ancestor, upto in self.lineage:
            if step <= upto:
                owner = ancestor
        return owner

    def state_after(self, step: int) -> dict[str, Any]:
        """The state after ``step`` (0 = the input), including a fork's edits at its fork step."""
        known = [s for s in self._states if s <= step]
        return dict(self._states[max(known)]) if known else {}

    def step(self, step: int) -> StepView:
        """Everything recorded about one step."""
        if step in self._steps:
            return self._steps[step]
        owner = self.owner(step)
        plan = self.store.plan(self.run_id, step) or {"tasks": []}
        committed = self.store.last_committed_step(self.run_id)
        after = None
        if step <= committed:
            after = self.store.state_at(owner, step) if owner != self.run_id else self.state_after(step)
        edits: list[tuple[str, str, Any]] = []
        # A fork's own changes at its fork step are its edits, applied after the shared step.
        for i, (run, _) in enumerate(self.lineage[:-1]):
            fork_step = self.lineage[i + 1][1]
            if fork_step == step and run != owner:
                edits += [(k, op, v) for s, k, op, v in self._own_changes(run) if s == step]
        view = StepView(
            step=step, owner=owner, planned=plan["tasks"],
            tasks=self.store.tasks(owner, step), calls=self.store.llm_calls(owner, step),
            interrupts=[i for i in self.store.interrupts(owner) if i["step"] == step],
            state_before=self.state_after(step - 1) if step > 0 else {},
            state_after=after, edits_after=edits,
        )
        self._steps[step] = view
        return view

    def _own_changes(self, run_id: str) -> list[tuple[int, str, str, Any]]:
        rows = self.store.query("SELECT step, key, op, value FROM wb_changes WHERE run_id = ? ORDER BY step",
                                [run_id])
        return [(int(s), k, op, json.loads(v)) for s, k, op, v in rows]

    def steps(self) -> list[StepView]:
        return [self.step(s) for s in range(1, self.last_step + 1)]

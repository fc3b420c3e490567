"""Compare two recorded runs step by step (what a fork changed, or how two runs differ).

Steps are aligned by number. Where a step ran a subgraph, the subgraph's own runs are compared
the same way and their differences are listed under the calling step (to any depth)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workbench.history import RunHistory, state_diff
from workbench.store.store import TraceStore
from workbench.valuediff import Change, json_changes


@dataclass
class StepComparison:
    step: int
    nodes_a: list[str]
    nodes_b: list[str]
    shared: bool  # the same recorded step (a fork's shared history)
    state: list[tuple[str, Any, Any]] = field(default_factory=list)  # key, value in A, value in B
    # node, A, B, and what answered: "model", or "tool NAME" (a recorded tool call's result)
    answers: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # keys still different from an earlier step
    # The differences of each key in ``state`` that appear at this step (JSON paths, for an
    # append list only its new ones): those shown at an earlier step are not listed again.
    changes: dict[str, list[Change]] = field(default_factory=dict)
    subgraphs: list[SubgraphComparison] = field(default_factory=list)  # the step's subgraph runs

    @property
    def same(self) -> bool:
        return self.shared or (self.nodes_a == self.nodes_b and not self.state and not self.answers
                               and not self.carried and all(g.same for g in self.subgraphs))

    def changes_of(self, key: str, a: Any, b: Any) -> list[Change]:
        """The differences of ``key`` (valued ``a`` in A, ``b`` in B) to list at this step."""
        return self.changes[key] if key in self.changes else json_changes(a, b)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "same": self.same, "shared": self.shared, "nodes_a": self.nodes_a,
                "nodes_b": self.nodes_b,
                "state": [{"key": k, "a": a, "b": b, "changes": [c.to_json() for c in self.changes_of(k, a, b)]}
                          for k, a, b in self.state],
                "answers": [{"node": n, "kind": kind, "a": a, "b": b,
                             "changes": [c.to_json() for c in json_changes(a, b)]}
                            for n, a, b, kind in self.answers],
                "still_different": self.carried,
                "subgraphs": [g.to_json() for g in self.subgraphs]}


@dataclass
class SubgraphComparison:
    """The runs of one subgraph call of a step, in A and in B (``None``: that side did not call
    it), compared step by step."""

    node: str  # the calling node
    task: int  # the calling task within the step
    path: str  # the calling node's path from the root graph (``review``, ``review/inner``)
    run_a: str | None
    run_b: str | None
    steps: list[StepComparison] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.run_a is not None and self.run_b is not None and all(s.same for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "task": self.task, "path": self.path, "run_a": self.run_a,
                "run_b": self.run_b, "same": self.same, "steps": [s.to_json() for s in self.steps]}


@dataclass
class RunComparison:
    run_a: dict[str, Any]
    run_b: dict[str, Any]
    steps: list[StepComparison]
    totals: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        keys = ("run_id", "graph", "status", "parent_run_id", "fork_step", "code_version", "relation")
        return {"a": {k: self.run_a.get(k) for k in keys}, "b": {k: self.run_b.get(k) for k in keys},
                "steps": [s.to_json() for s in self.steps], "totals": self.totals}


def _answers(view: Any) -> list[tuple[str, str, str]]:
    """Each successful call of the step: node, what it answered, and who ("model" or "tool NAME")."""
    return [(c["node"], str((c["response"] or {}).get("content", "")) if c["kind"] == "llm" else str(c["response"]),
             "model" if c["kind"] == "llm" else f"tool {c['model']}")
            for c in view.calls if c["error"] is None]


def _totals(store: TraceStore, history: RunHistory) -> dict[str, float]:
    """Steps, model calls, tokens and cost of a run's history: its own steps and the ones a fork
    shares with its parent, with the model calls of the subgraph runs those steps ran."""
    calls, tokens, cost = _call_totals(store, history)
    # Counted as the Runs table counts them: a superseded run's pending step never ran.
    (steps,) = store._query("SELECT coalesce(CASE WHEN r.status <> 'running' THEN r.last_step END, "
                            "(SELECT max(step) - 1 FROM wb_supersteps s WHERE s.run_id = r.run_id), 0) "
                            "FROM wb_runs r WHERE r.run_id = ?", [history.run_id])[0]
    return {"steps": float(steps), "llm_calls": float(calls), "tokens": tokens, "cost_usd": cost}


def _call_totals(store: TraceStore, history: RunHistory) -> tuple[int, float, float]:
    tokens = cost = 0.0
    calls = 0
    for view in history.steps():
        for c in view.calls:
            tokens += (c["prompt_tokens"] or 0) + (c["completion_tokens"] or 0)
            cost += c["cost_usd"] or 0.0
            calls += 1 if c["kind"] == "llm" else 0
    # The subgraph runs called by those steps: by the run itself, and by the ancestors it shares
    # steps with (up to the step it forked at), as the timeline nests them.
    for (child,) in store._query(
        """
        SELECT r.run_id
        FROM run_lineage l JOIN wb_runs r ON r.caller_run_id = l.ancestor_id
        WHERE l.run_id = ? AND (l.depth = 0 OR r.caller_step <= l.upto_step)
        ORDER BY r.caller_step, r.caller_task, r.run_id
        """,
        [history.run_id],
    ):
        inner_calls, inner_tokens, inner_cost = _call_totals(store, RunHistory(store, str(child)))
        calls, tokens, cost = calls + inner_calls, tokens + inner_tokens, cost + inner_cost
    return calls, tokens, cost


def compare_runs(store: TraceStore, run_a: str, run_b: str) -> RunComparison:
    """Align two runs by step number and list what differs at each step, descending into the
    subgraph runs of the steps that differ."""
    ha, hb = RunHistory(store, run_a), RunHistory(store, run_b)
    return RunComparison(ha.run, hb.run, _compare_steps(store, ha, hb, 0),
                         {"a": _totals(store, ha), "b": _totals(store, hb)})


_MAX_DEPTH = 16  # subgraphs nest; a store never holds deeper ones, but a loop must not hang


def _compare_steps(store: TraceStore, ha: RunHistory, hb: RunHistory, depth: int) -> list[StepComparison]:
    steps = []
    shown: dict[str, set[str]] = {}  # each key's differences at the step before, as signatures
    for s in range(1, max(ha.last_step, hb.last_step) + 1):
        va = ha.step(s) if s <= ha.last_step else None
        vb = hb.step(s) if s <= hb.last_step else None
        shared = va is not None and vb is not None and va.owner == vb.owner and not va.edits_after \
            and not vb.edits_after
        cmp = StepComparison(s, va.nodes if va else [], vb.nodes if vb else [], shared)
        if not shared:
            sa = (va.state_after if va and va.state_after is not None else ha.state_after(s)) or {}
            sb = (vb.state_after if vb and vb.state_after is not None else hb.state_after(s)) or {}
            shown = _new_differences(cmp, state_diff(sa, sb), shown)
            aa, ab = _answers(va) if va else [], _answers(vb) if vb else []
            for i in range(max(len(aa), len(ab))):
                na = aa[i] if i < len(aa) else None
                nb = ab[i] if i < len(ab) else None
                if (na and na[1]) != (nb and nb[1]):
                    first = na or nb
                    assert first is not None
                    cmp.answers.append((first[0], na[1] if na else None, nb[1] if nb else None, first[2]))
            if depth < _MAX_DEPTH:
                cmp.subgraphs = _compare_subgraphs(store, va, vb, depth)
        steps.append(cmp)
    return steps


def _new_differences(cmp: StepComparison, diff: list[tuple[str, Any, Any]],
                     shown: dict[str, set[str]]) -> dict[str, set[str]]:
    """Fill ``cmp.state``/``cmp.changes`` with the differences that appear or change at its step,
    and ``cmp.carried`` with the keys that still hold differences shown before; returns this
    step's differences, for the next step.

    Compared by JSON path, not by whole value: an append list that grew by the same items in
    both runs (a conversation's next turn) keeps the difference of an earlier item, shown once
    where it appeared, not again at every later step."""
    now: dict[str, set[str]] = {}
    for key, a, b in diff:
        changes = json_changes(a, b)
        marks = [_signature(c) for c in changes]
        before = shown.get(key, set())
        new = [c for c, m in zip(changes, marks, strict=True) if m not in before]
        if new or not changes:
            cmp.state.append((key, a, b))
            cmp.changes[key] = new
        if len(new) < len(changes):
            cmp.carried.append(key)
        now[key] = set(marks)
    return now


def _signature(change: Change) -> str:
    """One difference as text: where it is, and both sides' values."""
    return json.dumps([change.path, change.kind, change.a, change.b], sort_keys=True, default=str)


def _subgraph_calls(store: TraceStore, view: Any) -> dict[tuple[int, int], dict[str, Any]]:
    """The subgraph runs called in one step, keyed by (calling task, call number)."""
    if view is None:
        return {}
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for child in store.children(view.owner):
        if child["caller_step"] == view.step:
            task = int(child["caller_task"])
            out[(task, sum(1 for t, _ in out if t == task))] = child
    return out


def _compare_subgraphs(store: TraceStore, va: Any, vb: Any, depth: int) -> list[SubgraphComparison]:
    calls_a, calls_b = _subgraph_calls(store, va), _subgraph_calls(store, vb)
    out = []
    for key in sorted({*calls_a, *calls_b}):
        ca, cb = calls_a.get(key), calls_b.get(key)
        some = ca or cb
        assert some is not None
        path = str(some["path"])
        cmp = SubgraphComparison(path.rsplit("/", 1)[-1], key[0], path, ca["run_id"] if ca else None,
                                 cb["run_id"] if cb else None)
        if ca and cb:
            cmp.steps = _compare_steps(store, RunHistory(store, ca["run_id"]), RunHistory(store, cb["run_id"]),
                                       depth + 1)
        out.append(cmp)
    return out

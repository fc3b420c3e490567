"""Compare two recorded runs step by step (what a fork changed, or how two runs differ)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.history import RunHistory, state_diff
from workbench.store.store import TraceStore


@dataclass
class StepComparison:
    step: int
    nodes_a: list[str]
    nodes_b: list[str]
    shared: bool  # the same recorded step (a fork's shared history)
    state: list[tuple[str, Any, Any]] = field(default_factory=list)  # key, value in A, value in B
    answers: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # node, A, B
    carried: list[str] = field(default_factory=list)  # keys still different from an earlier step

    @property
    def same(self) -> bool:
        return self.shared or (self.nodes_a == self.nodes_b and not self.state and not self.answers
                               and not self.carried)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "same": self.same, "shared": self.shared, "nodes_a": self.nodes_a,
                "nodes_b": self.nodes_b,
                "state": [{"key": k, "a": a, "b": b} for k, a, b in self.state],
                "answers": [{"node": n, "a": a, "b": b} for n, a, b in self.answers],
                "still_different": self.carried}


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


def _answers(view: Any) -> list[tuple[str, str]]:
    return [(c["node"], str((c["response"] or {}).get("content", "")) if c["kind"] == "llm" else str(c["response"]))
            for c in view.calls if c["error"] is None]


def _totals(store: TraceStore, history: RunHistory) -> dict[str, float]:
    tokens = cost = 0.0
    calls = 0
    for view in history.steps():
        for c in view.calls:
            tokens += (c["prompt_tokens"] or 0) + (c["completion_tokens"] or 0)
            cost += c["cost_usd"] or 0.0
            calls += 1 if c["kind"] == "llm" else 0
    return {"steps": float(history.last_step), "llm_calls": float(calls), "tokens": tokens, "cost_usd": cost}


def compare_runs(store: TraceStore, run_a: str, run_b: str) -> RunComparison:
    """Align two runs by step number and list what differs at each step."""
    ha, hb = RunHistory(store, run_a), RunHistory(store, run_b)
    steps = []
    shown: dict[str, tuple[Any, Any]] = {}
    for s in range(1, max(ha.last_step, hb.last_step) + 1):
        va = ha.step(s) if s <= ha.last_step else None
        vb = hb.step(s) if s <= hb.last_step else None
        shared = va is not None and vb is not None and va.owner == vb.owner and not va.edits_after \
            and not vb.edits_after
        cmp = StepComparison(s, va.nodes if va else [], vb.nodes if vb else [], shared)
        if not shared:
            sa = (va.state_after if va and va.state_after is not None else ha.state_after(s)) or {}
            sb = (vb.state_after if vb and vb.state_after is not None else hb.state_after(s)) or {}
            # Each difference is listed at the step where it appears or changes, not repeated.
            diff = state_diff(sa, sb)
            cmp.state = [(k, a, b) for k, a, b in diff if shown.get(k) != (a, b)]
            cmp.carried = [k for k, a, b in diff if shown.get(k) == (a, b)]
            shown = {k: (a, b) for k, a, b in diff}
            aa, ab = _answers(va) if va else [], _answers(vb) if vb else []
            for i in range(max(len(aa), len(ab))):
                na = aa[i] if i < len(aa) else None
                nb = ab[i] if i < len(ab) else None
                if (na and na[1]) != (nb and nb[1]):
                    cmp.answers.append(((na or nb)[0], na[1] if na else None, nb[1] if nb else None))  # type: ignore[index]
        steps.append(cmp)
    return RunComparison(ha.run, hb.run, steps, {"a": _totals(store, ha), "b": _totals(store, hb)})

"""Playback: a recorded run reconstructed step by step from the trace store alone.

No graph code is imported or run: this works when the graph file has changed or is gone. A
fork's history includes the steps it shares with its ancestors.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cached_property
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
        """Per task index, the row that decided it: its completed attempt (or the row saying it
        was closed unanswered), else its last one."""
        out: dict[int, dict[str, Any]] = {}
        for row in self.tasks:
            cur = out.get(row["task"])
            if cur is None or cur["status"] not in ("completed", "closed"):
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
        store.check_run(run_id)  # raises RunNotFoundError for an unknown run
        # States are rebuilt on demand (a run of 10,000 steps must open at once), a few cached.
        self._states: dict[int, dict[str, Any]] = {}
        self._steps: dict[int, StepView] = {}

    # Read on first use, then kept: the state at a step needs none of them (issue 11: opening
    # a history and reading one state is what the workbench's inspector does on every move;
    # the run's row holds its final state, which for a long run is the largest value of all).
    @cached_property
    def run(self) -> dict[str, Any]:
        """The run's row (``TraceStore.get_run``)."""
        return self.store.get_run(self.run_id)

    @cached_property
    def lineage(self) -> list[tuple[str, int]]:
        """``[(run_id, last step taken from it), ...]`` from this run up to its root."""
        return self.store.lineage(self.run_id)

    @cached_property
    def last_step(self) -> int:
        """The highest step that ran (or was in flight when the run stopped)."""
        return self.store.last_step(self.run_id)

    def owner(self, step: int) -> str:
        owner = self.run_id
        for ancestor, upto in self.lineage:
            if step <= upto:
                owner = ancestor
        return owner

    def state_after(self, step: int) -> dict[str, Any]:
        """The state after ``step`` (0 = the input), including a fork's edits at its fork step."""
        if step < 0:
            return {}
        if step not in self._states:
            if len(self._states) > 64:
                self._states.pop(next(iter(self._states)))
            self._states[step] = self.store.state_at(self.run_id, step)
        return dict(self._states[step])

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
        # A fork's own changes at its fork step are its edits, applied after the shared step —
        # an ancestor's before its descendants' (root first), as the store applies them.
        for i in reversed(range(len(self.lineage) - 1)):
            run, fork_step = self.lineage[i][0], self.lineage[i + 1][1]
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
        rows = self.store._query("SELECT step, key, op, value FROM wb_changes WHERE run_id = ? ORDER BY step",
                                [run_id])
        return [(int(s), k, op, json.loads(v)) for s, k, op, v in rows]

    def steps(self) -> list[StepView]:
        return [self.step(s) for s in range(1, self.last_step + 1)]


@dataclass
class TimelineRow:
    """One superstep of a run, summarised for the timeline."""

    step: int
    nodes: list[str]
    status: str  # completed | failed | interrupted | retried | pending
    start_ms: float  # offset from the run's start
    duration_ms: float
    attempts: int
    error: str | None
    tokens: int
    shared: bool  # recorded by an ancestor (a fork's shared history)
    visit: int = 1  # how many times the step's (first) node has run so far: >1 inside a loop
    depth: int = 0  # 0 for the run's own steps; 1 for a subgraph's inner steps under them, …
    run_id: str = ""  # the run that recorded the step: a subgraph's child run for inner steps ("" = this run)
    inner: int = 0  # how many rows of inner (subgraph) steps follow this one, nested to any depth

    @property
    def label(self) -> str:
        """Node names with parallel branches grouped (``research ×3``) and loop visits (``draft ↺2``)."""
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n] = counts.get(n, 0) + 1
        text = ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in counts.items())
        return f"{text} ↺{self.visit}" if self.visit > 1 else text


def timeline(store: TraceStore, run_id: str) -> list[TimelineRow]:
    """Every step of a run in a few bulk queries (fast for runs of tens of thousands of steps),
    with the inner steps of the subgraphs it called after the step that called them."""
    with store.reading():  # one hold on the store for all of them
        return timeline_since(store, run_id)


@dataclass
class TimelineBase:
    """What rows read later (``timeline_since``) are relative to: the run's start and the loop
    visits counted so far. Kept by a caller that reads a live run's timeline a step at a time."""

    t0: float | None = None  # the run's first task start (epoch µs)
    visits: dict[str, int] = field(default_factory=dict)
    end_ms: float = 0.0  # where the latest step read ends (a pending step is drawn from there)


def timeline_since(store: TraceStore, run_id: str, since: int = 0, base: TimelineBase | None = None,
                   *, nested: bool = True) -> list[TimelineRow]:
    """The timeline rows of the steps from ``since`` on (all when 0), relative to ``base``
    (updated in place: ``t0`` when first known, ``visits`` by the rows returned). Reads only
    those steps: following a live run costs the same at step 10,000 as at step 10."""
    base = base if base is not None else TimelineBase()
    rows = _timeline(store, run_id, since, base)
    if not nested:
        return rows
    children: dict[int, list[str]] = {}
    for child, step in store._query(
        """
        SELECT r.run_id, r.caller_step
        FROM run_lineage l JOIN wb_runs r ON r.caller_run_id = l.ancestor_id
        WHERE l.run_id = ? AND (l.depth = 0 OR r.caller_step <= l.upto_step) AND r.caller_step >= ?
        ORDER BY r.caller_step, r.caller_task, r.run_id
        """,
        [run_id, since],
    ):
        children.setdefault(int(step), []).append(str(child))
    if not children:
        return rows
    out: list[TimelineRow] = []
    for row in rows:
        out.append(row)
        for child in children.get(row.step, []):
            # A subgraph's bars share the caller's clock, so they line up under its step.
            inner = timeline_since(store, child, 0, TimelineBase(t0=base.t0))
            for r in inner:
                r.depth += 1
                r.run_id = r.run_id or child
                r.shared = r.shared or row.shared
            row.inner += len(inner)
            out += inner
    return out


def _timeline(store: TraceStore, run_id: str, since: int, base: TimelineBase) -> list[TimelineRow]:
    # The step after the last committed one, read before the tasks: each query sees the store as
    # it is when it runs, and a run recorded meanwhile (in this process, or another) may commit
    # steps between two of them. Read after, it could name a step beyond the tasks read, and a
    # live view following from that step skipped the ones between for good.
    nxt = store.last_committed_step(run_id) + 1
    plan = store.plan(run_id, nxt)
    tasks = store._query(
        """
        SELECT t.step, t.task, t.node, t.attempt, t.status, epoch_us(t.started_at), epoch_us(t.ended_at),
               t.duration_ms, t.error, l.depth
        FROM run_lineage l JOIN wb_tasks t ON t.run_id = l.ancestor_id
        WHERE l.run_id = ? AND (l.depth = 0 OR t.step <= l.upto_step) AND t.step >= ?
        ORDER BY t.step, t.task, t.attempt, t.started_at
        """,
        [run_id, since],
    )
    tokens = dict(store._query(
        """
        SELECT c.step, sum(coalesce(c.prompt_tokens, 0) + coalesce(c.completion_tokens, 0))
        FROM run_lineage l JOIN wb_llm_calls c ON c.run_id = l.ancestor_id
        WHERE l.run_id = ? AND (l.depth = 0 OR c.step <= l.upto_step) AND c.step >= ?
        GROUP BY c.step
        """,
        [run_id, since],
    ))
    rows: dict[int, dict[str, Any]] = {}
    t0 = base.t0
    for step, task, node, attempt, status, start, end, dur, error, depth in tasks:
        if t0 is None or (start is not None and start < t0):
            t0 = start if start is not None else t0
        r = rows.setdefault(step, {"tasks": {}, "start": start, "end": end, "attempts": 1, "error": None,
                                   "shared": depth > 0})
        r["tasks"].setdefault(task, {"node": node, "status": status, "excluded_ms": 0.0})
        cur = r["tasks"][task]
        if start is not None and end is not None and dur is not None:
            # Time the task's recorded duration leaves out (the model library's import): the
            # bar keeps the wall clock, the duration shown is what the step itself took.
            cur["excluded_ms"] += max(0.0, (end - start) / 1000 - dur)
        if cur["status"] not in ("completed", "closed"):
            cur["status"] = status
        r["attempts"] = max(r["attempts"], attempt)
        if start is not None and (r["start"] is None or start < r["start"]):
            r["start"] = start
        if end is not None and (r["end"] is None or end > r["end"]):
            r["end"] = end
        if error and r["error"] is None:
            r["error"] = error
    if base.t0 is None:
        base.t0 = t0
    t0 = base.t0
    out: list[TimelineRow] = []
    visits = base.visits
    for step in sorted(rows):
        r = rows[step]
        statuses = [t["status"] for t in r["tasks"].values()]
        if "failed" in statuses:
            status = "failed"
        elif "interrupted" in statuses:
            status = "interrupted"
        elif r["attempts"] > 1:
            status = "retried"
        else:
            status = "completed"
        start = r["start"] or t0 or 0
        nodes = [t["node"] for _, t in sorted(r["tasks"].items())]
        if nodes:
            visits[nodes[0]] = visits.get(nodes[0], 0) + 1
        out.append(TimelineRow(
            step=step, nodes=nodes, status=status, visit=visits.get(nodes[0], 1) if nodes else 1,
            start_ms=(start - (t0 or 0)) / 1000,
            duration_ms=max(0.0, ((r["end"] or start) - start) / 1000
                            - min((t["excluded_ms"] for t in r["tasks"].values()), default=0.0)),
            attempts=r["attempts"], error=r["error"], tokens=int(tokens.get(step, 0) or 0), shared=r["shared"],
        ))
    # A step planned but not started (paused before it): show it as pending. (One that started
    # meanwhile has its tasks among those read: it is not pending, and not beyond them.)
    base.end_ms = max([base.end_ms] + [r.start_ms + r.duration_ms for r in out])
    if plan and plan["tasks"] and nxt not in rows and (not rows or nxt > max(rows)):
        end_ms = base.end_ms
        out.append(TimelineRow(nxt, [t["node"] for t in plan["tasks"]], "pending", end_ms, 0.0, 0, None, 0, False))
    return out



def nested_tasks(store: TraceStore, run_id: str, depth: int = 0, path: str = "",
                 address: str = "") -> list[dict[str, Any]]:
    """A run's node executions with its subgraphs' inside them, in reading order: after the rows
    of each task that ran a subgraph come the child run's rows (and its children's), each with
    ``depth`` (0 for the run's own), ``path`` (``review/approve``), ``address`` (the step as
    ``fork --at`` takes it: ``3``, ``3/review/2``) and ``run_id`` (the run that recorded it)."""
    rows = store.tasks(run_id)
    children: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for child in store.children(run_id):
        children.setdefault((child["caller_step"], child["caller_task"]), []).append(child)
    # Tasks per (step, node): a node run by several tasks of a step is addressed NODE#TASK.
    runs_of: dict[tuple[int, str], set[int]] = {}
    for row in rows:
        runs_of.setdefault((row["step"], row["node"]), set()).add(row["task"])
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        row.update(depth=depth, path=f"{path}{row['node']}", address=f"{address}{row['step']}", run_id=run_id)
        out.append(row)
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is None or (nxt["step"], nxt["task"]) != (row["step"], row["task"]):
            mine = sorted(children.pop((row["step"], row["task"]), []), key=_call_number)
            several = len(runs_of[(row["step"], row["node"])]) > 1
            for child in mine:
                call = _call_number(child)
                hop = row["node"] + (f"#{row['task']}" if several or call else "") + (f".{call}" if call else "")
                out += nested_tasks(store, child["run_id"], depth + 1, f"{row['path']}/",
                                    f"{row['address']}/{hop}/")
    return out


def _call_number(child: dict[str, Any]) -> int:
    """N of a child run id ``CALLER/STEP.TASK.N``: the task's N-th subgraph call."""
    tail = str(child["run_id"]).rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0

"""The runtime: runs a graph in supersteps and records every transition before the next one.

A superstep runs every task planned for it concurrently (asyncio; sync nodes in threads when
there is more than one task or a timeout), then merges their updates in plan order — so the
result does not depend on which branch finished first — then asks edges and routers what runs
next. The step's state changes and the next step's plan are written to the trace store in one
journal write before the next step starts: a killed process loses at most the step in flight,
and :meth:`Runner.resume` continues from the last committed step without re-running any task
that was recorded as completed.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench import codec
from workbench.context import (
    Context,
    Event,
    InterruptSignal,
    Listener,
    RecordedCall,
    ReplayDivergence,
    reset_current,
    set_current,
)
from workbench.errors import (
    InputError,
    InvalidUpdateError,
    LLMRejectedError,
    NodeTimeoutError,
    RoutingError,
    RunStateError,
    SerializationError,
    StepLimitError,
    StoreError,
    WorkbenchError,
)
from workbench.graph import END, START, Graph, Node, Send, display_path
from workbench.redact import scrub
from workbench.state import Change, apply_changes
from workbench.store.store import TraceStore, now_us

NO_VALUE: Any = object()
"""Sentinel: resume without a value (a paused run, or a crashed one)."""

# Errors that a retry cannot fix: the same code and input fail the same way (a model call every
# provider refused — bad credentials, bad request — fails the same way too).
_NOT_RETRYABLE = (SerializationError, InvalidUpdateError, LLMRejectedError)


def new_run_id() -> str:
    """A sortable, unique run id: milliseconds since the epoch then random bits, in hex."""
    return f"{time.time_ns() // 1_000_000:011x}{random.getrandbits(24):06x}"


@dataclass
class TaskSpec:
    """One planned execution of a node within a superstep."""

    node: str
    arg: Any = None
    send: bool = False
    error: dict[str, Any] | None = None  # for a task reached through on_error

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node}
        if self.send:
            out["send"] = True
            out["arg"] = self.arg
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(data["node"], data.get("arg"), bool(data.get("send")), data.get("error"))


@dataclass
class Outcome:
    """How one task ended."""

    status: str  # completed | failed | interrupted
    update: dict[str, Any] | None = None
    error: BaseException | None = None
    message: str | None = None
    interrupt: Any = None


@dataclass
class _Resume:
    """What a task re-run after a pause or crash continues from."""

    attempt: int
    resume_values: list[Any]
    recorded: list[RecordedCall]
    next_seq: int


@dataclass
class RunResult:
    """Where a run stands after :meth:`Runner.run` or :meth:`Runner.resume` returns."""

    run_id: str
    status: str  # running | waiting | paused | completed | failed
    state: dict[str, Any]
    step: int
    interrupt: Any = None
    error: str | None = None
    paused: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` object."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "state": codec.to_jsonable(self.state),
            "interrupt": codec.to_jsonable(self.interrupt),
            "error": self.error,
            "step": self.step,
            "paused": self.paused,
        }


@dataclass
class _Run:
    """The in-memory state of one run being executed."""

    run_id: str
    state: dict[str, Any]
    step: int
    plan: list[TaskSpec]
    joins: dict[str, list[str]]
    config: dict[str, Any]
    completed: dict[int, Outcome] = field(default_factory=dict)
    resume: dict[int, _Resume] = field(default_factory=dict)
    known_interrupts: set[tuple[int, int, int, int]] = field(default_factory=set)
    skip_before: bool = False
    history: list[str] = field(default_factory=list)
    extended: dict[str, list[Any]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    # A one-task step's completed task row, written with the step's commit (one journal write).
    deferred: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Runner:
    """Runs (and resumes) one graph, recording into a trace store.

    Args:
        graph: the graph to run (validated on first use).
        store: the trace store; ``None`` runs unrecorded (no resume, no replay).
        max_concurrency: at most this many tasks of a superstep run at once.
        listener: called with an :class:`Event` for each thing that happens (progress display).
    """

    def __init__(
        self,
        graph: Graph,
        store: TraceStore | None = None,
        *,
        max_concurrency: int = 16,
        listener: Listener | None = None,
        replay: Any = None,
        _inline_ctx: Context | None = None,
    ) -> None:
        self.graph = graph.validate()
        self.schema = graph.schema
        self.store = store
        self.max_concurrency = max_concurrency
        self.listener = listener
        # A subgraph runs inline inside its parent's task: its nodes share that task's context,
        # so their model calls and interrupts are recorded (and served on resume) by the parent.
        self._inline_ctx = _inline_ctx
        # A replay session (workbench.replay) serves every call from a recording and checks
        # each step against it; None for live runs.
        self._replay = replay
        self._rng = random.Random()
        self._break_when: Any = None
        # What the last run changed (a subgraph's parent turns this into its update).
        self._last_touched: set[str] = set()
        self._last_extended: dict[str, list[Any]] = {}

    # ----------------------------------------------------------------- public API

    def run(self, input: dict[str, Any] | None = None, **options: Any) -> RunResult:
        """Start a run and drive it until it completes, fails, waits for input or pauses.

        Options: ``run_id``, ``break_before`` / ``break_after`` (node names), ``break_when``
        (a predicate over the state, checked after each step), ``max_steps``.
        """
        return _run_sync(self.arun(input, **options))

    def resume(self, run_id: str, value: Any = NO_VALUE, **options: Any) -> RunResult:
        """Continue a waiting, paused, failed or interrupted-by-crash run (see :meth:`aresume`)."""
        return _run_sync(self.aresume(run_id, value, **options))

    async def arun(
        self,
        input: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
        break_when: Any = None,
        max_steps: int | None = None,
    ) -> RunResult:
        """The async form of :meth:`run`."""
        if input is not None and not isinstance(input, dict):
            raise InputError(f"input must be a JSON object, got {type(input).__name__}")
        try:
            state, changes = self.schema.initial(input)
        except InvalidUpdateError as exc:
            raise InputError(str(exc).replace("input: ", "input: ", 1)) from None
        config = {
            "break_before": self._check_names(break_before, "break_before"),
            "break_after": self._check_names(break_after, "break_after"),
            "max_steps": max_steps or self.graph.max_steps,
        }
        run = _Run(run_id or new_run_id(), state, 1, [], {}, config)
        self._break_when = break_when
        try:
            input_json = codec.dumps(input or {}, "input")
        except SerializationError as exc:
            raise InputError(str(exc)) from None
        start_changes = self._encode_changes(run.run_id, 0, changes)
        plan, run.joins = self._plan_next([(TaskSpec(START), Outcome("completed"))], run.state, run.joins)
        run.plan = plan
        if self.store is not None:
            run_row = {
                "run_id": run.run_id, "graph": self.graph.name,
                "graph_file": display_path(self.graph.file),
                "code_version": self.graph.code_version,
                "node_versions": codec.dumps(self.graph.node_versions()),
                "status": "running", "started_at": now_us(), "input": input_json,
                "config": codec.dumps(config),
            }
            if run_id is not None:
                # An id chosen by the caller may be taken: claim it in the database at once.
                self.store.reserve_run(run_row)
                self.store.record_many([*start_changes, self._plan_record(run, 1)])
            else:
                self.store.record_many([("run", run_row), *start_changes, self._plan_record(run, 1)])
        self._emit(Event("run_started", run.run_id, 0, None, {"graph": self.graph.name}))
        return await self._execute(run)

    async def aresume(
        self,
        run_id: str,
        value: Any = NO_VALUE,
        *,
        break_when: Any = None,
        break_before: Iterable[str] | None = None,
        break_after: Iterable[str] | None = None,
    ) -> RunResult:
        """Continue a run recorded in the store.

        A *waiting* run needs ``value``: it answers the oldest open interrupt, and the node that
        asked is run again from its top, where :func:`interrupt` now returns ``value``. A
        *paused* run continues from its breakpoint. A *failed* run re-runs the tasks that failed
        (its finished siblings are not run again). A *running* run (the process died) continues
        from its last committed step. Model calls recorded by the task being continued are
        served from the recording, not made again.
        """
        store = self._require_store()
        store.sweep()  # a run whose process died: load what its journal holds first
        rec = store.get_run(run_id)
        status = rec["status"]
        if status == "completed":
            raise RunStateError(f"run {run_id} already completed; fork it to run again")
        if rec["graph"] != self.graph.name:
            raise RunStateError(f"run {run_id} belongs to graph {rec['graph']!r}, not {self.graph.name!r}")
        open_ones = [i for i in store.interrupts(run_id) if i["resumed_at"] is None]
        answer: dict[str, Any] | None = None
        if status == "waiting" and open_ones:
            if value is NO_VALUE:
                payload = open_ones[0]["payload"]
                raise RunStateError(
                    f"run {run_id} is waiting for input at node {open_ones[0]['node']!r} "
                    f"({codec.dumps(payload)[:120]}); resume it with --input JSON"
                )
            try:
                answer_json = codec.dumps(value, "resume value")
            except SerializationError as exc:
                raise InputError(str(exc)) from None
            first = open_ones[0]
            answer = {k: first[k] for k in ("run_id", "step", "task", "attempt", "idx")}
            answer.update(response=answer_json, resumed_at=now_us())
        elif value is not NO_VALUE:
            raise RunStateError(f"run {run_id} is {status}, not waiting for input; resume it without --input")

        config = rec["config"] or {}
        if break_before is not None:
            config["break_before"] = self._check_names(break_before, "break_before")
        if break_after is not None:
            config["break_after"] = self._check_names(break_after, "break_after")
        paused = config.pop("paused", None) or {}
        # Exactly once: of two processes resuming (or answering) this run at once, one gets it.
        store.claim(run_id, allowed=[status], answer=answer, config=codec.dumps(config))
        committed = store.last_committed_step(run_id)
        step = committed + 1
        plan = store.plan(run_id, step)
        if plan is None:
            raise StoreError(f"run {run_id} has no recorded plan for step {step}; the trace is incomplete")
        state = self.schema.decode(store.state_at(run_id, committed))
        run = _Run(run_id, state, step, [TaskSpec.from_json(t) for t in plan["tasks"]],
                   plan["joins"] or {}, config)
        self._break_when = break_when
        run.skip_before = status == "paused" and paused.get("when") == "before" and paused.get("step") == step
        self._load_step_progress(run, store, store.interrupts(run_id))
        store.record("event", {"run_id": run_id, "step": step, "kind": "resumed", "node": None,
                               "detail": codec.dumps({"from": status}), "created_at": now_us()})
        self._emit(Event("run_resumed", run_id, step, None, {"from": status}))
        return await self._execute(run)

    def fork(self, parent_run_id: str, at_step: int, **options: Any) -> RunResult:
        """Fork a recorded run at a step and run the fork live (see :meth:`afork`)."""
        return _run_sync(self.afork(parent_run_id, at_step, **options))

    async def afork(
        self,
        parent_run_id: str,
        at_step: int,
        *,
        set_state: dict[str, Any] | None = None,
        llm_responses: dict[int, str] | None = None,
        break_before: Iterable[str] | None = None,
        break_after: Iterable[str] | None = None,
        break_when: Any = None,
    ) -> RunResult:
        """Make a new run that shares ``parent_run_id``'s history before ``at_step``, apply the
        edits, and run step ``at_step`` onwards live with the current code.

        ``set_state`` replaces state keys (validated against the schema) as they stood before
        ``at_step``. ``llm_responses`` maps the number of a model call of that step (1-based, in
        task then call order, as ``workbench show RUN --step N`` lists them) to the answer the
        fork gets instead; calls before it in the same node are served from the recording, calls
        after it are made live. The fork records the current code version, so a fork that ran
        different code is visible. Nothing is recorded when an edit is invalid.
        """
        store = self._require_store()
        parent = store.get_run(parent_run_id)
        if parent["graph"] != self.graph.name:
            raise RunStateError(
                f"run {parent_run_id} belongs to graph {parent['graph']!r}, not {self.graph.name!r}"
            )
        last = store.last_step(parent_run_id)
        if at_step < 1 or at_step > last:
            raise InputError(f"run {parent_run_id} has steps 1..{last}; --at {at_step} is out of range")
        plan = store.plan(parent_run_id, at_step)
        if plan is None:
            raise InputError(f"run {parent_run_id} has no recorded plan for step {at_step}")
        state = self.schema.decode(store.state_at(parent_run_id, at_step - 1))
        edits = dict(set_state or {})
        try:
            self.schema.check_keys(edits, "--set")
            for key, value in edits.items():
                self.schema.check_type(key, value, "--set")
                if self.schema.rule(key).kind == "append" and not isinstance(value, list):
                    # An edit sets the whole value: an append key holds a list.
                    raise InvalidUpdateError(f"--set: state key {key!r} holds a list, got {type(value).__name__}")
            edit_changes = self._encode_changes("", at_step - 1, [(k, "set", v) for k, v in edits.items()])
        except (InvalidUpdateError, SerializationError) as exc:
            raise InputError(str(exc)) from None
        state.update(self.schema.decode(edits))

        # A fork is a fresh live run: it keeps the parent's step limit, not its breakpoints.
        config = {k: v for k, v in (parent["config"] or {}).items() if k not in ("paused", "break_before",
                                                                                 "break_after")}
        if break_before is not None:
            config["break_before"] = self._check_names(break_before, "break_before")
        if break_after is not None:
            config["break_after"] = self._check_names(break_after, "break_after")
        run = _Run(new_run_id(), state, at_step, [TaskSpec.from_json(t) for t in plan["tasks"]],
                   plan["joins"] or {}, config)
        self._break_when = break_when
        seeded = self._seed_llm_edits(run, store, parent_run_id, at_step, llm_responses or {})

        records: list[tuple[str, dict[str, Any]]] = [
            ("run", {
                "run_id": run.run_id, "graph": self.graph.name, "graph_file": display_path(self.graph.file),
                "code_version": self.graph.code_version,
                "node_versions": codec.dumps(self.graph.node_versions()),
                "status": "running", "started_at": now_us(), "parent_run_id": parent_run_id,
                "fork_step": at_step - 1, "input": codec.dumps(parent["input"] or {}),
                "config": codec.dumps(config),
            }),
            *[(kind, {**row, "run_id": run.run_id}) for kind, row in edit_changes],
            self._plan_record(run, at_step),
            *seeded,
            ("event", {"run_id": run.run_id, "step": at_step - 1, "kind": "forked", "node": None,
                       "detail": codec.dumps({"parent": parent_run_id, "at": at_step, "set": sorted(edits),
                                              "llm_responses": sorted(llm_responses or {})}),
                       "created_at": now_us()}),
        ]
        store.record_many(records)
        self._emit(Event("run_started", run.run_id, at_step - 1, None,
                         {"graph": self.graph.name, "parent": parent_run_id}))
        return await self._execute(run)

    def _seed_llm_edits(
        self, run: _Run, store: TraceStore, parent_id: str, step: int, edits: dict[int, str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Record, in the fork, the parent's calls up to each edited one with the new answer, and
        arrange for the fork's tasks to be served them."""
        if not edits:
            return []
        calls = self._final_calls(store, parent_id, step)
        llm_only = [c for c in calls if c["kind"] == "llm"]
        records: list[tuple[str, dict[str, Any]]] = []
        for number, text in sorted(edits.items()):
            if not llm_only:
                raise InputError(f"--llm-response: step {step} of run {parent_id} made no model call")
            if number < 1 or number > len(llm_only):
                raise InputError(
                    f"--llm-response {number}: step {step} of run {parent_id} has "
                    f"{len(llm_only)} model call(s); number them 1..{len(llm_only)}"
                )
            target = llm_only[number - 1]
            task = target["task"]
            prior = run.resume.get(task)
            if prior is not None:
                raise InputError("--llm-response: edit one model call per node")
            served: list[RecordedCall] = []
            for c in calls:
                if c["task"] != task or c["seq"] > target["seq"]:
                    continue
                response = c["response"]
                if c["seq"] == target["seq"]:
                    response = {"role": "assistant", "content": text}
                row = {k: c[k] for k in ("step", "task", "node", "seq", "kind", "model", "prompt_tokens",
                                         "completion_tokens", "cost_usd", "latency_ms", "attempts",
                                         "fingerprint")}
                row.update({"run_id": run.run_id, "attempt": 1, "error": None, "created_at": now_us(),
                            "messages": codec.dumps(c["messages"]), "params": codec.dumps(c["params"]),
                            "response": codec.dumps(response)})
                records.append(("llm", row))
                served.append(RecordedCall(c["seq"], c["fingerprint"] or "", response, row))
            run.resume[task] = _Resume(1, [], served, target["seq"] + 1)
        return records

    @staticmethod
    def _final_calls(store: TraceStore, run_id: str, step: int) -> list[dict[str, Any]]:
        """The model and tool calls of each task's last attempt at a step, in task/call order."""
        owner = store.step_owner(run_id, step)
        calls = store.llm_calls(owner, step)
        last_attempt: dict[int, int] = {}
        for c in calls:
            last_attempt[c["task"]] = max(last_attempt.get(c["task"], 0), c["attempt"])
        return [c for c in calls if c["attempt"] == last_attempt[c["task"]]]

    # ----------------------------------------------------------------- loading progress

    def _load_step_progress(self, run: _Run, store: TraceStore, interrupts: list[dict[str, Any]]) -> None:
        """Which tasks of the current step already finished, and where the others stand."""
        rows = store.tasks(run.run_id, run.step)
        calls = store.llm_calls(run.run_id, run.step)
        for i in interrupts:
            run.known_interrupts.add((i["step"], i["task"], i["attempt"], i["idx"]))
        for idx in range(len(run.plan)):
            mine = [r for r in rows if r["task"] == idx]
            done = [r for r in mine if r["status"] == "completed"]
            if done:
                run.completed[idx] = Outcome("completed", update=done[0]["update"])
                continue
            my_calls = [c for c in calls if c["task"] == idx]
            attempt = max([r["attempt"] for r in mine] + [c["attempt"] for c in my_calls] + [1])
            next_seq = max([c["seq"] for c in my_calls] + [-1]) + 1
            last = mine[-1] if mine else None
            if last is not None and last["status"] == "failed" and last["attempt"] == attempt:
                run.resume[idx] = _Resume(attempt + 1, [], [], next_seq)
                continue
            # Answers belong to the attempt that asked: a retried node asks again.
            answers = [
                i["response"] for i in interrupts
                if i["step"] == run.step and i["task"] == idx and i["attempt"] == attempt
                and i["resumed_at"] is not None
            ]
            recorded = [
                RecordedCall(c["seq"], c["fingerprint"] or "", c["response"], c)
                for c in my_calls if c["attempt"] == attempt
            ]
            run.resume[idx] = _Resume(attempt, answers, recorded, next_seq)

    # ----------------------------------------------------------------- the loop

    async def _execute(self, run: _Run) -> RunResult:
        break_before = set(run.config.get("break_before") or [])
        break_after = set(run.config.get("break_after") or [])
        max_steps = int(run.config.get("max_steps") or self.graph.max_steps)
        while True:
            if not run.plan:
                return self._finish(run, "completed")
            if run.step > max_steps:
                err = StepLimitError(self._loop_message(run, max_steps))
                return self._finish(run, "failed", error=str(err), exc=err)
            hit = [t.node for t in run.plan if t.node in break_before]
            if hit and not run.skip_before:
                return self._pause(run, "before", hit[0])
            run.skip_before = False

            if self._listening:
                self._emit(Event("step_started", run.run_id, run.step, None,
                                 {"nodes": [t.node for t in run.plan]}))
            if self._replay is not None:
                self._replay.before_step(run.step, run.plan)
            outcomes = await self._run_step(run)
            if self._replay is not None:
                self._replay.check_outcomes(run.step, run.plan, outcomes)

            waiting = [(i, o) for i, o in enumerate(outcomes) if o.status == "interrupted"]
            if waiting:
                return self._wait(run, waiting[0][1].interrupt, run.plan[waiting[0][0]].node)
            failed = [(run.plan[i], o) for i, o in enumerate(outcomes) if o.status == "failed"]
            unhandled = [(t, o) for t, o in failed if not self.graph.nodes[t.node].on_error]
            if unhandled:
                spec, out = unhandled[0]
                return self._finish(run, "failed", error=f"node {spec.node!r} failed: {out.message}", exc=out.error)

            try:
                updates = [
                    (t.node, o.update) for t, o in zip(run.plan, outcomes, strict=True) if o.status == "completed"
                ]
                new_state, changes = self.schema.merge(run.state, updates)
                plan, joins = self._plan_next(list(zip(run.plan, outcomes, strict=True)), new_state, run.joins)
                records = self._encode_changes(run.run_id, run.step, changes)
            except WorkbenchError as exc:
                return self._finish(run, "failed", error=str(exc), exc=exc)
            except Exception as exc:  # a router raised
                return self._finish(run, "failed", error=f"router failed at step {run.step}: "
                                    f"{type(exc).__name__}: {exc}", exc=exc)
            self._track_inline_changes(run, changes)
            if self._replay is not None:
                edits = self._replay.after_merge(run.step, new_state)
                if edits:
                    # A fork's edits, applied where the fork applied them.
                    new_state = self.schema.decode(apply_changes(dict(new_state), edits))
            finished = run.plan
            run.state, run.plan, run.joins = new_state, plan, joins
            run.history.append("+".join(sorted({t.node for t in finished})))
            if self.store is not None:
                self.store.record_many([*run.deferred, *records, self._plan_record(run, run.step + 1)])
                run.deferred.clear()
            if self._listening:
                self._emit(Event("step_committed", run.run_id, run.step, None,
                                 {"nodes": [t.node for t in finished], "next": [t.node for t in plan]}))
            done_step = run.step
            run.step += 1
            run.completed, run.resume = {}, {}
            hit_after = [t.node for t in finished if t.node in break_after]
            if hit_after:
                return self._pause(run, "after", hit_after[0], at_step=done_step)
            if self._break_when is not None and run.plan and self._break_when(self.schema.view(run.state)):
                return self._pause(run, "condition", None, at_step=done_step)

    async def _run_step(self, run: _Run) -> list[Outcome]:
        if len(run.plan) == 1:
            return [await self._run_task(run, 0, run.plan[0], parallel=False)]
        sem = asyncio.Semaphore(self.max_concurrency)

        async def guarded(i: int, spec: TaskSpec) -> Outcome:
            async with sem:
                return await self._run_task(run, i, spec, parallel=True)

        return list(await asyncio.gather(*(guarded(i, s) for i, s in enumerate(run.plan))))

    async def _run_task(self, run: _Run, idx: int, spec: TaskSpec, *, parallel: bool) -> Outcome:
        if idx in run.completed:
            return run.completed[idx]
        node = self.graph.nodes[spec.node]
        resume = run.resume.get(idx)
        attempt = resume.attempt if resume else 1
        while True:
            ctx = self._make_context(run, idx, spec, attempt, resume)
            resume = None  # a retry starts fresh: new model calls, no served answers
            started, t0 = now_us(), time.perf_counter()
            try:
                value = spec.arg if spec.send else self.schema.view(run.state)
                result = await self._call(node, value, ctx, parallel=parallel)
                if result is not None and not isinstance(result, dict):
                    raise InvalidUpdateError(
                        f"node {node.name!r} returned {type(result).__name__}; return a dict of state updates or None"
                    )
                if result:
                    self.schema.validate_update(result, f"node {node.name!r}")
                update_json = codec.fast_dumps(result, f"node {node.name!r} update") if result else None
                if self._replay is not None:
                    ctx.check_all_served()
            except ReplayDivergence as div:
                div.detail.setdefault("step", run.step)
                div.detail.setdefault("node", spec.node)
                raise
            except InterruptSignal as sig:
                if self._inline_ctx is not None:
                    raise
                return self._record_interrupt(run, idx, spec, attempt, started, t0, sig)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = _describe(exc)
                self._record_task(run, idx, spec, attempt, "failed", started, t0, None,
                                  message, scrub(traceback.format_exc()))
                policy = node.retry
                if policy and not isinstance(exc, _NOT_RETRYABLE) and policy.should_retry(exc, attempt):
                    attempt += 1
                    self._emit(Event("task_retrying", run.run_id, run.step, node.name,
                                     {"attempt": attempt, "error": message}))
                    if self._replay is None:  # a replay does not wait out backoffs
                        await asyncio.sleep(policy.delay(attempt, self._rng))
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                return Outcome("failed", error=exc, message=f"{message}{tries}")
            self._record_task(run, idx, spec, attempt, "completed", started, t0, update_json, None, None,
                              defer=not parallel)
            return Outcome("completed", update=result)

    def _make_context(self, run: _Run, idx: int, spec: TaskSpec, attempt: int, resume: _Resume | None) -> Context:
        if self._inline_ctx is not None:
            return self._inline_ctx
        if self._replay is not None:
            calls, answers = self._replay.task_inputs(run.step, idx, attempt)
            return Context(
                run_id=run.run_id, graph=self.graph.name, step=run.step, node=spec.node, task=idx,
                attempt=attempt, recorder=None, resume_values=answers, recorded_calls=calls,
                next_seq=0, emit=self.listener, error=spec.error, strict=True,
            )
        store = self.store

        def recorder(row: dict[str, Any]) -> None:
            if store is not None:
                store.record("llm", {"run_id": run.run_id, "step": run.step, "task": idx,
                                     "node": spec.node, "attempt": attempt, **row})

        return Context(
            run_id=run.run_id, graph=self.graph.name, step=run.step, node=spec.node, task=idx,
            attempt=attempt, recorder=recorder,
            resume_values=resume.resume_values if resume else [],
            recorded_calls=resume.recorded if resume else [],
            next_seq=resume.next_seq if resume else 0,
            emit=self.listener, error=spec.error,
        )

    async def _call(self, node: Node, value: Any, ctx: Context, *, parallel: bool) -> Any:
        if node.subgraph is not None:
            coro: Any = self._run_subgraph(node, value, ctx)
        elif node.is_async:
            assert node.fn is not None
            token = set_current(ctx)
            try:
                coro = node.fn(value, ctx) if node.takes_ctx else node.fn(value)
            finally:
                reset_current(token)
            coro = _with_context(coro, ctx)
        elif parallel or node.timeout:
            coro = asyncio.to_thread(_call_sync, node, value, ctx)
        else:
            return _call_sync(node, value, ctx)
        if node.timeout:
            try:
                return await asyncio.wait_for(coro, node.timeout)
            except TimeoutError:
                raise NodeTimeoutError(f"node {node.name!r} timed out after {node.timeout:g}s") from None
        return await coro

    async def _run_subgraph(self, node: Node, value: Any, ctx: Context) -> dict[str, Any] | None:
        sub = node.subgraph
        assert sub is not None
        if isinstance(value, dict):
            keys = sub.schema.channels
            sub_input = dict(value) if sub.schema.is_open() else {k: v for k, v in value.items() if k in keys}
        else:
            sub_input = {}
        inner = Runner(sub, None, max_concurrency=self.max_concurrency, _inline_ctx=ctx)
        result = await inner.arun(sub_input)
        if result.status == "failed":
            raise WorkbenchError(f"subgraph {sub.name!r} failed: {result.error}")
        # Give back only what the subgraph changed, in the parent's terms: items appended to an
        # append-key, whole values for the rest.
        update: dict[str, Any] = {}
        start = inner.schema.initial(sub_input)[0]
        for key in inner._last_touched:
            if key not in self.schema.channels and not self.schema.is_open():
                continue
            kind = self.schema.rule(key).kind
            final = result.state[key]
            if kind == "append" and key in inner._last_extended:
                update[key] = inner._last_extended[key]
            elif kind == "add":
                update[key] = final - (start.get(key) or 0)
            elif kind == "merge" and isinstance(final, dict):
                before = start.get(key) or {}
                update[key] = {k: v for k, v in final.items() if before.get(k) != v}
            else:
                # replace (and custom rules: the subgraph's final value is handed over whole)
                update[key] = final
        return update or None

    # ----------------------------------------------------------------- routing

    def _plan_next(
        self, finished: Sequence[tuple[TaskSpec, Outcome]], state: dict[str, Any], joins: dict[str, list[str]]
    ) -> tuple[list[TaskSpec], dict[str, list[str]]]:
        joins = {k: list(v) for k, v in joins.items()}
        plan: list[TaskSpec] = []
        plain: set[str] = set()

        def add(name: str, error: dict[str, Any] | None = None) -> None:
            if name == END:
                return
            if error is not None:
                plan.append(TaskSpec(name, error=error))
            elif name not in plain:
                plain.add(name)
                plan.append(TaskSpec(name))

        view = None
        for spec, outcome in finished:
            src = spec.node
            if outcome.status == "failed":
                handler = self.graph.nodes[src].on_error
                assert handler is not None
                add(handler, {"node": src, "type": type(outcome.error).__name__, "message": outcome.message})
                continue
            for dst in self.graph.edges.get(src, []):
                add(dst)
            route = self.graph.routes.get(src)
            if route is not None:
                if view is None:
                    view = self.schema.view(state)
                for target in self._route(route.router, route.targets, src, view):
                    if isinstance(target, Send):
                        try:
                            codec.dumps(target.arg, f"Send({target.node!r}) argument")
                        except SerializationError as exc:
                            raise SerializationError(f"router after {src!r}: {exc}") from None
                        plan.append(TaskSpec(target.node, codec.to_jsonable(target.arg), send=True))
                    else:
                        add(target)
            for i, join in enumerate(self.graph.joins):
                if src in join.sources:
                    key = str(i)
                    seen = joins.setdefault(key, [])
                    if src not in seen:
                        seen.append(src)
                    if set(seen) >= set(join.sources):
                        add(join.target)
                        joins.pop(key)
        return plan, joins

    def _route(self, router: Any, targets: dict[str, str], src: str, view: Any) -> list[str | Send]:
        result = router(view)
        items = result if isinstance(result, (list, tuple)) else [result]
        allowed = set(targets.values())
        out: list[str | Send] = []
        def where() -> str:  # built only for an error: display_path costs a system call
            return f"{display_path(self.graph.file)}: graph {self.graph.name!r}, router after {src!r}"

        for item in items:
            if isinstance(item, Send):
                if item.node not in allowed or item.node not in self.graph.nodes:
                    raise RoutingError(f"{where()}: Send to undeclared node {item.node!r} "
                                       f"(declared targets: {_names(allowed)})")
                out.append(item)
                continue
            if item == END or item is None:
                out.append(END)
                continue
            if not isinstance(item, str):
                raise RoutingError(f"{where()}: returned {item!r}; return a node name, END, or a list of Send")
            if item in targets:
                out.append(targets[item])
            elif item in allowed:
                out.append(item)
            else:
                raise RoutingError(f"{where()}: returned unknown node {item!r} "
                                   f"(declared targets: {_names(targets)})")
        return out

    # ----------------------------------------------------------------- recording

    def _encode_changes(self, run_id: str, step: int, changes: list[Change]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for key, op, value in changes:
            out.append(("change", {"run_id": run_id, "step": step, "key": key, "op": op,
                                   "value": codec.fast_dumps(value, f"state.{key}")}))
        return out

    def _plan_record(self, run: _Run, step: int) -> tuple[str, dict[str, Any]]:
        return ("plan", {"run_id": run.run_id, "step": step,
                         "tasks": codec.fast_dumps([t.to_json() for t in run.plan]),
                         "joins": codec.fast_dumps(run.joins), "created_at": now_us()})

    def _record_task(self, run: _Run, idx: int, spec: TaskSpec, attempt: int, status: str,
                     started: int, t0: float, update_json: str | None, error: str | None,
                     tb: str | None, *, defer: bool = False) -> None:
        duration = (time.perf_counter() - t0) * 1000
        if self.store is not None:
            record = self.store.record if not defer else (lambda kind, row: run.deferred.append((kind, row)))
            record("task", {
                "run_id": run.run_id, "step": run.step, "task": idx, "node": spec.node,
                "attempt": attempt, "status": status, "started_at": started, "ended_at": now_us(),
                "duration_ms": duration, "update": update_json, "error": error, "traceback": tb,
                "arg": codec.dumps(spec.arg) if spec.send else None,
            })
        if self.listener is not None:
            self.listener(Event("task_finished", run.run_id, run.step, spec.node,
                                {"status": status, "attempt": attempt, "duration_ms": duration, "error": error}))

    def _record_interrupt(self, run: _Run, idx: int, spec: TaskSpec, attempt: int, started: int,
                          t0: float, sig: InterruptSignal) -> Outcome:
        try:
            payload = codec.dumps(sig.payload, "interrupt payload")
        except SerializationError as exc:
            self._record_task(run, idx, spec, attempt, "failed", started, t0, None, str(exc), None)
            return Outcome("failed", error=exc, message=str(exc))
        self._record_task(run, idx, spec, attempt, "interrupted", started, t0, None, None, None)
        key = (run.step, idx, attempt, sig.index)
        if self.store is not None and key not in run.known_interrupts:
            self.store.record("interrupt", {
                "run_id": run.run_id, "step": run.step, "task": idx, "node": spec.node, "attempt": attempt,
                "idx": sig.index, "payload": payload, "created_at": now_us(),
            })
        run.known_interrupts.add(key)
        return Outcome("interrupted", interrupt=sig.payload)

    def _track_inline_changes(self, run: _Run, changes: list[Change]) -> None:
        for key, op, value in changes:
            run.touched.add(key)
            if op == "extend":
                run.extended.setdefault(key, []).extend(value)
            else:
                run.extended.pop(key, None)

    # ----------------------------------------------------------------- endings

    def _finish(self, run: _Run, status: str, *, error: str | None = None,
                exc: BaseException | None = None) -> RunResult:
        self._last_touched = run.touched
        self._last_extended = run.extended
        if error:
            error = scrub(error)  # an error text may echo a credential; it is recorded and printed
        if self._inline_ctx is not None and status == "failed" and exc is not None:
            # Let the parent's retry policy see the original exception type.
            raise exc
        self._flush_deferred(run)
        if self.store is not None:
            row: dict[str, Any] = {"run_id": run.run_id, "status": status, "ended_at": now_us(),
                                   "last_step": run.step - (0 if status == "failed" else 1)}
            if status == "completed":
                row["output"] = codec.fast_dumps(run.state, "state")
            if error:
                row["error"] = error
            self.store.record("run_update", row)
        self._emit(Event("run_finished", run.run_id, run.step, None, {"status": status, "error": error}))
        return RunResult(run.run_id, status, run.state, run.step - 1 if status == "completed" else run.step,
                         error=error)

    def _flush_deferred(self, run: _Run) -> None:
        """Write a deferred task row when the step ends without a commit (failure, wait, pause)."""
        if self.store is not None and run.deferred:
            self.store.record_many(run.deferred)
        run.deferred.clear()

    def _wait(self, run: _Run, payload: Any, node: str) -> RunResult:
        self._flush_deferred(run)
        if self.store is not None:
            self.store.record_many([
                ("run_update", {"run_id": run.run_id, "status": "waiting", "last_step": run.step - 1}),
                ("event", {"run_id": run.run_id, "step": run.step, "kind": "interrupt", "node": node,
                           "detail": codec.dumps({"payload": payload}), "created_at": now_us()}),
            ])
        self._emit(Event("waiting", run.run_id, run.step, node, {"payload": payload}))
        return RunResult(run.run_id, "waiting", run.state, run.step, interrupt=payload)

    def _pause(self, run: _Run, when: str, node: str | None, at_step: int | None = None) -> RunResult:
        self._flush_deferred(run)
        step = run.step if at_step is None else at_step
        paused = {"when": when, "node": node, "step": run.step}
        run.config["paused"] = paused
        if self.store is not None:
            self.store.record_many([
                ("run_update", {"run_id": run.run_id, "status": "paused", "last_step": run.step - 1,
                                "config": codec.dumps(run.config)}),
                ("event", {"run_id": run.run_id, "step": step, "kind": "breakpoint", "node": node,
                           "detail": codec.dumps({"when": when}), "created_at": now_us()}),
            ])
        self._emit(Event("paused", run.run_id, step, node, {"when": when}))
        return RunResult(run.run_id, "paused", run.state, step, paused=paused)

    # ----------------------------------------------------------------- helpers

    def _check_names(self, names: Iterable[str], what: str) -> list[str]:
        out = list(names)
        for n in out:
            if n not in self.graph.nodes:
                raise InputError(f"{what}: graph {self.graph.name!r} has no node {n!r} "
                                 f"(nodes: {', '.join(self.graph.nodes)})")
        return out

    def _require_store(self) -> TraceStore:
        if self.store is None:
            raise RunStateError("resuming needs a trace store: create the Runner with store=TraceStore(path)")
        return self.store

    def _loop_message(self, run: _Run, limit: int) -> str:
        hist = run.history
        loop = None
        for p in range(1, len(hist) // 2 + 1):
            if hist[-p:] == hist[-2 * p:-p]:
                loop = [*hist[-p:], hist[-p]]
                break
        where = f"{display_path(self.graph.file)}: graph {self.graph.name!r}"
        desc = f"; loop {' → '.join(loop)}" if loop else ""
        return (f"{where}: run reached its step limit of {limit}{desc}; give the loop an exit "
                "condition or raise max_steps")

    def _emit(self, event: Event) -> None:
        if self.listener is not None and self._inline_ctx is None:
            self.listener(event)

    @property
    def _listening(self) -> bool:
        return self.listener is not None and self._inline_ctx is None


def _call_sync(node: Node, value: Any, ctx: Context) -> Any:
    assert node.fn is not None
    token = set_current(ctx)
    try:
        return node.fn(value, ctx) if node.takes_ctx else node.fn(value)
    finally:
        reset_current(token)


async def _with_context(coro: Any, ctx: Context) -> Any:
    token = set_current(ctx)
    try:
        return await coro
    finally:
        reset_current(token)


def _describe(exc: BaseException) -> str:
    """One line about a node's exception (recorded and shown): known secrets scrubbed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}") if text else type(exc).__name__


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted("END" if n == END else "START" if n == START else n for n in names))


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_sync(coro: Any) -> Any:
    if _running_loop():
        coro.close()
        raise RuntimeError("an event loop is already running here: use 'await runner.arun(...)' instead")
    # Not asyncio.run(): it waits for the default executor's threads, so a sync node abandoned
    # after its timeout would hold up the return until it finished on its own.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            # As asyncio.run does: cancel what is left (litellm starts background tasks).
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def run_graph(graph: Graph, input: dict[str, Any] | None = None, *, db: str | None = None,
              **options: Any) -> RunResult:
    """Run ``graph`` once, recording into the trace store at ``db`` (default traces/workbench.duckdb)."""
    with TraceStore(db) as store:
        return Runner(graph, store).run(input, **options)


__all__ = ["NO_VALUE", "RunResult", "Runner", "TaskSpec", "new_run_id", "run_graph"]

"""The Runner: drives a graph in supersteps and records every transition before the next one.

A superstep runs every task planned for it concurrently (runtime/branches.py; sync nodes in
threads when there is more than one task or a timeout, unless cheap), then merges their updates in plan order — so the
result does not depend on which branch finished first — then asks edges and routers what runs
next. The step's state changes and the next step's plan are recorded in one journal write
before the next step starts: a killed process loses at most the step in flight, and
:meth:`Runner.resume` continues from the last committed step without re-running any task that
was recorded as completed.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Iterable
from typing import Any

from workbench import codec
from workbench.context import Context, Event, InterruptSignal, Listener, ReplayDivergence, guarded
from workbench.cow import reclaim
from workbench.errors import (
    InputError,
    InvalidUpdateError,
    LLMRejectedError,
    NodeEscapeError,
    NodeExitError,
    RoutingError,
    RunStateError,
    SerializationError,
    StepLimitError,
    StoreError,
    WorkbenchError,
)
from workbench.graph import START, Graph, policy_for
from workbench.recording import Recorder
from workbench.redact import scrub
from workbench.runtime.branches import run_step, task_context
from workbench.runtime.calls import call_node, describe, type_name
from workbench.runtime.commands import read_result
from workbench.runtime.continuing import HANDLED, load_step_progress, settled_detail
from workbench.runtime.interrupts import record_interrupt, settle
from workbench.runtime.options import check_concurrency, check_limit, check_names, with_options
from workbench.runtime.planner import Planner, loop_message
from workbench.runtime.subgraph import (
    ChildLink,
    calling_host,
    runs_alone,
    split_break_when,
    tree_interrupts,
)
from workbench.runtime.sync import run_sync as _run_sync
from workbench.runtime.timing import covered
from workbench.runtime.types import (
    NO_VALUE,
    ActiveRun,
    Outcome,
    RunResult,
    TaskSpec,
    check_planned_nodes,
    new_run_id,
    run_id_problem,
)
from workbench.state import apply_changes, undo_growth
from workbench.store.reader import shown_status
from workbench.store.store import TraceStore, now_us

# Errors that a retry cannot fix: the same code and input fail the same way (a model call every
# provider refused — bad credentials, bad request — fails the same way too).
# A node that exits on purpose (sys.exit) would exit again.
_NOT_RETRYABLE = (SerializationError, InvalidUpdateError, LLMRejectedError, RoutingError, NodeExitError,
                  NodeEscapeError)



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
        _child: ChildLink | None = None,
    ) -> None:
        self.graph = graph.validate()
        self.schema = graph.schema
        self.store = store
        self.recorder = Recorder(store)
        self.planner = Planner(self.graph, self.schema)
        self.max_concurrency = check_concurrency(max_concurrency)
        # A failing listener (a display) never fails the run: see GuardedListener.
        self.listener = guarded(listener)
        # A subgraph's invocation is a child run of the task that called it (runtime/subgraph.py).
        self._child = _child
        # A replay session (workbench.replay) serves every call from a recording and checks
        # each step against it; None for live runs.
        self._replay = replay
        self._rng = random.Random()
        self._break_when: Any = None
        self._inner_break_when: dict[str, Any] = {}
        # What the last run changed (a subgraph's parent turns this into its update), why it
        # failed, and which node it waits at.
        self.last_touched: set[str] = set()
        self.last_extended: dict[str, list[Any]] = {}
        self.last_error: BaseException | None = None
        self.stopped_at: str | None = None

    # ----------------------------------------------------------------- public API

    def run(self, input: dict[str, Any] | None = None, **options: Any) -> RunResult:
        """Start a run and drive it until it completes, fails, waits for input or pauses.

        Options: ``run_id``, ``break_before`` / ``break_after`` (node names), ``break_when``
        (a predicate over the state, checked after each step), ``max_steps``, ``continue_from``
        (a run id: continue that run's conversation with this input, see :meth:`continue_run`).
        """
        return _run_sync(self.arun(input, **options))

    def resume(self, run_id: str, value: Any = NO_VALUE, **options: Any) -> RunResult:
        """Continue a waiting, paused, failed or interrupted-by-crash run (see :meth:`aresume`)."""
        return _run_sync(self.aresume(run_id, value, **options))

    def fork(self, parent_run_id: str, at_step: int | str, **options: Any) -> RunResult:
        """Fork a recorded run at a step and run the fork live (see :meth:`afork`)."""
        return _run_sync(self.afork(parent_run_id, at_step, **options))

    def continue_run(self, run_id: str, input: dict[str, Any] | None = None, **options: Any) -> RunResult:
        """Continue a conversation with new input (see :meth:`acontinue_run`)."""
        return _run_sync(self.acontinue_run(run_id, input, **options))

    async def acontinue_run(self, run_id: str, input: dict[str, Any] | None = None, *,
                            new_run_id: str | None = None, **options: Any) -> RunResult:
        """Start a new run from ``run_id``'s last committed state merged with ``input`` through
        the merge rules, linked to it as its continuation, and run it from START (the next turn
        of a conversation). A run that had not completed is superseded: its pending work is
        discarded. Options: ``break_before``, ``break_after``, ``break_when``, ``max_steps``.
        See :mod:`workbench.runtime.conversation`.
        """
        from workbench.runtime.conversation import continue_run

        return await continue_run(self, run_id, input, new_run_id_=new_run_id, **options)

    async def arun(
        self,
        input: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
        break_when: Any = None,
        max_steps: int | None = None,
        continue_from: str | None = None,
    ) -> RunResult:
        """The async form of :meth:`run`. ``continue_from``: a run id; the run is then the next
        turn of that run's conversation (:meth:`acontinue_run`).

        Inside a running node (``await Runner(sub).arun(...)`` with no store), the run is a child
        run of that node's task: recorded with the caller's run, paused with it, continued by it.
        """
        if continue_from is not None:
            return await self.acontinue_run(continue_from, input, new_run_id=run_id, break_before=break_before,
                                            break_after=break_after, break_when=break_when, max_steps=max_steps)
        if self._child is None and self.store is None and self._replay is None:
            host = calling_host()
            if host is not None:
                return (await host.call(self.graph, input, max_steps=max_steps))[0]
        if input is not None and not isinstance(input, dict):
            raise InputError(f"input must be a JSON object, got {type(input).__name__}")
        # A replayed fork made at its first step (of the run, or of a subgraph's run) starts from
        # its edited input, as the fork did; the edits count as the run's changes for its caller.
        start_edits = self._replay.start_edits() if self._replay is not None else []
        if start_edits:
            input = apply_changes(dict(input or {}), start_edits)
        try:
            state, changes = self.schema.initial(input)
        except InvalidUpdateError as exc:
            raise InputError(str(exc)) from None
        config = {
            "break_before": check_names(self.graph, break_before, "break_before"),
            "break_after": check_names(self.graph, break_after, "break_after"),
            "max_steps": check_limit(max_steps) or self.graph.max_steps,
        }
        if run_id is not None and self._child is None and (problem := run_id_problem(run_id)):
            raise InputError(problem)
        run = ActiveRun(run_id or new_run_id(), state, 1, [], {}, config)
        run.track(start_edits)
        self.set_break_when(break_when)
        try:
            input_json = codec.dumps(input or {}, "input")
            start_changes = self.recorder.changes(run.run_id, 0, changes)
        except SerializationError as exc:
            raise InputError(str(exc)) from None
        run.plan, run.joins = self.planner.next([(TaskSpec(START), Outcome("completed"))], run.state, run.joins)
        if self.recorder.enabled:
            row = self.recorder.run_row(run.run_id, self.graph, input_json=input_json, config=config)
            if self._child is not None:
                row.update(self._child.columns())
            self.recorder.run_started(row, start_changes, self._plan_record(run, 1),
                                      reserve=run_id is not None and self._child is None)
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
        max_steps: int | None = None,
        interrupt: str | None = None,
        answers: dict[str, Any] | None = None,
        close: Iterable[str] = (),
    ) -> RunResult:
        """Continue a run recorded in the store.

        A *waiting* run needs ``value``: it answers the oldest open interrupt, and the node that
        asked is run again from its top, where :func:`interrupt` now returns ``value``.
        ``interrupt=ID`` answers that interrupt instead; ``answers={ID: value, ...}`` answers
        several at once; ``close=[ID, ...]`` closes interrupts without an answer (the task that
        asked is dropped, its finished siblings are kept). A
        *paused* run continues from its breakpoint. A *failed* run re-runs the tasks that failed
        (its finished siblings are not run again); one that hit its step limit needs a higher
        ``max_steps``. A *running* run whose process died continues from its last committed
        step. Model calls recorded by the task being continued are served from the recording,
        not made again. Of two processes resuming the same run at once, one gets it; the other
        gets a RunStateError.
        """
        store = self._require_store()
        store.sweep()  # a run whose process died: load what its journal holds first
        rec = store.get_run(run_id)
        status = rec["status"]
        if rec.get("caller_run_id"):
            raise RunStateError(f"run {run_id} is subgraph {rec['path']!r} of run {rec['root_run_id']}; "
                                f"resume that run")
        if status == "completed":
            raise RunStateError(f"run {run_id} already completed; fork it to run again, or continue the "
                                f"conversation with new input (workbench run GRAPH --continue {run_id} --input ...)")
        if status == "superseded":
            from workbench.runtime.conversation import superseded_error

            raise superseded_error(store, run_id)
        if rec["graph"] != self.graph.name:
            raise RunStateError(f"run {run_id} belongs to graph {rec['graph']!r}, not {self.graph.name!r}")
        # The open questions of its subgraphs' runs too, oldest first (runtime/subgraph.py).
        # "interrupted" (its process died: resumed without an answer) apart from "running" (live).
        settled = settle(run_id, shown_status(rec), tree_interrupts(store, run_id), value, interrupt=interrupt,
                         answers=answers, close=close)

        config = self._with_options(rec["config"] or {}, break_before, break_after, max_steps)
        paused = config.pop("paused", None) or {}
        # Code changed since the run stopped: refused before the run is claimed (its status stays).
        next_step = store.last_committed_step(run_id) + 1
        next_plan = store.plan(run_id, next_step)
        if next_plan is not None:
            check_planned_nodes(self.graph, next_plan["tasks"], f"run {run_id} continues at step {next_step}")
        # Exactly once: of two processes resuming (or answering) this run at once, one gets it.
        self.recorder.claim(run_id, status=status, answers=settled, config=config)
        committed = store.last_committed_step(run_id)
        step = committed + 1
        plan = store.plan(run_id, step)
        if plan is None:
            store.check_run(run_id)  # deleted meanwhile: say that
            raise StoreError(f"run {run_id} has no recorded plan for step {step}; the trace is incomplete")
        state = self.schema.decode(store.state_at(run_id, committed))
        run = ActiveRun(run_id, state, step, [TaskSpec.from_json(t) for t in plan["tasks"]],
                        plan["joins"] or {}, config)
        self.set_break_when(break_when)
        # The step it stopped in already passed its breakpoints: a paused one at its breakpoint
        # before, a waiting one when its tasks ran (answering must not pause there again).
        run.skip_before = status == "waiting" or (status == "paused" and paused.get("when") == "before"
                                                  and paused.get("step") == step)
        fresh = load_step_progress(run, store, store.interrupts(run_id), resumed_from=status)
        self.recorder.event(run_id, step, "resumed", None, {"from": status, **settled_detail(settled, fresh, rec)})
        self._emit(Event("run_resumed", run_id, step, None, {"from": status}))
        return await self._execute(run)

    async def afork(
        self,
        parent_run_id: str,
        at_step: int | str,
        *,
        set_state: dict[str, Any] | None = None,
        llm_responses: dict[int, str] | None = None,
        break_before: Iterable[str] | None = None,
        break_after: Iterable[str] | None = None,
        break_when: Any = None,
        max_steps: int | None = None,
        close: Iterable[str] = (),
    ) -> RunResult:
        """Make a new run that shares ``parent_run_id``'s history before ``at_step``, apply the
        edits, and run step ``at_step`` onwards live with the current code.

        ``set_state`` replaces state keys (validated against the schema) as they stood before
        ``at_step``. ``llm_responses`` maps the number of a model call of that step (1-based, in
        task then call order, as ``workbench show RUN --step N`` lists them) to the answer the
        fork gets instead; calls before it in the same node are served from the recording, calls
        after it are made live. The fork records the current code version, so a fork that ran
        different code is visible. Nothing is recorded when an edit is invalid.

        ``at_step`` may address a step inside a subgraph, ``"3/review/2"`` (see
        :mod:`workbench.runtime.forking`): the edits then apply to that inner step.

        ``close=[ID, ...]`` closes interrupts asked at that step without an answer: in the fork,
        the task that asked is dropped (recorded ``closed``, by a fork edit), as ``resume(close=...)``
        drops it from the run itself (:mod:`workbench.runtime.fork_close`).
        """
        from workbench.runtime.forking import fork_run

        return await fork_run(self, parent_run_id, at_step, set_state=set_state, llm_responses=llm_responses,
                              break_before=break_before, break_after=break_after, break_when=break_when,
                              max_steps=max_steps, close=close)

    # ----------------------------------------------------------------- the loop

    async def _execute(self, run: ActiveRun) -> RunResult:
        break_before = set(run.config.get("break_before") or [])
        break_after = set(run.config.get("break_after") or [])
        max_steps = int(run.config.get("max_steps") or self.graph.max_steps)
        first_step = int(run.config.get("first_step") or 1)  # a conversation's turn counts its own steps
        while True:
            if not run.plan:
                return self._finish(run, "completed")
            if run.step - first_step + 1 > max_steps:
                err = StepLimitError(loop_message(self.graph, run.history, max_steps, subgraph=self._child is not None))
                return self._finish(run, "failed", error=str(err), exc=err, ran=False)
            hit = [t.node for t in run.plan if t.node in break_before]
            if hit and not run.skip_before:
                return self._pause(run, "before", hit[0])
            run.skip_before = False

            if self._listening:
                self._emit(Event("step_started", run.run_id, run.step, None,
                                 {"nodes": [t.node for t in run.plan]}))
            if self._replay is not None:
                self._replay.before_step(run.step, run.plan)
                run.closed = self._replay.closed_tasks(run.step)
            outcomes = await run_step(self, run)
            if self._replay is not None:
                self._replay.check_outcomes(run.step, run.plan, outcomes)

            stopped = [o for o in outcomes if o.status == "interrupted"]
            asking = [o for o in stopped if o.paused is None]
            if asking:
                # A subgraph that waits passes up every open question of its run (asked_all).
                asked = [a for o in asking for a in (o.asked_all or ([o.asked] if o.asked else []))]
                return self._wait(run, asked)
            if stopped:  # a subgraph paused at a breakpoint inside it
                paused = stopped[0].paused or {}
                return self._pause(run, paused.get("when", "before"), paused.get("node"), at_step=run.step)
            failed = [(run.plan[i], o) for i, o in enumerate(outcomes) if o.status == "failed"]
            unhandled = [(t, o) for t, o in failed if not self.graph.nodes[t.node].on_error]
            if unhandled:
                spec, out = unhandled[0]
                return self._finish(run, "failed", error=f"node {spec.node!r} failed: {out.message}", exc=out.error)

            grown: list[Any] = []  # append-key lists the merge grew in place: undone if the step fails
            try:
                updates = [
                    (t.node, o.update) for t, o in zip(run.plan, outcomes, strict=True) if o.status == "completed"
                ]
                new_state, changes = self.schema.merge(run.state, updates, grown)
                plan, joins = self.planner.next(list(zip(run.plan, outcomes, strict=True)), new_state, run.joins)
                records = self.recorder.changes(run.run_id, run.step, changes)
            except WorkbenchError as exc:
                undo_growth(run.state, grown)
                return self._finish(run, "failed", error=str(exc), exc=exc)
            except Exception as exc:  # a router raised
                undo_growth(run.state, grown)
                return self._finish(run, "failed", error=f"router failed at step {run.step}: "
                                    f"{describe(exc)}", exc=exc)
            run.track(changes)
            if self._replay is not None:
                edits = self._replay.after_merge(run.step, new_state)
                if edits:
                    # A fork's edits, applied where the fork applied them (changes of the run, as
                    # a subgraph's caller gets them); a fork that planned its first step again
                    # from them (runtime/fork_plan.py) is replayed so.
                    new_state = self.schema.decode(apply_changes(dict(new_state), edits))
                    run.track(edits)
                    if self._replay.rerouted(run.step):
                        plan, joins = self.planner.next(list(zip(run.plan, outcomes, strict=True)), new_state,
                                                        run.joins)
            finished = run.plan
            run.state, run.plan, run.joins = new_state, plan, joins
            run.history.append("+".join(sorted({t.node for t in finished})))
            self.recorder.step_committed(run.deferred, records, self._plan_record(run, run.step + 1))
            if self._listening:
                self._emit(Event("step_committed", run.run_id, run.step, None,
                                 {"nodes": [t.node for t in finished], "next": [t.node for t in plan]}))
            done_step = run.step
            run.step += 1
            run.completed, run.resume, run.closed = {}, {}, {}
            hit_after = [t.node for t in finished if t.node in break_after]
            if hit_after:
                return self._pause(run, "after", hit_after[0], at_step=done_step)
            if self._break_when is not None and run.plan:
                try:
                    stop = self._break_when(self.schema.view(run.state, shared=True))
                except Exception as exc:  # a broken condition stops the run where it is, for a look
                    return self._pause(run, "condition", None, at_step=done_step,
                                       error=f"the break condition raised {describe(exc)}")
                finally:
                    reclaim(run.state)
                if stop:  # a string is the caller's reason for the pause (the TUI's "step", "stop")
                    return self._pause(run, "condition", None, at_step=done_step,
                                       reason=stop if isinstance(stop, str) else None)

    async def _run_task(self, run: ActiveRun, idx: int, spec: TaskSpec, *, parallel: bool) -> Outcome:
        if idx in run.completed:
            return run.completed[idx]
        resume = run.resume.get(idx)
        if idx in run.closed:
            if run.closed[idx]:  # recorded once, by the resume that closed it
                self.recorder.task_finished(run.run_id, run.step, idx, spec.node, resume.attempt if resume else 1,
                                            "closed", started=now_us(), duration_ms=0.0, arg=spec.arg,
                                            send=spec.send)
            return Outcome("closed")
        node = self.graph.nodes[spec.node]
        if resume:
            attempt = resume.attempt
        else:  # a replay starts where the recording does (a fork may continue a later attempt)
            attempt = self._replay.first_attempt(run.step, idx) if self._replay is not None else 1
        budget_from = resume.budget_from if resume else 1
        first_started = resume.first_started if resume else None
        while True:
            started, t0 = now_us(), time.perf_counter()
            first_started = first_started or started
            ctx = task_context(self, run, idx, spec, attempt, resume, first_started)
            if ctx.subgraphs is not None:  # what its child runs may hold the event loop for
                ctx.subgraphs.alone = not parallel and runs_alone(self)
            resume = None  # a retry starts fresh: new model calls, no served answers
            # A task alone in its step reads the state's copy-on-write containers (no copy per
            # step); reclaimed below, before anyone else reads the state. Siblings, and a node
            # that may outlive its timeout, get copies.
            shared = not parallel and not node.timeout
            try:
                value = spec.arg if spec.send else self.schema.view(run.state, shared=shared)
                sub = ctx.subgraphs.call_node(node, value) if node.subgraph is not None else None
                result = read_result(self.graph, node, await call_node(node, value, ctx, parallel=parallel,
                                                                       subgraph=sub))
                if self._replay is not None:
                    ctx.check_all_served()
            except ReplayDivergence as div:
                div.detail.setdefault("step", run.step)
                div.detail.setdefault("node", spec.node)
                raise
            except InterruptSignal as sig:
                return record_interrupt(self, run, idx, spec, attempt, started, t0, ctx, sig)
            except asyncio.CancelledError:
                # A sibling failed (or the run was stopped): this attempt is not completed, and
                # runs again when the run is resumed.
                self._task_finished(run, idx, spec, attempt, "cancelled", started, t0, ctx)
                raise
            except Exception as exc:
                message = describe(exc)
                self._task_finished(run, idx, spec, attempt, "failed", started, t0, ctx, error=message,
                                    tb=scrub(traceback.format_exc()))
                policy = policy_for(node.retries, exc)  # the first that matches; attempts count per budget
                if policy and not isinstance(exc, _NOT_RETRYABLE) and policy.should_retry(
                        exc, attempt - budget_from + 1):
                    attempt += 1
                    self._emit(Event("task_retrying", run.run_id, run.step, node.name,
                                     {"attempt": attempt, "error": message}))
                    if self._replay is None:  # a replay does not wait out backoffs
                        await asyncio.sleep(policy.delay(attempt, self._rng))
                    continue
                if self._replay is not None and self._replay.resumed_after_failure(run.step, idx, attempt):
                    attempt = budget_from = attempt + 1  # the run failed here and was resumed: so does its replay
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                if node.on_error and self._replay is None:
                    # Final, and handed to the handler: a resume of this step (a sibling waits,
                    # the process dies) reads it back rather than running the node again.
                    self.recorder.event(run.run_id, run.step, HANDLED, spec.node,
                                        {"task": idx, "attempt": attempt, "type": type_name(exc),
                                         "message": f"{message}{tries}"})
                return Outcome("failed", error=exc, message=f"{message}{tries}")
            finally:
                if shared and not spec.send:
                    reclaim(run.state)
            self._task_finished(run, idx, spec, attempt, "completed", started, t0, ctx,
                                update_json=result.update_json, goto_json=result.goto_json, defer=not parallel)
            return Outcome("completed", update=result.update, goto=result.goto)

    # ----------------------------------------------------------------- recording

    def _plan_record(self, run: ActiveRun, step: int) -> tuple[str, dict[str, Any]]:
        return self.recorder.plan(run.run_id, step, [t.to_json() for t in run.plan], run.joins)

    def _task_finished(self, run: ActiveRun, idx: int, spec: TaskSpec, attempt: int, status: str, started: int,
                       t0: float, ctx: Context, *, update_json: str | None = None, error: str | None = None,
                       tb: str | None = None, goto_json: str | None = None, defer: bool = False) -> None:
        # The node's own time: a one-time import of the model library is not the node's doing,
        # whether the node or a subgraph it ran paid for it.
        spans = ctx.excluded + (ctx.subgraphs.excluded if ctx.subgraphs is not None else [])
        if self._child is not None and self._child.host is not None:
            self._child.host.excluded.extend(spans)
        now = time.perf_counter()
        duration = max(0.0, (now - t0 - covered(spans, t0, now)) * 1000)
        self.recorder.task_finished(run.run_id, run.step, idx, spec.node, attempt, status, started=started,
                                    duration_ms=duration, update_json=update_json, error=error, traceback=tb,
                                    arg=spec.arg, send=spec.send, goto_json=goto_json,
                                    defer=run.deferred if defer else None, group=run.rows)
        if self.listener is not None:
            self.listener(Event("task_finished", run.run_id, run.step, spec.node,
                                {"status": status, "attempt": attempt, "duration_ms": duration, "error": error}))

    # ----------------------------------------------------------------- endings

    def _finish(self, run: ActiveRun, status: str, *, error: str | None = None,
                exc: BaseException | None = None, ran: bool = True) -> RunResult:
        """End the run. ``ran``: the current step ran (a step limit stops before it)."""
        self.last_touched = run.touched
        self.last_extended = run.extended
        self.last_error = exc  # a subgraph's caller raises it, for its retry policy to see
        if error:
            error = scrub(error)  # an error text may echo a credential; it is recorded and printed
        self.recorder.flush_deferred(run.deferred)
        last = run.step if status == "failed" and ran else run.step - 1
        self.recorder.run_finished(run.run_id, status, last_step=last, output=run.state, error=error)
        self._emit(Event("run_finished", run.run_id, run.step, None, {"status": status, "error": error}))
        return RunResult(run.run_id, status, run.state, last, error=error)

    def _wait(self, run: ActiveRun, waiting: list[Any]) -> RunResult:
        """The run waits for the open interrupts ``waiting`` (oldest first) to be answered."""
        first = waiting[0]
        self.stopped_at = first["node"]
        self.recorder.flush_deferred(run.deferred)
        self.recorder.run_waiting(run.run_id, run.step, first["node"], first["payload"], first["id"])
        self._emit(Event("waiting", run.run_id, run.step, first["node"],
                         {"payload": first["payload"], "interrupt_id": first["id"]}))
        return RunResult(run.run_id, "waiting", run.state, run.step, interrupt=first["payload"],
                         interrupts=waiting)

    def _pause(self, run: ActiveRun, when: str, node: str | None, at_step: int | None = None,
               error: str | None = None, reason: str | None = None) -> RunResult:
        """Pause ``before`` a step (``at_step`` is the step that will run) or ``after`` one /
        on the break ``condition`` (``at_step`` is the step that ran). ``reason``: what a
        ``break_when`` that returned a string said (recorded as ``paused["reason"]``)."""
        self.recorder.flush_deferred(run.deferred)
        step = run.step if at_step is None else at_step
        paused: dict[str, Any] = {"when": when, "node": node, "step": step}
        extra = {k: v for k, v in (("error", error), ("reason", reason)) if v}
        paused.update(extra)
        run.config["paused"] = paused
        self.recorder.run_paused(run.run_id, next_step=run.step, at_step=step, node=node, when=when,
                                 config=run.config, detail=extra)
        self._emit(Event("paused", run.run_id, step, node, {"when": when, **extra}))
        return RunResult(run.run_id, "paused", run.state, step, paused=paused)

    # ----------------------------------------------------------------- helpers

    def set_break_when(self, break_when: Any) -> None:
        """The break condition: a predicate over the state, or ``{graph path: predicate}`` with
        ``""`` for this graph and ``"review"`` for the subgraph node review's inner steps."""
        self._break_when, self._inner_break_when = split_break_when(break_when)

    def _with_options(self, config: dict[str, Any], break_before: Iterable[str] | None,
                      break_after: Iterable[str] | None, max_steps: int | None) -> dict[str, Any]:
        return with_options(self.graph, config, break_before, break_after, max_steps)

    def _require_store(self) -> TraceStore:
        if self.store is None:
            raise RunStateError("resuming needs a trace store: create the Runner with store=TraceStore(path)")
        return self.store

    @property
    def listener_error(self) -> Exception | None:
        """Why the listener stopped being called (it raised), or ``None``."""
        return self.listener.error if self.listener is not None else None

    def _emit(self, event: Event) -> None:
        if self.listener is not None:
            self.listener(event)

    @property
    def _listening(self) -> bool:
        return self.listener is not None


def run_graph(graph: Graph, input: dict[str, Any] | None = None, *, db: str | None = None,
              **options: Any) -> RunResult:
    """Run ``graph`` once, recording into the trace store at ``db`` (default traces/workbench.duckdb)."""
    with TraceStore(db) as store:
        return Runner(graph, store).run(input, **options)

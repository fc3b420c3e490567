"""Running the tasks of one superstep: alone, or side by side (a fan-out's branches).

A step with one task runs it directly. A step with several runs each as an asyncio task, at
most ``max_concurrency`` at once (runtime/concurrency.py stops the rest when one fails for
good) — except its leading branches whose sync bodies run on the loop and never wait
(:func:`~workbench.runtime.calls.never_waits`): those run one after another in the step's own
coroutine, which is what they would do as tasks too, without a task each. Where a sync body
runs — on the loop or in a worker thread — is ``call_node``'s choice (runtime/calls.py).

**Branch rows travel in groups.** Each finished branch's task row used to be its own journal
frame: one ``os.write`` (and a trip through the store's lock) per branch. Rows of branches
that finish in the same turn of the event loop now leave together, in one frame, at the start
of the next turn — before any branch that was still waiting starts, and before the step's
commit. A branch's row is never held while the run waits on anything: what is in the journal
is exactly what finished before that write, and a branch whose row is in the journal is never
run again after a crash (``kill -9`` between a branch's end and its group's write re-runs it
on resume, as a kill just before its own write did; its recorded model and tool calls, which
are written as they happen, are served, not made again).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from workbench.context import Context
from workbench.runtime.calls import never_waits
from workbench.runtime.concurrency import run_all
from workbench.runtime.subgraph import SubgraphHost, runs_alone
from workbench.runtime.types import ActiveRun, Outcome, TaskResume, TaskSpec

if TYPE_CHECKING:
    from workbench.recording import Record, Recorder
    from workbench.runtime.runner import Runner


class RowGroup:
    """Task rows of a parallel step waiting for their shared journal write (see the module
    docstring). The first row of a turn schedules the write for the start of the next turn."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.rows: list[Record] = []
        self.error: BaseException | None = None

    def add(self, row: Record) -> None:
        self.rows.append(row)
        if len(self.rows) == 1:
            asyncio.get_running_loop().call_soon(self.write)

    def write(self) -> None:
        """Write what is waiting. An error is kept for :meth:`close` to raise: a loop callback's
        exception would only be logged, and a row that could not be recorded must fail the run."""
        rows, self.rows = self.rows, []
        try:
            self.recorder.write(rows)
        except Exception as exc:
            self.error = self.error or exc

    def close(self) -> None:
        """The step's tasks are done: write what is left, and raise a write that failed."""
        self.write()
        if self.error is not None:
            raise self.error


async def run_step(runner: Runner, run: ActiveRun) -> list[Outcome]:
    """Run the tasks planned for ``run.step``; their outcomes, in plan order."""
    if len(run.plan) == 1:
        return [await runner._run_task(run, 0, run.plan[0], parallel=not runs_alone(runner))]
    sem = asyncio.Semaphore(runner.max_concurrency)
    group = run.rows = RowGroup(runner.recorder)
    doomed, entered = False, 0

    def fatal(i: int, outcome: Outcome) -> bool:  # the step fails whatever the siblings do
        return outcome.status == "failed" and not runner.graph.nodes[run.plan[i].node].on_error

    async def guarded(i: int, spec: TaskSpec) -> Outcome:
        nonlocal doomed, entered
        async with sem:
            entered += 1
            # A branch beyond the first max_concurrency — one that waits for a place — does
            # not start once a sibling failed for good. run_all cancels waiting branches too,
            # but only when it hears of the failure: branches that run on the loop (never
            # suspending, so never waiting for the semaphore) would all have run by then.
            if doomed and entered > runner.max_concurrency:
                return Outcome("cancelled")
            outcome = await runner._run_task(run, i, spec, parallel=True)
            doomed = doomed or fatal(i, outcome)
            return outcome

    outcomes: list[Outcome] = []
    try:
        # The leading branches whose bodies run on the loop and never wait (no retry backoff)
        # run one after another here, without an asyncio task each; from the first that may
        # wait on something, the rest run side by side.
        for i, spec in enumerate(run.plan):
            if not never_waits(runner.graph.nodes[spec.node]):
                break
            if doomed and i >= runner.max_concurrency:
                outcomes.append(Outcome("cancelled"))
                continue
            outcome = await runner._run_task(run, i, spec, parallel=True)
            doomed = doomed or fatal(i, outcome)
            outcomes.append(outcome)
        start = entered = len(outcomes)
        jobs = [functools.partial(guarded, i, s) for i, s in enumerate(run.plan) if i >= start]
        if jobs:
            outcomes += await run_all(jobs, fatal=lambda j, o: fatal(start + j, o),
                                      cancelled=lambda j: Outcome("cancelled"))
    except BaseException:
        run.rows = None
        group.write()  # what finished is recorded; the error on its way out is the one to see
        raise
    run.rows = None
    group.close()
    return outcomes


def task_context(runner: Runner, run: ActiveRun, idx: int, spec: TaskSpec, attempt: int,
                 resume: TaskResume | None, first_started: int) -> Context:
    """The context a task's node gets: where its calls are recorded (or, in a replay, served
    from), the answers it resumes with, and the host of the subgraphs it runs."""
    replay = runner._replay
    if replay is not None:
        calls, answers = replay.task_inputs(run.step, idx, attempt)
        ctx = Context(
            # The id the step was recorded under (a fork's parent's before its fork step, a
            # subgraph's child run id): a node that uses it in a request asks the same again.
            run_id=replay.history.owner(run.step), graph=runner.graph.name, step=run.step, node=spec.node, task=idx,
            attempt=attempt, recorder=None, resume_values=answers, recorded_calls=calls,
            next_seq=0, emit=runner.listener, error=spec.error, strict=True, first_started=first_started,
        )
        ctx.recorded_questions = replay.task_questions(run.step, idx, attempt)
    else:
        recorder, step = runner.recorder, run.step

        def record_call(row: dict[str, Any]) -> None:
            recorder.call(run.run_id, step, idx, spec.node, attempt, row)

        ctx = Context(
            run_id=run.run_id, graph=runner.graph.name, step=run.step, node=spec.node, task=idx,
            attempt=attempt, recorder=record_call if recorder.enabled else None,
            resume_values=resume.resume_values if resume else [],
            recorded_calls=resume.recorded if resume else [],
            next_seq=resume.next_seq if resume else 0,
            emit=runner.listener, error=spec.error, first_started=first_started,
        )
    # Subgraphs this task runs are child runs; a task that ran before may find them recorded.
    ctx.subgraphs = SubgraphHost(runner, run, idx, spec, continuing=resume is not None or attempt > 1,
                                 attempt=attempt)
    return ctx

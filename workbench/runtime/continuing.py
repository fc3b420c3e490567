"""Continuing recorded runs: where a resumed step stands, and what a fork is served.

A resumed step does not re-run its tasks that completed; a task that was interrupted runs again
from its top with its answers and its recorded model/tool calls served; a task that failed runs
its next attempt. A fork with an edited model answer is served the parent's calls of that task
up to the edited one, with the new answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workbench.context import EDITED, RecordedCall
from workbench.errors import InputError
from workbench.recording import Record, Recorder
from workbench.runtime.commands import recorded_outcome
from workbench.runtime.option_names import opt
from workbench.runtime.types import ActiveRun, Outcome, TaskResume
from workbench.store.reader import StoreReader


def load_step_progress(run: ActiveRun, store: StoreReader, interrupts: list[dict[str, Any]], *,
                       resumed_from: str = "") -> dict[int, int]:
    """Which tasks of the run's current step already finished, and where the others stand.

    A task whose open interrupt was closed is dropped from the step. A failed task runs its
    next attempt; when the run itself failed (``resumed_from="failed"``) that attempt starts a
    fresh retry budget, and the returned ``{task: first attempt of the new budget}`` is recorded
    with the ``resumed`` event, so the budget survives a crash or a pause within it.
    """
    rows = store.tasks(run.run_id, run.step)
    calls = store.llm_calls(run.run_id, run.step)
    for i in interrupts:
        run.known_interrupts.add((i["step"], i["task"], i["attempt"], i["idx"]))
    budgets = _budgets(store, run)
    handled = _handled_failures(store, run)
    fresh: dict[int, int] = {}
    for idx in range(len(run.plan)):
        mine = [r for r in rows if r["task"] == idx]
        done = [r for r in mine if r["status"] == "completed"]
        if done:
            run.completed[idx] = recorded_outcome(done[0])
            continue
        final = handled.get(idx)
        if final is not None and mine and mine[-1]["status"] == "failed" and mine[-1]["attempt"] == final["attempt"]:
            # Failed for good into its on_error handler: that is the task's outcome, not run again.
            run.completed[idx] = Outcome("failed", message=final["message"], error_type=final["type"])
            continue
        my_calls = [c for c in calls if c["task"] == idx]
        attempt = max([r["attempt"] for r in mine] + [c["attempt"] for c in my_calls] + [1])
        next_seq = max([c["seq"] for c in my_calls] + [-1]) + 1
        first = min((_epoch_us(r["started_at"]) for r in mine if r["started_at"] is not None), default=None)
        last = mine[-1] if mine else None
        if last is not None and last["status"] == "closed":
            run.closed[idx] = False  # dropped already (by a resume --close, or a fork's --close)
            continue
        if last is not None and last["status"] == "failed" and last["attempt"] == attempt:
            if resumed_from == "failed":
                fresh[idx] = budgets[idx] = attempt + 1
            run.resume[idx] = TaskResume(attempt + 1, [], [], next_seq, budgets.get(idx, 1), first)
            continue
        # Answers belong to the attempt that asked: a retried node asks again.
        mine_asked = [i for i in interrupts if i["step"] == run.step and i["task"] == idx and i["attempt"] == attempt]
        if any(i["closed"] for i in mine_asked):
            run.closed[idx] = last is None or last["status"] != "closed"
        answers = [i["response"] for i in mine_asked if i["resumed_at"] is not None and not i["closed"]]
        recorded = [
            RecordedCall(c["seq"], c["fingerprint"] or "", c["response"], c)
            for c in my_calls if c["attempt"] == attempt
        ]
        run.resume[idx] = TaskResume(attempt, answers, recorded, next_seq, budgets.get(idx, 1), first)
    return fresh


HANDLED = "handled_failure"
"""The event recording that a task failed for good and its node's on_error handler takes over."""


def _handled_failures(store: StoreReader, run: ActiveRun) -> dict[int, dict[str, Any]]:
    """Tasks of the run's current step whose failure was final and handed to a handler."""
    out: dict[int, dict[str, Any]] = {}
    for event in store.events(run.run_id):
        detail = event.get("detail") or {}
        if event["kind"] == HANDLED and event["step"] == run.step and isinstance(detail, dict):
            out[int(detail["task"])] = detail
    return out


def _budgets(store: StoreReader, run: ActiveRun) -> dict[int, int]:
    """The first attempt of each task's current retry budget at this step, as earlier resumes
    of the failed run recorded them (a task without one counts from attempt 1)."""
    out: dict[int, int] = {}
    for event in store.events(run.run_id):
        detail = event.get("detail") or {}
        if event["kind"] == "resumed" and event["step"] == run.step and isinstance(detail, dict):
            out.update({int(k): int(v) for k, v in (detail.get("fresh_retries") or {}).items()})
    return out


def settled_detail(settled: list[tuple[dict[str, Any], str | None]], fresh: dict[int, int],
                   run: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a resume settled, for its ``resumed`` event: why the run had stopped (its error,
    which the claim clears from the run's row: a router's failure or a step limit leaves no
    failed step to show it), interrupts answered and closed, and the tasks given a fresh retry
    budget."""
    out: dict[str, Any] = {"error": run["error"]} if run and run.get("error") else {}
    answered = [row["interrupt_id"] for row, reply in settled if reply is not None]
    closed = [row["interrupt_id"] for row, reply in settled if reply is None]
    if answered:
        out["answered"] = answered
    if closed:
        out["closed"] = closed
    if fresh:
        out["fresh_retries"] = {str(k): v for k, v in fresh.items()}
    return out


def _epoch_us(value: Any) -> int:
    if isinstance(value, datetime):
        naive = value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
        return (naive - _EPOCH) // timedelta(microseconds=1)
    return int(value)


_EPOCH = datetime(1970, 1, 1)


def final_calls(store: StoreReader, run_id: str, step: int) -> list[dict[str, Any]]:
    """The model and tool calls of each task's last attempt at a step, in task/call order."""
    owner = store.step_owner(run_id, step)
    calls = store.llm_calls(owner, step)
    last_attempt: dict[int, int] = {}
    for c in calls:
        last_attempt[c["task"]] = max(last_attempt.get(c["task"], 0), c["attempt"])
    return [c for c in calls if c["attempt"] == last_attempt[c["task"]]]


def seed_llm_edits(run: ActiveRun, store: StoreReader, parent_id: str, step: int,
                   edits: dict[int, str]) -> list[Record]:
    """The records that give a fork the parent's calls up to each edited one (with the new
    answers), and the arrangements that serve them to the fork's tasks. A node may have
    several of its calls edited."""
    if not edits:
        return []
    calls = final_calls(store, parent_id, step)
    llm_only = [c for c in calls if c["kind"] == "llm"]
    by_task: dict[int, dict[int, str]] = {}  # task -> {seq of an edited call: its new answer}
    for number, text in sorted(edits.items()):
        if not llm_only:
            raise InputError(f"{opt('--llm-response')}: step {step} of run {parent_id} made no model call")
        if number < 1 or number > len(llm_only):
            raise InputError(
                f"{opt('--llm-response')} {number}: step {step} of run {parent_id} has "
                f"{len(llm_only)} model call(s); number them 1..{len(llm_only)}"
            )
        target = llm_only[number - 1]
        by_task.setdefault(target["task"], {})[target["seq"]] = text
    records: list[Record] = []
    for task, answers in by_task.items():
        last = max(answers)
        attempt = next(c["attempt"] for c in llm_only if c["task"] == task and c["seq"] == last)
        served: list[RecordedCall] = []
        for c in calls:
            if c["task"] != task or c["seq"] > last:
                continue
            response, fp = c["response"], c["fingerprint"] or ""
            if c["seq"] in answers:
                # Served at its place whatever the fork asks there (its own --set may change the
                # prompt); the request made is recorded when it is served.
                response, fp = {"role": "assistant", "content": answers[c["seq"]]}, EDITED + fp
            record = Recorder.copied_call(run.run_id, c, response)
            record[1]["fingerprint"] = fp
            records.append(record)
            served.append(RecordedCall(c["seq"], fp, response, record[1]))
        # The fork's task continues the attempt that made these calls (a node may act on
        # ctx.attempt: an earlier attempt may have failed before any call), and its retry
        # budget stands where the parent's did at that attempt.
        run.resume[task] = TaskResume(attempt, [], served, last + 1)
    return records

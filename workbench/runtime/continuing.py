"""Continuing recorded runs: where a resumed step stands, and what a fork is served.

A resumed step does not re-run its tasks that completed; a task that was interrupted runs again
from its top with its answers and its recorded model/tool calls served; a task that failed runs
its next attempt. A fork with an edited model answer is served the parent's calls of that task
up to the edited one, with the new answer.
"""

from __future__ import annotations

from typing import Any

from workbench.context import RecordedCall
from workbench.errors import InputError
from workbench.recording import Record, Recorder
from workbench.runtime.types import ActiveRun, Outcome, TaskResume
from workbench.store.reader import StoreReader


def load_step_progress(run: ActiveRun, store: StoreReader, interrupts: list[dict[str, Any]]) -> None:
    """Which tasks of the run's current step already finished, and where the others stand."""
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
            run.resume[idx] = TaskResume(attempt + 1, [], [], next_seq)
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
        run.resume[idx] = TaskResume(attempt, answers, recorded, next_seq)


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
    answer), and the arrangements that serve them to the fork's tasks."""
    if not edits:
        return []
    calls = final_calls(store, parent_id, step)
    llm_only = [c for c in calls if c["kind"] == "llm"]
    records: list[Record] = []
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
        if run.resume.get(task) is not None:
            raise InputError("--llm-response: edit one model call per node")
        served: list[RecordedCall] = []
        for c in calls:
            if c["task"] != task or c["seq"] > target["seq"]:
                continue
            response = c["response"]
            if c["seq"] == target["seq"]:
                response = {"role": "assistant", "content": text}
            record = Recorder.copied_call(run.run_id, c, response)
            records.append(record)
            served.append(RecordedCall(c["seq"], c["fingerprint"] or "", response, record[1]))
        run.resume[task] = TaskResume(1, [], served, target["seq"] + 1)
    return records

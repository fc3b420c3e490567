"""Closing an interrupt by a fork edit: ``workbench fork RUN --at STEP --close ID``.

A fork at the step where a task asked a human (``interrupt()``) may close that question instead
of answering it: in the fork, the task that asked is dropped from the step — its branch ends
there, its siblings run as the fork runs them — exactly as ``resume --close`` drops it from the
run itself. The fork does not ask again and does not wait.

What is recorded, in the fork's first frame (with its row, edits and plan): a task row for the
dropped task with status ``closed`` and an ``error`` saying it was closed by a fork edit and
which interrupt of which run it closed, and the ``forked`` event's detail lists the ids
(``"closed": [...]``). The parent's interrupt is untouched (it stays open, or answered): only
the fork closed it. A resume of the fork after a crash keeps the task closed
(:func:`workbench.runtime.continuing.load_step_progress`).

The ids are those of the step being forked (``workbench show RUN --step STEP`` lists them):
for a fork at an inner step (``--at 2/review/1``) the ids of that inner step of the child run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from workbench.errors import InputError
from workbench.recording import Record
from workbench.runtime.option_names import opt
from workbench.runtime.subgraph import SEP
from workbench.store.store import now_us

if TYPE_CHECKING:
    from workbench.store.reader import StoreReader


def closing_records(store: StoreReader, parent_run_id: str, step: int, fork_run_id: str,
                    plan: list[dict[str, Any]], ids: Iterable[str], where: str) -> tuple[list[Record], set[int]]:
    """The task rows that drop, in fork ``fork_run_id``, the tasks of ``step`` whose interrupts
    ``ids`` name (interrupts recorded at that step of ``parent_run_id``), and their indexes.
    A one-line InputError for an id that is not a question asked at that step."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        return [], set()
    owner = store.step_owner(parent_run_id, step)
    asked = {i["interrupt_id"]: i for i in store.interrupts(owner) if i["step"] == step}
    records: list[Record] = []
    tasks: set[int] = set()
    known = ", ".join(f"{k} ({v['node']})" for k, v in asked.items()) or "none"
    for ident in wanted:
        row = asked.get(ident)
        if row is None:
            if SEP in ident:
                raise InputError(f"{opt('--close')} {ident}: that question was asked inside a subgraph; fork at the "
                                 f"inner step that asked it ({opt('--at')} STEP/NODE/INNER_STEP) and close it there "
                                 f"by its inner id (the part after the last '{SEP}')")
            raise InputError(f"{opt('--close')} {ident}: {where} asked no interrupt {ident} (asked there: {known})")
        idx = int(row["task"])
        if idx >= len(plan) or plan[idx].get("node") != row["node"]:
            raise InputError(f"{opt('--close')} {ident}: task {idx} of {where} is not node {row['node']!r}")
        if idx in tasks:
            continue  # two questions of one task: dropping the task closes both
        tasks.add(idx)
        spec = plan[idx]
        now = now_us()
        records.append(("task", {
            "run_id": fork_run_id, "step": step, "task": idx, "node": row["node"], "attempt": 1,
            "status": "closed", "started_at": now, "ended_at": now, "duration_ms": 0.0, "update": None,
            "error": f"closed by a fork edit: interrupt {ident} of run {owner} is not answered in this fork",
            "traceback": None, "arg": _arg(spec), "goto": None,
        }))
    return records, tasks


def _arg(spec: dict[str, Any]) -> str | None:
    from workbench import codec

    return codec.dumps(spec.get("arg")) if spec.get("send") else None

"""The runtime's data: planned tasks, their outcomes, the in-memory state of a run, results."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench import codec
from workbench.context import RecordedCall
from workbench.errors import RunStateError

NO_VALUE: Any = object()
"""Sentinel: resume without a value (a paused run, or a crashed one)."""


def new_run_id() -> str:
    """A sortable, unique run id: milliseconds since the epoch then random bits, in hex."""
    return f"{time.time_ns() // 1_000_000:011x}{random.getrandbits(24):06x}"


MAX_RUN_ID = 200


def run_id_problem(run_id: Any) -> str | None:
    """Why ``run_id`` cannot name a run a user starts (or imports as one), or None.

    ``/`` is reserved for the runs of subgraphs (``CALLER/STEP.TASK.N``), ``last`` is the CLI's
    word for the newest run, and an id is printed everywhere: no control characters (a terminal
    would act on them) and no blank."""
    if not isinstance(run_id, str) or not run_id.strip():
        return "a run id is a non-empty string"
    if len(run_id) > MAX_RUN_ID:
        return f"a run id has at most {MAX_RUN_ID} characters"
    if not run_id.isprintable() or run_id != run_id.strip():
        return f"run id {run_id!r} holds control characters or surrounding blanks"
    if "/" in run_id:
        return f"run id {run_id!r} holds '/', which names the runs of subgraphs"
    if run_id == "last":
        return "'last' names the newest run on the command line; it cannot be a run id"
    return None


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

    status: str  # completed | failed | interrupted | closed | cancelled
    update: Any = None  # a dict, a list of dicts (applied in order), or None
    error: BaseException | None = None
    message: str | None = None
    interrupt: Any = None
    goto: list[Any] | None = None  # a Command's destinations: names and Sends
    asked: dict[str, Any] | None = None  # an interrupted task's open interrupt: id, node, payload
    where: str | None = None  # a subgraph's stop: the inner node's path (review/approve)
    paused: dict[str, Any] | None = None  # a subgraph paused at a breakpoint inside it
    asked_all: list[dict[str, Any]] | None = None  # a waiting subgraph's open interrupts, in the caller's terms
    error_type: str | None = None  # a failure read back from the record: its exception's type name


@dataclass
class TaskResume:
    """What a task re-run after a pause or crash continues from."""

    attempt: int
    resume_values: list[Any]
    recorded: list[RecordedCall]
    next_seq: int
    # The first attempt of this task's current retry budget (a resumed failed run starts a
    # fresh one), and when its very first attempt started (epoch microseconds).
    budget_from: int = 1
    first_started: int | None = None


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
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    """A waiting run's open interrupts, oldest first: ``{"id", "node", "payload"}`` each."""

    @property
    def interrupt_id(self) -> str | None:
        """The id of the open interrupt ``interrupt`` is the payload of (the oldest)."""
        return self.interrupts[0]["id"] if self.interrupts else None

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
            "interrupt_id": self.interrupt_id,
            "interrupts": codec.to_jsonable(self.interrupts),
        }


@dataclass
class ActiveRun:
    """The in-memory state of one run being executed."""

    run_id: str
    state: dict[str, Any]
    step: int
    plan: list[TaskSpec]
    joins: dict[str, list[Any]]
    config: dict[str, Any]
    completed: dict[int, Outcome] = field(default_factory=dict)
    # Tasks whose open interrupt was closed unanswered -> whether their "closed" row is still to
    # be recorded (once, by the resume that closed it).
    closed: dict[int, bool] = field(default_factory=dict)
    resume: dict[int, TaskResume] = field(default_factory=dict)
    known_interrupts: set[tuple[int, int, int, int]] = field(default_factory=set)
    skip_before: bool = False
    history: list[str] = field(default_factory=list)
    extended: dict[str, list[Any]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    # A one-task step's completed task record, written with the step's commit (one journal write).
    deferred: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # While a parallel step runs: its branches' task rows, written in groups (runtime/branches.py).
    rows: Any = None

    def track(self, changes: Iterable[tuple[str, str, Any]]) -> None:
        """Note state changes ``(key, op, value)`` of the run: which keys it touched, and the items
        appended to each since it was last set (what a subgraph's caller is handed)."""
        for key, op, value in changes:
            self.touched.add(key)
            if op == "extend":
                self.extended.setdefault(key, []).extend(value)
            else:
                self.extended.pop(key, None)


def check_planned_nodes(graph: Any, tasks: list[dict[str, Any]], what: str) -> None:
    """Refuse to go on with recorded tasks whose node ``graph`` no longer has (renamed or
    removed since the run was recorded): checked before anything is claimed or recorded, so the
    run keeps its status and no half-made fork is left behind. ``what``: the recorded step, for
    the message ("run X continues at step 3")."""
    missing = sorted({t["node"] for t in tasks if t["node"] not in graph.nodes})
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise RunStateError(f"{what} with node{'s' if len(missing) > 1 else ''} {names}, which graph {graph.name!r} "
                            "no longer has; put the node back (or fork the run at an earlier step)")

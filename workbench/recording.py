"""The recording seam: what the runtime tells the trace store, in the runtime's own terms.

The runtime calls a :class:`Recorder` ("a run started", "a task finished", "a step committed",
"the run waits for a human") and never builds a table row; this module is the one place that
knows how those facts become store records (see store/tables.py for the columns). Without a
store every method does nothing, so the loop reads the same recorded or not.

A step's records leave in one frame: a one-task step's completed task row is held back
(:meth:`Recorder.task_finished` with ``defer=True``) and written with the step's state changes
and the next step's plan, so the step is durable all at once, with one journal write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench import codec
from workbench.redact import scrub
from workbench.store.store import now_us

if TYPE_CHECKING:
    from workbench.state import Change
    from workbench.store.store import TraceStore

Record = tuple[str, dict[str, Any]]


class Recorder:
    """Turns what happens in a run into trace-store records (nothing at all without a store)."""

    def __init__(self, store: TraceStore | None) -> None:
        self.store = store

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def write(self, records: Sequence[Record]) -> None:
        """Write ``records`` in one journal frame (durable when this returns)."""
        if self.store is not None and records:
            self.store.record_many(records)

    _write = write

    # ------------------------------------------------------------------ run starts

    def run_row(self, run_id: str, graph: Any, *, input_json: str, config: dict[str, Any],
                parent: str | None = None, fork_step: int | None = None,
                relation: str = "fork") -> dict[str, Any]:
        """The record of a new run of ``graph``; with ``parent``, a fork or (``relation``
        ``"continuation"``) a conversation's next turn."""
        from workbench.graph import display_path

        row: dict[str, Any] = {
            "run_id": run_id, "graph": graph.name, "graph_file": display_path(graph.file),
            "code_version": graph.code_version, "node_versions": codec.dumps(graph.node_versions()),
            "status": "running", "started_at": now_us(), "input": input_json, "config": codec.dumps(config),
        }
        if parent is not None:
            row.update(parent_run_id=parent, fork_step=fork_step, relation=relation)
        return row

    def run_started(self, run_row: dict[str, Any], changes: list[Record], plan: Record, *,
                    reserve: bool) -> None:
        """A new run: its row, its input as step-0 changes and the first plan, in one frame.

        ``reserve``: the caller chose the run id, so claim it in the store first (a clear error
        when it is taken).
        """
        if self.store is None:
            return
        if reserve:
            self.store.reserve_run(run_row)
            self._write([*changes, plan])
        else:
            self._write([("run", run_row), *changes, plan])

    def fork_started(self, run_row: dict[str, Any], edits: list[Record], plan: Record,
                     seeded: list[Record], detail: dict[str, Any]) -> None:
        """A fork: its row, its state edits, the plan of its first step, the model answers it is
        served instead of the recorded ones, and a ``forked`` event."""
        run_id = run_row["run_id"]
        self._write([
            ("run", run_row), *[(kind, {**row, "run_id": run_id}) for kind, row in edits], plan, *seeded,
            ("event", {"run_id": run_id, "step": run_row["fork_step"], "kind": "forked", "node": None,
                       "detail": codec.dumps(detail), "created_at": now_us()}),
        ])

    def claim(self, run_id: str, *, status: str, answers: Sequence[tuple[dict[str, Any], str | None]] = (),
              config: dict[str, Any]) -> None:
        """Take a stopped run over to continue it (exactly once across processes). ``answers``
        settle open interrupts in the same transaction: ``(interrupt, reply JSON)`` answers
        one, ``(interrupt, None)`` closes it without an answer."""
        if self.store is None:
            return
        replies = []
        for interrupt, reply_json in answers:
            reply = {k: interrupt[k] for k in ("run_id", "step", "task", "attempt", "idx")}
            reply.update(response=reply_json, resumed_at=now_us(), closed=reply_json is None)
            replies.append(reply)
        self.store.claim(run_id, allowed=[status], answers=replies, config=codec.dumps(config))

    def run_continued(self, run_id: str, config: dict[str, Any]) -> None:
        """A subgraph's child run continues (its caller's run holds the claim)."""
        self._write([("run_update", {"run_id": run_id, "status": "running", "error": None,
                                     "config": codec.dumps(config)})])

    # ------------------------------------------------------------------ encoding

    @staticmethod
    def changes(run_id: str, step: int, changes: list[Change]) -> list[Record]:
        """State changes as records (raises SerializationError naming the key)."""
        return [("change", {"run_id": run_id, "step": step, "key": key, "op": op,
                            "value": codec.fast_dumps(value, f"state.{key}")})
                for key, op, value in changes]

    @staticmethod
    def plan(run_id: str, step: int, tasks: list[dict[str, Any]], joins: dict[str, list[Any]]) -> Record:
        return ("plan", {"run_id": run_id, "step": step, "tasks": codec.fast_dumps(tasks),
                         "joins": codec.fast_dumps(joins), "created_at": now_us()})

    @staticmethod
    def copied_call(run_id: str, call: dict[str, Any], response: Any) -> Record:
        """A recorded call (as the store returns it) copied into another run, with ``response``
        as its answer — how a fork carries a parent's call with an edited model answer."""
        row = {k: call[k] for k in ("step", "task", "node", "attempt", "seq", "kind", "model", "prompt_tokens",
                                    "completion_tokens", "cost_usd", "latency_ms", "attempts", "fingerprint")}
        row.update({"run_id": run_id, "error": None, "created_at": now_us(),
                    "messages": codec.dumps(call["messages"]), "params": codec.dumps(call["params"]),
                    "response": codec.dumps(response)})
        return ("llm", row)

    # ------------------------------------------------------------------ during a step

    def task_finished(self, run_id: str, step: int, task: int, node: str, attempt: int, status: str, *,
                      started: int, duration_ms: float, update_json: str | None = None,
                      error: str | None = None, traceback: str | None = None, arg: Any = None,
                      send: bool = False, goto_json: str | None = None, defer: list[Record] | None = None,
                      group: Any = None) -> None:
        """A node execution ended; with ``defer`` its record waits for the step's commit, with
        ``group`` (a :class:`~workbench.runtime.branches.RowGroup`) for its siblings' rows of
        the same turn of the event loop."""
        if self.store is None:
            return
        record: Record = ("task", {
            "run_id": run_id, "step": step, "task": task, "node": node, "attempt": attempt, "status": status,
            "started_at": started, "ended_at": now_us(), "duration_ms": duration_ms, "update": update_json,
            "error": scrub(_capped(error, 8_000)) if error else error,
            "traceback": scrub(_capped(traceback, 64_000)) if traceback else traceback,
            # A Send's argument is plain JSON already (the planner made it so): the C encoder
            # gives the same text as the path-naming walk, and falls back to it otherwise.
            "arg": codec.fast_dumps(arg) if send else None, "goto": goto_json,
        })
        if defer is not None:
            defer.append(record)
        elif group is not None:
            group.add(record)
        else:
            self._write([record])

    def call(self, run_id: str, step: int, task: int, node: str, attempt: int, row: dict[str, Any]) -> None:
        """A model or tool call made by a task (``row`` comes from the LLM/tool layer); a row
        marked ``amend`` is the request of a call recorded already (an edited answer served)."""
        if self.store is None:
            return
        if row.get("amend"):
            self.store.record("llm_request", {"run_id": run_id, "step": step, "task": task, "attempt": attempt,
                                              **{k: row[k] for k in ("seq", "messages", "params", "fingerprint")}})
            return
        self.store.record("llm", {"run_id": run_id, "step": step, "task": task, "node": node,
                                  "attempt": attempt, **row})

    def interrupt(self, run_id: str, step: int, task: int, node: str, attempt: int, index: int,
                  payload_json: str) -> None:
        self._write([("interrupt", {
            "run_id": run_id, "step": step, "task": task, "node": node, "attempt": attempt, "idx": index,
            "payload": payload_json, "created_at": now_us(),
        })])

    def step_committed(self, deferred: list[Record], changes: list[Record], next_plan: Record) -> None:
        """The step's merged changes and the next plan (with any held-back task row): one frame."""
        self._write([*deferred, *changes, next_plan])
        deferred.clear()

    def flush_deferred(self, deferred: list[Record]) -> None:
        """Write a held-back task row when its step ends without a commit (failure, wait, pause)."""
        self._write(deferred)
        deferred.clear()

    def event(self, run_id: str, step: int | None, kind: str, node: str | None, detail: Any) -> None:
        self._write([self._event(run_id, step, kind, node, detail)])

    @staticmethod
    def event_record(run_id: str, step: int | None, kind: str, node: str | None, detail: Any) -> Record:
        """An event as a record, to be written with others in one frame (a fork's first)."""
        return Recorder._event(run_id, step, kind, node, detail)

    @staticmethod
    def _event(run_id: str, step: int | None, kind: str, node: str | None, detail: Any) -> Record:
        return ("event", {"run_id": run_id, "step": step, "kind": kind, "node": node,
                          "detail": codec.dumps(detail), "created_at": now_us()})

    # ------------------------------------------------------------------ run ends

    def run_finished(self, run_id: str, status: str, *, last_step: int, output: Any = None,
                     error: str | None = None) -> None:
        """The run completed or failed (``output``: the final state of a completed run)."""
        row: dict[str, Any] = {"run_id": run_id, "status": status, "ended_at": now_us(), "last_step": last_step}
        if status == "completed":
            row["output"] = codec.fast_dumps(output, "state")
        if error:
            row["error"] = scrub(error)
        self._write([("run_update", row)])

    def run_waiting(self, run_id: str, step: int, node: str, payload: Any, interrupt_id: str | None = None) -> None:
        self._write([
            ("run_update", {"run_id": run_id, "status": "waiting", "last_step": step - 1}),
            self._event(run_id, step, "interrupt", node, {"payload": payload, "interrupt_id": interrupt_id}),
        ])

    def run_paused(self, run_id: str, *, next_step: int, at_step: int, node: str | None, when: str,
                   config: dict[str, Any], detail: dict[str, Any]) -> None:
        self._write([
            ("run_update", {"run_id": run_id, "status": "paused", "last_step": next_step - 1,
                            "config": codec.dumps(config)}),
            self._event(run_id, at_step, "breakpoint", node, {"when": when, **detail}),
        ])


def _capped(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, its start and its end kept (a traceback's
    last lines name the error): an exception message of megabytes failed the record of the
    step and left the run stuck."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return f"{text[:head]}\n… ({len(text) - head - tail:,} characters left out) …\n{text[-tail:]}"

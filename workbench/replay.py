"""Replay: re-execute a recorded run with today's code, serving every recorded answer.

Every model and tool call is served from the recording, matched by step, node, call order and
a fingerprint of the request; interrupts get their recorded answers; a fork's edits are applied
where the fork applied them. Nothing is called live: a request the recording does not have is a
divergence. The first divergence — the path (which nodes ran), a node's update, a request (say,
a changed prompt), the state, or how the run ended — is reported with a readable diff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workbench import codec
from workbench.context import RecordedCall, ReplayDivergence
from workbench.graph import Graph
from workbench.history import RunHistory, state_diff, text_diff
from workbench.runtime.commands import encode_goto
from workbench.state import encode_update
from workbench.store.store import TraceStore


@dataclass
class Divergence:
    """Where and how a replay first differed from the recording."""

    step: int
    kind: str  # path | update | status | request | extra_call | missing_call | question | state | end
    node: str | None
    message: str
    diff: str = ""
    at: str | None = None  # inside a subgraph: STEP/NODE/INNER_STEP (as `fork --at` takes it)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "node": self.node, "message": self.message,
                "diff": self.diff, "at": self.at or str(self.step)}

    def __str__(self) -> str:
        head = f"step {self.at or self.step}" + (f", node {self.node!r}" if self.node else "") + f": {self.message}"
        return head + (f"\n{self.diff}" if self.diff else "")


@dataclass
class ReplayReport:
    """The outcome of a replay."""

    run_id: str
    graph: str
    steps: int
    status: str
    divergence: Divergence | None = None
    changed_nodes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "graph": self.graph, "identical": self.identical,
                "steps": self.steps, "status": self.status, "changed_nodes": self.changed_nodes,
                "divergence": self.divergence.to_json() if self.divergence else None}


def _norm(value: Any) -> Any:
    return json.loads(codec.fast_dumps(value)) if value is not None else None


class _Diverged(ReplayDivergence):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.kind, {})
        self.divergence = divergence


class _EndOfRecording(ReplayDivergence):
    """The recording stops before this step (a paused or interrupted-by-crash run): so does replay."""

    def __init__(self, step: int) -> None:
        super().__init__("end_of_recording", {"step": step})
        self.step = step


class _EndOfTurn(ReplayDivergence):
    """A conversation's turn ends after this step (the next turn is a continuation)."""

    def __init__(self, step: int) -> None:
        super().__init__("end_of_turn", {"step": step})
        self.step = step


class ReplaySession:
    """The hooks a Runner calls during a replay (see ``Runner(replay=...)``)."""

    def __init__(self, history: RunHistory) -> None:
        self.history = history
        self.continued = False  # a child run replayed for its caller's later attempt (child_session)
        self.fails_here = False  # ... or for the caller's recorded attempt that failed with it
        self.ended_as = recorded_end(history)
        self.steps_done = 0
        # In a conversation, the last step of the turn being replayed (the next turn is replayed
        # as the continuation it was; runtime/conversation.py).
        self.turn_end: int | None = None
        self.max_steps: int | None = (history.run.get("config") or {}).get("max_steps")
        self._fresh: dict[int, set[tuple[int, int]]] = {}  # step → {(task, attempt) a resume started}

    # ------------------------------------------------------------------ subgraphs

    def child_session(self, step: int, idx: int, call: int, node: str, graph: str, *,
                      continued: bool = False, fails_here: bool = False) -> ReplaySession:
        """The replay of the subgraph run that task ``idx`` of ``step`` started as its ``call``-th.
        ``continued``: replayed for a later attempt of the task than the first, which continued
        the child run past a failure (see :meth:`resumed_after_failure`)."""
        from workbench.errors import RunNotFoundError
        from workbench.runtime.subgraph import child_run_id

        child_id = child_run_id(self.history.owner(step), step, idx, call)
        try:
            child = RunHistory(self.history.store, child_id)
        except RunNotFoundError:
            raise _Diverged(Divergence(step, "path", node, f"the node now runs subgraph {graph!r}; the "
                                       "recording has no such subgraph run")) from None
        if child.run["graph"] != graph:
            raise _Diverged(Divergence(step, "path", node, f"the node now runs subgraph {graph!r}; the "
                                       f"recording ran {child.run['graph']!r}"))
        session = ReplaySession(child)
        session.continued, session.fails_here = continued, fails_here
        return session

    def attempt_status(self, step: int, idx: int, attempt: int) -> str | None:
        """How the recording has this attempt of the task end (None: not recorded)."""
        rows = [t["status"] for t in self.history.step(step).tasks if t["task"] == idx and t["attempt"] == attempt]
        return rows[-1] if rows else None

    def check_end(self, status: str, step: int, *, failed_there: bool = False) -> None:
        """A subgraph's replay ended: it must end as its recording did (``failed_there``: it
        failed where its caller's recorded attempt failed, before a resume continued it)."""
        if failed_there:
            return
        divergence = _end_divergence(self.history, self.ended_as, status, step)
        if divergence is not None:
            raise _Diverged(divergence)

    @staticmethod
    def lift(div: ReplayDivergence, step: int, node: str) -> None:
        """Say where a divergence inside a subgraph is, in its caller's terms: the caller's step,
        the inner node's path (``review/approve``) and the address ``3/review/2``."""
        if isinstance(div, _EndOfRecording):
            div.step = step
            return
        if isinstance(div, _Diverged):
            d = div.divergence
            d.at = f"{step}/{node}/{d.at or d.step}"
            d.node = f"{node}/{d.node}" if d.node else node
            d.step = step
            return
        detail = div.detail
        detail["at"] = f"{step}/{node}/{detail.get('at') or detail.get('step', 0)}"
        detail["node"] = f"{node}/{detail['node']}" if detail.get("node") else node
        detail["step"] = step

    def start_edits(self) -> list[tuple[str, str, Any]]:
        """A fork's edits made before its first step (``--at 1``, or an inner ``--at N/node/1``):
        what its replay starts from, as the fork did."""
        return self.history.step(0).edits_after if len(self.history.lineage) > 1 else []

    def first_attempt(self, step: int, idx: int) -> int:
        """The attempt the recording of task ``idx`` of ``step`` starts at: 1, unless a fork
        edited a model answer of a retried node and so continued the attempt that made it."""
        attempts = [t["attempt"] for t in self.history.step(step).tasks if t["task"] == idx]
        return min(attempts) if attempts else 1

    def resumed_after_failure(self, step: int, idx: int, attempt: int) -> bool:
        """True when the recorded run failed at this attempt of the task and a resume gave the
        task a fresh retry budget from the next attempt (``resumed`` event, ``fresh_retries``):
        the replay goes on with that attempt, as the run did, rather than reporting the failure
        as a divergence."""
        if step not in self._fresh:
            fresh: set[tuple[int, int]] = set()
            for event in self.history.store.events(self.history.owner(step)):
                detail = event.get("detail") or {}
                if event["kind"] == "resumed" and event["step"] == step and isinstance(detail, dict):
                    fresh |= {(int(k), int(v)) for k, v in (detail.get("fresh_retries") or {}).items()}
            self._fresh[step] = fresh
        if (idx, attempt + 1) in self._fresh[step]:
            return True
        # A child run continued by its caller's resume records no fresh budget of its own: its
        # later recorded attempt is the resume's.
        return self.continued and self.attempt_status(step, idx, attempt + 1) is not None

    def task_inputs(self, step: int, idx: int, attempt: int) -> tuple[list[RecordedCall], list[Any]]:
        """The calls and answers recorded for this attempt of the task (a retried node is served
        each attempt's own recording, failures included, so retries replay as they happened)."""
        view = self.history.step(step)
        calls = [
            RecordedCall(c["seq"], c["fingerprint"] or "", c["response"], c)
            for c in view.calls if c["task"] == idx and c["attempt"] == attempt
        ]
        answers = [i["response"] for i in view.interrupts  # a question closed unanswered has none
                   if i["task"] == idx and i["attempt"] == attempt and i["resumed_at"] is not None
                   and not i["closed"]]
        return calls, answers

    def task_questions(self, step: int, idx: int, attempt: int) -> list[Any]:
        """The payloads of the questions this attempt of the task asked and had answered, in
        order: a replay serves an answer only to the question it was given to."""
        return [i["payload"] for i in self.history.step(step).interrupts
                if i["task"] == idx and i["attempt"] == attempt and i["resumed_at"] is not None and not i["closed"]]

    def before_step(self, step: int, plan: list[Any]) -> None:
        if self.turn_end is not None and step > self.turn_end:
            self.end_turn(step, plan)
        if self._recording_ends_before(step):
            raise _EndOfRecording(step)
        if step > self.history.last_step:
            raise _Diverged(Divergence(step, "path", None,
                                       f"the run now goes on to {', '.join(t.node for t in plan)}; "
                                       f"the recording ended after step {self.history.last_step}"))
        view = self.history.step(step)
        now = [t.to_json() for t in plan]
        if [t.get("node") for t in now] != view.nodes or _norm(now) != _norm(view.planned):
            if _names(now) == _names(view.planned):  # same nodes: what they are given differs
                message = (f"the run now takes {_names(now)} with other inputs (a Send's argument, or the "
                           "failure a handler gets) than the recording's")
            else:
                message = f"the run now takes {_names(now)}; the recording took {_names(view.planned)}"
            raise _Diverged(Divergence(step, "path", None, message, text_diff(view.planned, now)))

    def end_turn(self, step: int, plan: list[Any]) -> None:
        """The turn ends before ``step``: it must have planned what its recording planned there
        (nothing for a turn that completed; the discarded work of one that was superseded)."""
        assert self.turn_end is not None
        recorded = self.history.store.plan(self.history.owner(self.turn_end), step) or {"tasks": []}
        now = [t.to_json() for t in plan]
        if _norm(now) != _norm(recorded["tasks"]):
            ended = "ended" if not recorded["tasks"] else f"was continued before {_names(recorded['tasks'])}"
            raise _Diverged(Divergence(
                step, "path", None, f"the run now takes {_names(now)}; the recording's turn {ended} "
                f"(the conversation's next turn starts at step {step})", text_diff(recorded["tasks"], now)))
        raise _EndOfTurn(step - 1)

    def _recording_ends_before(self, step: int) -> bool:
        """True when ``step`` was planned but never started (the run paused or died before it)."""
        if step != self.history.last_step or self.ended_as not in ("paused", "running"):
            return False
        return not self.history.step(step).tasks

    def closed_tasks(self, step: int) -> dict[int, bool]:
        """Tasks of ``step`` whose interrupt was closed unanswered: the replay drops them too."""
        return {idx: False for idx, row in self.history.step(step).final_tasks().items()
                if row["status"] == "closed"}

    def check_outcomes(self, step: int, plan: list[Any], outcomes: list[Any]) -> None:
        view = self.history.step(step)
        final = view.final_tasks()
        # The process died inside this step (the run's last): a task with no row was in flight.
        # The recording ends inside the step, so does the replay, once what did finish agrees.
        in_flight = self.ended_as == "running" and step == self.history.last_step
        ended_inside = False
        for idx, (spec, out) in enumerate(zip(plan, outcomes, strict=True)):
            rec = final.get(idx)
            if rec is None and in_flight:
                ended_inside = True
                continue
            rec_status = rec["status"] if rec else "not recorded"
            if "cancelled" in (rec_status, out.status):
                # A sibling failed: whether this task finished first is a matter of timing, and
                # the failure is what the step is compared on.
                continue
            # (A child run replayed for its caller's failed attempt fails where it failed then.)
            failed_then = self.fails_here and out.status == "failed" and any(
                t["task"] == idx and t["status"] == "failed" for t in view.tasks)
            if rec_status != out.status and not failed_then:
                detail = out.message or ""
                raise _Diverged(Divergence(step, "status", spec.node,
                                           f"node now {out.status}; the recording has it {rec_status}"
                                           + (f" ({detail})" if detail else "")))
            if out.status != "completed":
                continue
            update = _norm(encode_update(out.update))
            if update != _norm(rec["update"] if rec else None):
                raise _Diverged(Divergence(step, "update", spec.node, "the node's update differs",
                                           text_diff(rec["update"] if rec else None, update)))
            goto = encode_goto(out.goto or [])
            if _norm(goto) != _norm((rec or {}).get("goto") or []):
                raise _Diverged(Divergence(step, "path", spec.node, "the node's Command goes elsewhere",
                                           text_diff((rec or {}).get("goto") or [], goto)))
        if ended_inside:
            raise _EndOfRecording(step)
        self.steps_done = step

    def rerouted(self, step: int) -> bool:
        """Whether the fork whose edits follow ``step`` planned its first step again from the
        edited state (its ``forked`` event says so) rather than keeping the recorded plan."""
        owner = self.history.owner(step + 1)
        return any(e["step"] == step and ((e["kind"] == "forked" and (e["detail"] or {}).get("rerouted"))
                                          or e["kind"] == "rerouted")  # a subgraph's run forked inside
                   for e in self.history.store.events(owner))

    def after_merge(self, step: int, state: dict[str, Any]) -> list[tuple[str, str, Any]]:
        view = self.history.step(step)
        if view.state_after is not None:
            now = _norm(state)
            if now != view.state_after:
                keys = [k for k, _, _ in state_diff(view.state_after, now)]
                raise _Diverged(Divergence(step, "state", None, f"state differs in {', '.join(keys)}",
                                           text_diff(view.state_after, now)))
        return view.edits_after


def _names(tasks: list[dict[str, Any]]) -> str:
    return "[" + ", ".join(str(t.get("node")) for t in tasks) + "]" if tasks else "[nothing: the run ends]"


def replay_run(store: TraceStore, run_id: str, graph: Graph) -> ReplayReport:
    """Replay a recorded run against ``graph`` (today's code). Makes no live model or tool call.

    A conversation's turn is replayed with every turn before it, each from its recorded start.
    """
    from workbench.runtime import Runner
    from workbench.runtime.conversation import replay_turns

    history = RunHistory(store, run_id)
    run = history.run
    root_input = store.get_run(history.lineage[-1][0])["input"] or {}
    changed = graph.changed_since(run.get("node_versions"))
    session = ReplaySession(history)
    config = run["config"] or {}
    runner = Runner(graph, None, replay=session)
    report = ReplayReport(run_id, graph.name, 0, "diverged", changed_nodes=changed)
    try:
        result = replay_turns(runner, session, root_input, config.get("max_steps"))
    except _EndOfRecording as end:
        report.steps = end.step - 1
        report.status = session.ended_as
        return report
    except _Diverged as d:
        report.divergence = d.divergence
        report.steps = d.divergence.step
        return report
    except ReplayDivergence as d:
        report.divergence = _request_divergence(d)
        report.steps = report.divergence.step
        return report
    report.steps = result.step
    report.status = result.status
    report.divergence = _end_divergence(history, session.ended_as, result.status, result.step)
    if report.divergence is None and result.status == "completed" and session.ended_as in ("paused", "running"):
        report.status = session.ended_as  # the recording stops after its last step (see _end_divergence)
    return report


def _end_divergence(history: RunHistory, recorded: str, status: str, step: int) -> Divergence | None:
    """How the replayed run ended compared with how the recording ends, or None if they agree.

    Every step the replay ran matched the recording (the step checks passed), so what is left to
    compare is where and how the run stopped: a run that now ends earlier (the recording went on
    to another step), with another status, or at another step is a divergence.
    """
    last = history.last_step
    # A recording cut off by a crash (``running``) that stopped at an open question is "waiting".
    same_status = status == recorded or (recorded == "running" and status == "waiting")
    if same_status and step == last:
        return None
    if recorded in ("paused", "running") and status == "completed" and step == last \
            and not history.step(last + 1).nodes:
        # Paused (or cut off) after its last step, with nothing planned next: it would end here.
        return None
    if recorded == status == "failed" and step == last - 1 and not history.step(last).tasks:
        # Stopped before a step it had planned (its step limit), as the recording did.
        return None
    ended = f"the run now ends {status} {'after' if status == 'completed' else 'at'} step {step}"
    went_on = history.step(step + 1).nodes if step < last else []
    if went_on:
        return Divergence(step, "end", None,
                          f"{ended}; the recording went on to step {step + 1} ({', '.join(went_on)})")
    return Divergence(step, "end", None, f"{ended}; the recording {_recorded_end(recorded)} at step {last}")


def recorded_end(history: RunHistory) -> str:
    """How the recording ends: the run's status, or for a superseded run the status it had when
    its conversation was continued (its ``superseded`` event says), which is what a replay of
    it reproduces."""
    status = str(history.run["status"])
    if status == "superseded":
        for event in history.store.events(history.run_id):
            detail = event["detail"]
            if event["kind"] == "superseded" and isinstance(detail, dict) and detail.get("from_status"):
                return str(detail["from_status"])
    return status


def _recorded_end(status: str) -> str:
    return {"completed": "ends completed", "failed": "ends failed", "waiting": "waits for input",
            "paused": "is paused", "running": "stops (its process died)"}.get(status, f"is {status}")


def _request_divergence(d: ReplayDivergence) -> Divergence:
    detail = d.detail
    step = int(detail.get("step", 0))
    node = detail.get("node")
    at = detail.get("at")
    call = int(detail.get("call", 0)) + 1
    new = detail.get("request") or {}
    if d.kind == "extra_call":
        what = new.get("tool") or new.get("model") or "a call"
        message = f"call {call} ({new.get('kind', 'llm')} {what}) is not in the recording"
        return Divergence(step, "extra_call", node, message, text_diff(None, new), at)
    if d.kind == "question":
        number = int(detail.get("index", 0)) + 1
        return Divergence(step, "question", node,
                          f"question {number} now asks something else than the one the recorded answer was given to",
                          text_diff(detail.get("recorded"), detail.get("asked")), at)
    rec = detail.get("recorded") or {}
    if d.kind == "missing_call":
        what = f"tool {rec.get('model')}" if rec.get("kind") == "tool" else f"model {rec.get('model')}"
        old = {"kind": rec.get("kind"), "model_or_tool": rec.get("model"), "request": rec.get("messages")}
        return Divergence(step, "missing_call", node,
                          f"recorded call {call} ({what}) is no longer made", text_diff(old, None), at)
    if rec.get("kind") == "tool" or new.get("kind") == "tool":
        old = {"tool": rec.get("model"), "args": rec.get("messages")}
        now = {"tool": new.get("tool"), "args": new.get("args")}
        return Divergence(step, "request", node, f"tool call {call} asks something else", text_diff(old, now), at)
    old = {"model": rec.get("model"), "messages": rec.get("messages"), "params": rec.get("params")}
    now = {"model": new.get("model"), "messages": new.get("messages"), "params": new.get("params")}
    message = f"model call {call}: the request differs from the recording"
    if old["model"] and now["model"] and old["model"] != now["model"] and old["messages"] == now["messages"]:
        # Only the model changed: most often the configuration, not the code.
        message += (f" (model {now['model']} now, {old['model']} recorded: check WORKBENCH_MODEL and [llm] model "
                    "in workbench.toml where it was recorded)")
    return Divergence(step, "request", node, message,
                      text_diff(old, now), at)

"""The context a node receives: run metadata, model calls, human input and streamed output."""

from __future__ import annotations

import builtins
import contextvars
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.errors import LLMError, LLMRejectedError, WorkbenchError

if TYPE_CHECKING:
    from workbench.llm.client import LLMReply


class RecordedCallError(WorkbenchError):
    """A served model or tool call whose recording is a failure raises this when the recorded
    exception type cannot be made again; ``recorded_type`` names that type (workbench.failures)."""

    recorded_type: str | None = None


class RecordedLLMError(LLMError, RecordedCallError):
    """A replayed model call that failed when recorded (an LLMError, as it was live)."""

    recorded_type = "LLMError"


class RecordedLLMRejectedError(LLMRejectedError, RecordedLLMError):
    """A replayed model call every model refused when recorded (not retried, as it was live)."""

    recorded_type = "LLMRejectedError"


def recorded_failure(row: dict[str, Any], namespace: dict[str, Any] | None = None) -> Exception:
    """The exception a replay raises for a call recorded as failed.

    A model call raises an LLMError, as it did live (an LLMRejectedError, which a node's retry
    policy does not retry, when the recorded error says the request was refused). A tool call
    raises the recorded exception type when this process has it loaded (workbench.failures:
    nothing is imported on a trace's say), else a RecordedCallError reporting that type's name
    and the recorded message.
    """
    from workbench.failures import rebuild

    error = str(row.get("error") or "recorded call failed")
    if row.get("kind") == "llm":
        refused = error.startswith(LLMRejectedError.PREFIX)
        return RecordedLLMRejectedError(error) if refused else RecordedLLMError(error)
    name, _, message = error.partition(": ")
    params = row.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            params = None
    made = rebuild(params, message, namespace)
    if made is not None:
        return made
    kind = getattr(builtins, name, None)
    old_record = not (isinstance(params, dict) and "error_type" in params)  # recorded before types were kept
    if old_record and isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # an exception type with a constructor of its own: fall through
            pass
    # "CrmDown: " (raised without a message) names its type as well as "CrmDown: down" does.
    bare = name.isidentifier()
    served = RecordedCallError(message if bare else error)
    served.recorded_type = name if bare else None
    return served


class ReplayDivergence(BaseException):
    """Raised during a replay when the code asks for a call the recording does not have.

    A BaseException so that it passes through the node's own error handling and retries.
    """

    def __init__(self, kind: str, detail: dict[str, Any]) -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


class InterruptSignal(BaseException):
    """Raised inside a node by :func:`interrupt` to pause the run for human input.

    A BaseException so that a node's ``except Exception`` does not swallow the pause.
    """

    def __init__(self, payload: Any, index: int) -> None:
        super().__init__(payload)
        self.payload = payload
        self.index = index


@dataclass
class Event:
    """Something that happened during a run, as sent to listeners (CLI progress, the TUI)."""

    kind: str  # run_started, task_started, task_finished, step_committed, token, output, paused, ...
    run_id: str
    step: int | None = None
    node: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class GuardedListener:
    """A listener whose failure never reaches the run it watches.

    What a listener does (print progress, update a screen) is display, not the run: a listener
    that raises must not fail a node or leave the run recorded as still running. The first
    failure is kept in ``error`` and the listener is not called again (a broken display would
    fail on every event); whoever owns the display reports it once the run returns.
    ``KeyboardInterrupt`` and other non-``Exception`` errors still propagate.
    """

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.error: Exception | None = None

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            return
        try:
            self.listener(event)
        except Exception as exc:  # any display failure: the run goes on
            self.error = exc


def guarded(listener: Listener | None) -> GuardedListener | None:
    """``listener`` wrapped in a :class:`GuardedListener` (once; ``None`` stays ``None``)."""
    if listener is None or isinstance(listener, GuardedListener):
        return listener
    return GuardedListener(listener)


EDITED = "edited:"
"""The fingerprint a fork's edited model answer is recorded with until it is served: it answers
the fork's call at its place whatever the request (a ``--set`` at the same step may change the
prompt), and serving it records the request actually made (the ``llm_request`` update)."""


class EditedCallError(WorkbenchError):
    """A fork's model call before the edited one now asks something else: the parent's answer
    served there no longer applies, so the edited call cannot be reached as it was."""


@dataclass
class RecordedCall:
    """A model or tool call recorded by an earlier execution of the same task (served on resume)."""

    seq: int
    fingerprint: str
    response: Any
    row: dict[str, Any]


class Context:
    """What a node's second argument gives it.

    Attributes:
        run_id: the run's id. graph: the graph's name. step: the superstep number.
        node: this node's name. task: its index within the step. attempt: 1 for the first try.
        error: for a node reached through ``on_error``, a dict describing the failure.
        first_attempt_started: when the first attempt of this task started (a datetime).
    """

    def __init__(
        self,
        *,
        run_id: str,
        graph: str,
        step: int,
        node: str,
        task: int,
        attempt: int,
        recorder: Any,
        resume_values: list[Any],
        recorded_calls: list[RecordedCall],
        next_seq: int,
        emit: Listener | None,
        error: dict[str, Any] | None = None,
        strict: bool = False,
        first_started: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.graph = graph
        self.step = step
        self.node = node
        self.task = task
        self.attempt = attempt
        self.error = error
        self._recorder = recorder
        self._resume_values = resume_values
        # In a replay, the questions the answers above were given to (set by the runner).
        self.recorded_questions: list[Any] = []
        self._interrupts = 0
        self._recorded = recorded_calls
        self._served = 0
        self._seq = next_seq
        self._emit = emit
        # In a replay every call must come from the recording: a miss is a divergence.
        self._strict = strict
        self._first_started = first_started
        self.excluded: list[tuple[float, float]] = []
        # Set while a node runs under its timeout: (pause, resume) of its deadline, for a wait
        # that is not the node's own (litellm's first import), called from any thread.
        self.deadline_hooks: tuple[Callable[[], object], Callable[[], object]] | None = None
        """When (``perf_counter`` spans) this task waited for workbench's own one-time set-up
        (importing the model library): not counted in the task's recorded duration."""
        self.subgraphs: Any = None
        """The runtime's host for subgraphs this task runs (workbench.runtime.subgraph)."""

    @property
    def first_attempt_started(self) -> datetime:
        """When this task's first attempt at this step started (UTC), across retries, resumes
        and crashes — e.g. to give up on a deadline that spans every attempt. It is this
        attempt's start when no earlier attempt was recorded."""
        us = self._first_started if self._first_started is not None else time.time_ns() // 1000
        return datetime.fromtimestamp(us / 1_000_000, tz=UTC)

    # ----------------------------------------------------------------- human input

    def interrupt(self, payload: Any = None) -> Any:
        """Pause the run and wait for a human; returns the value the run is resumed with.

        On resume the node runs again from its top: each ``interrupt`` call already answered
        returns its answer, and model calls made before the pause are served from the recording.
        """
        index = self._interrupts
        self._interrupts += 1
        if index < len(self._resume_values):
            if self._strict and index < len(self.recorded_questions):
                self._check_question(index, payload)
            return self._resume_values[index]
        raise InterruptSignal(payload, index)

    def _check_question(self, index: int, payload: Any) -> None:
        """In a replay: the question must be the one the recorded answer was given to."""
        from workbench import codec

        try:
            asked = json.loads(codec.dumps(payload, "interrupt payload"))
        except Exception:  # not storable: it could not have been recorded either
            asked = repr(payload)
        if asked != self.recorded_questions[index]:
            raise ReplayDivergence("question", {"index": index, "recorded": self.recorded_questions[index],
                                                "asked": asked})

    # ----------------------------------------------------------------- model calls

    def llm(self, messages: Any, *, model: str | None = None, **params: Any) -> LLMReply:
        """Call a model through litellm and record the call (see ``workbench.llm``).

        ``messages`` is a chat message list or a plain prompt string. Keyword arguments:
        ``model`` (default: the configured model), ``fallbacks`` (models to try next),
        ``retries``, ``timeout``, ``stream`` and any litellm completion parameter.
        """
        from workbench.llm.client import call_llm

        return call_llm(self, messages, model=model, **params)

    async def allm(self, messages: Any, *, model: str | None = None, **params: Any) -> LLMReply:
        """The async form of :meth:`llm`."""
        from workbench.llm.client import acall_llm

        return await acall_llm(self, messages, model=model, **params)

    def take_recorded(self, fingerprint: str, namespace: dict[str, Any] | None = None,
                      kind: str = "llm") -> RecordedCall | None:
        """The next recorded call of this task if there is one (used by the LLM layer and tools).

        Calls are matched by order; a different request fingerprint means the code now asks
        something else, so the recording is abandoned from here on and calls go live. A call
        recorded as failed raises its failure again (``namespace``: the globals of the tool's
        module, where its exception types are looked up first).
        """
        if self._served < len(self._recorded):
            rec = self._recorded[self._served]
            edited = rec.fingerprint.startswith(EDITED) and kind == "llm"  # an edited answer is a model's
            if edited or (rec.fingerprint == fingerprint and rec.row.get("error") is None):
                self._served += 1
                return rec
            if rec.fingerprint == fingerprint:
                # The recorded call failed: a replay, or this attempt run again after an
                # interrupt or a crash, fails the same way (the call is not made again).
                self._served += 1
                raise recorded_failure(rec.row, namespace)
            if self._strict:
                raise ReplayDivergence("request", {"call": self._served, "recorded": rec.row})
            if any(r.fingerprint.startswith(EDITED) for r in self._recorded[self._served:]):
                raise EditedCallError(
                    f"model call {self._served + 1} of this fork asks something else than its parent did (an edit "
                    "made at this step changed it), so the parent's answer served before the edited call no longer "
                    f"applies: edit call {self._served + 1} too (--llm-response {self._served + 1}=TEXT), or fork "
                    "without the other edit")
            self._recorded = self._recorded[: self._served]
        elif self._strict:
            raise ReplayDivergence("extra_call", {"call": self._served})
        return None

    def check_all_served(self) -> None:
        """In a replay: every recorded call of the task must have been asked for again."""
        if self._strict and self._served < len(self._recorded):
            raise ReplayDivergence("missing_call", {"call": self._served, "recorded": self._recorded[self._served].row})

    @property
    def calls_made(self) -> int:
        """Model and tool calls this task made or was served so far, and graphs it ran."""
        return self._seq + self._served + (self.subgraphs.calls if self.subgraphs is not None else 0)

    def next_seq(self) -> int:
        """The call number to record the next live call under."""
        seq = self._seq
        self._seq += 1
        return seq

    def record_call(self, row: dict[str, Any]) -> None:
        if self._recorder is not None:
            self._recorder(row)

    def record_request(self, rec: RecordedCall, messages_json: str, params_json: str, fingerprint: str) -> None:
        """The request a served edited answer (``EDITED``) was given to, recorded on its row."""
        if self._recorder is not None and rec.fingerprint.startswith(EDITED):
            self._recorder({"amend": True, "seq": rec.seq, "messages": messages_json, "params": params_json,
                            "fingerprint": fingerprint})
            rec.fingerprint = fingerprint

    # ----------------------------------------------------------------- tool calls

    def tool_call(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a tool function and record it (or serve its recorded result); see ``workbench.tool``."""
        from workbench.tools import run_tool

        return run_tool(self, name, fn, args, kwargs)

    async def atool_call(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        from workbench.tools import arun_tool

        return await arun_tool(self, name, fn, args, kwargs)

    # ----------------------------------------------------------------- output

    def emit(self, kind: str, data: Any = None) -> None:
        """Stream something to whoever watches the run (the TUI, the CLI). Not recorded."""
        if self._emit is not None:
            from workbench.context import Event

            self._emit(Event(kind, self.run_id, self.step, self.node, {"data": data}))


_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar("workbench_context", default=None)


def current_context() -> Context:
    """The context of the node running in this task or thread."""
    ctx = _current.get()
    if ctx is None:
        raise WorkbenchError("interrupt()/current_context() called outside a running node")
    return ctx


def current_or_none() -> Context | None:
    """The context of the node running here, or None outside a node."""
    return _current.get()


def set_current(ctx: Context | None) -> contextvars.Token[Context | None]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[Context | None]) -> None:
    _current.reset(token)


def interrupt(payload: Any = None) -> Any:
    """Pause the running node for human input; see :meth:`Context.interrupt`."""
    return current_context().interrupt(payload)

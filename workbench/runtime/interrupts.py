"""Which open interrupts a resume settles: the oldest by default, chosen ones by id, several at
once, or closed without an answer.

An interrupt's id (``interrupts.interrupt_id``, e.g. ``3.1.1.0``: step, task, attempt and the
call's order within the node) is unique within its run and stays the same while it waits, however
often its node re-runs. A resume may

* answer the oldest open interrupt (``value``, the default, as always),
* answer a chosen one (``value`` with ``interrupt=ID``),
* answer several (``answers={ID: value, ...}``),
* close some without an answer (``close=[ID, ...]``): the task that asked is dropped from its
  step — its siblings that finished are kept, its branch ends there.

All of these are settled in the claim's transaction, so two processes cannot both answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from workbench import codec
from workbench.errors import InputError, RunStateError, SerializationError
from workbench.runtime.option_names import opt
from workbench.runtime.types import NO_VALUE, ActiveRun, Outcome, TaskSpec

if TYPE_CHECKING:
    from workbench.context import Context, InterruptSignal
    from workbench.runtime.runner import Runner


def settle(run_id: str, status: str, interrupts: list[dict[str, Any]], value: Any, *,
           interrupt: str | None = None, answers: dict[str, Any] | None = None,
           close: Iterable[str] = ()) -> list[tuple[dict[str, Any], str | None]]:
    """The open interrupts this resume answers or closes: ``[(interrupt row, reply JSON or None
    to close it)]``. Raises a one-line InputError/RunStateError for a request that cannot be met."""
    close = [close] if isinstance(close, str) else list(close)  # one id, not its characters
    if answers is not None and not isinstance(answers, Mapping):
        raise InputError(f"{opt('--answers')}: give an object of interrupt id to answer, got "
                         f"{type(answers).__name__}")
    chosen = dict(answers or {})
    open_ones = [i for i in interrupts if i["resumed_at"] is None]
    waiting = status == "waiting" and bool(open_ones)
    if not waiting:
        if value is not NO_VALUE or chosen or close or interrupt is not None:
            if status == "running":  # a live process has it: most likely it just took this very answer
                raise RunStateError(f"run {run_id} is being recorded right now by another process (it may have "
                                    f"just been answered from there); see 'workbench show {run_id}'")
            what = opt("--input") if value is not NO_VALUE else opt("--answers") if chosen else \
                opt("--close") if close else opt("--interrupt")
            raise RunStateError(f"run {run_id} is {status}, not waiting for input; resume it without {what}")
        return []
    if interrupt is not None:
        if value is NO_VALUE:
            raise InputError(f"{opt('--interrupt')} {interrupt}: give the answer with {opt('--input', 'JSON')}")
        if chosen:
            raise InputError(f"give {opt('--interrupt')} and {opt('--input')}, or {opt('--answers')}, not both")
        chosen[interrupt] = value
    elif value is not NO_VALUE:
        if chosen:
            raise InputError(f"give {opt('--input')} (answers the oldest open interrupt) or {opt('--answers')}, "
                             "not both")
        chosen[open_ones[0]["interrupt_id"]] = value
    if not chosen and not close:
        first = open_ones[0]
        raise RunStateError(
            f"run {run_id} is waiting for input at node {first['node']!r} (interrupt {first['interrupt_id']}: "
            f"{codec.dumps(first['payload'])[:120]}); resume it with {opt('--input', 'JSON')}"
        )
    both = sorted(set(chosen) & set(close))
    if both:
        raise InputError(f"interrupt {both[0]} is both answered and closed; choose one")
    out: list[tuple[dict[str, Any], str | None]] = []
    for ident, answer in chosen.items():
        row = _find(run_id, interrupts, ident)
        try:
            out.append((row, codec.dumps(answer, f"resume value (interrupt {ident})")))
        except SerializationError as exc:
            raise InputError(str(exc)) from None
    for ident in dict.fromkeys(close):
        out.append((_find(run_id, interrupts, ident), None))
    return out


def _find(run_id: str, interrupts: list[dict[str, Any]], ident: Any) -> dict[str, Any]:
    for row in interrupts:
        if row["interrupt_id"] == str(ident):
            if row["resumed_at"] is not None:
                raise RunStateError(f"interrupt {ident} of run {run_id} is already {row['status']}; "
                                    f"open: {_open_ids(interrupts)}")
            return row
    raise InputError(f"run {run_id} has no interrupt {ident!r}; open: {_open_ids(interrupts)}")


def _open_ids(interrupts: list[dict[str, Any]]) -> str:
    ids = [f"{i['interrupt_id']} ({i['node']})" for i in interrupts if i["resumed_at"] is None]
    return ", ".join(ids) or "none"


def open_interrupt(step: int, task: int, attempt: int, index: int, node: str, payload: Any) -> dict[str, Any]:
    """An open interrupt as a waiting run's result lists it."""
    return {"id": f"{step}.{task}.{attempt}.{index}", "node": node, "payload": payload}


def record_interrupt(runner: Runner, run: ActiveRun, idx: int, spec: TaskSpec, attempt: int, started: int,
                     t0: float, ctx: Context, sig: InterruptSignal) -> Outcome:
    """A task stopped at ``interrupt()`` (or its subgraph stopped): record the attempt and its
    question (once, however often a resume reaches it again) and say what the step waits for."""
    from workbench.runtime.subgraph import SubgraphStopped

    try:
        payload = codec.dumps(sig.payload, "interrupt payload")
    except SerializationError as exc:
        runner._task_finished(run, idx, spec, attempt, "failed", started, t0, ctx, error=str(exc))
        return Outcome("failed", error=exc, message=str(exc))
    runner._task_finished(run, idx, spec, attempt, "interrupted", started, t0, ctx)
    if isinstance(sig, SubgraphStopped):
        # The question (or breakpoint) is recorded by the child run that stopped.
        return Outcome("interrupted", interrupt=sig.payload, where=sig.where, paused=sig.paused,
                       asked_all=sig.asked)
    key = (run.step, idx, attempt, sig.index)
    if key not in run.known_interrupts:
        if run.rows is not None:
            run.rows.write()  # the task's row before its question, as in a one-task step
        runner.recorder.interrupt(run.run_id, run.step, idx, spec.node, attempt, sig.index, payload)
    run.known_interrupts.add(key)
    return Outcome("interrupted", interrupt=sig.payload,
                   asked=open_interrupt(run.step, idx, attempt, sig.index, spec.node, sig.payload))

"""Conversations: a run that continues with new input.

A chat agent is many turns over one conversation. Each turn is a run; the next turn is a
*continuation* of the last: a new run whose starting state is the earlier run's state after its
last committed step, merged with the new input through the schema's merge rules (an ``append``
key gets the new items appended, a plain key is replaced), and which then runs from ``START``.
It is linked to the earlier run like a fork (``parent_run_id``, ``fork_step`` = that step,
``relation = 'continuation'``), so the whole conversation is one lineage: its history is shared,
not copied, and every turn can be listed, shown, replayed, forked, diffed and exported.

Step numbers go on across turns (a turn that continues a run whose last step was 4 starts at
step 5); each turn's step limit counts from its own first step.

A run that had not completed (failed, paused, waiting for a human, or interrupted by a crash) is
*superseded* by its continuation: the pending work of its open step is discarded, its open
interrupts (those asked inside its subgraphs too) are closed unanswered, and its status — and
that of the subgraph runs the discarded step started — becomes ``superseded``
(store/continuation.py) — visibly, and exactly once across processes. A completed run stays as it is; continuing it a
second time starts a second branch of the conversation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from workbench import codec
from workbench.context import Event
from workbench.errors import InputError, InvalidUpdateError, RunStateError, SerializationError
from workbench.graph import START
from workbench.runtime.types import ActiveRun, Outcome, RunResult, TaskSpec, new_run_id, run_id_problem
from workbench.store.store import now_us

if TYPE_CHECKING:
    from workbench.runtime.runner import Runner
    from workbench.store.reader import StoreReader

# Statuses a run can be continued from (``running`` only when its process is gone).
CONTINUABLE = ("completed", "failed", "paused", "waiting", "running")


def continuation_of(store: StoreReader, run_id: str) -> str | None:
    """The run that continued ``run_id`` (the newest, when it was continued more than once)."""
    rows = store._query("SELECT run_id FROM wb_runs WHERE parent_run_id = ? AND relation = 'continuation' "
                       "ORDER BY started_at DESC, run_id DESC LIMIT 1", [run_id])
    return str(rows[0][0]) if rows else None


def superseded_error(store: StoreReader, run_id: str) -> RunStateError:
    """Why a superseded run cannot be resumed, naming the run to go on with."""
    by = continuation_of(store, run_id)
    where = f" by run {by}" if by else ""
    return RunStateError(f"run {run_id} was superseded{where} (continued with new input, its pending work "
                         f"discarded); resume or continue {by or 'the newer run'} instead")


def turn_input(runner: Runner, state: dict[str, Any], value: Any) -> tuple[dict[str, Any], list[Any]]:
    """The state after merging a turn's input into ``state`` through the merge rules, and the
    changes to store (raises InputError naming the key)."""
    if value is not None and not isinstance(value, dict):
        raise InputError(f"input must be a JSON object, got {type(value).__name__}")
    try:
        # The merge checks keys and types; an append key takes one item or a list of them.
        return runner.schema.merge(state, [("input", dict(value or {}))])
    except InvalidUpdateError as exc:
        raise InputError(str(exc).replace("node 'input'", "input")) from None


async def continue_run(
    runner: Runner,
    run_id: str,
    input: dict[str, Any] | None = None,
    *,
    new_run_id_: str | None = None,
    break_before: Iterable[str] = (),
    break_after: Iterable[str] = (),
    break_when: Any = None,
    max_steps: int | None = None,
) -> RunResult:
    """Start the next turn of the conversation that ``run_id`` belongs to (see the module
    docstring) and drive it until it completes, fails, waits or pauses."""
    if new_run_id_ is not None and (problem := run_id_problem(new_run_id_)):
        raise InputError(problem)
    store = runner._require_store()
    store.sweep()  # a run whose process died: load what its journal holds first
    parent = store.get_run(run_id)
    status = parent["status"]
    if parent.get("caller_run_id"):
        # A subgraph's run is a part of its root's turn, never a turn of its own.
        raise RunStateError(f"run {run_id} is subgraph {parent['path']!r} of run {parent['root_run_id']}; use that "
                            f"run (continue {parent['root_run_id']} with the new input)")
    if parent["graph"] != runner.graph.name:
        raise RunStateError(f"run {run_id} belongs to graph {parent['graph']!r}, not {runner.graph.name!r}")
    if status == "superseded":
        raise superseded_error(store, run_id)
    if status not in CONTINUABLE:
        raise RunStateError(f"run {run_id} is {status}; it cannot be continued")
    at = store.last_committed_step(run_id)
    if at < 0:
        store.check_run(run_id)  # deleted meanwhile (a `workbench rm` at the same moment): say that
        raise RunStateError(f"run {run_id} has no recorded state to continue from")
    state = runner.schema.decode(store.state_at(run_id, at))
    new_state, changes = turn_input(runner, state, input)
    try:
        input_json = codec.dumps(input or {}, "input")
        # Stored at the parent's last step under the new run's id: state_at applies them after
        # the shared history, as it does a fork's edits.
        input_changes = runner.recorder.changes("", at, changes)
    except SerializationError as exc:
        raise InputError(str(exc)) from None

    # A turn keeps the conversation's step limit (counted from its own first step), not its
    # breakpoints or pause.
    inherited = {k: v for k, v in (parent["config"] or {}).items()
                 if k not in ("paused", "break_before", "break_after", "first_step")}
    config = runner._with_options(inherited, break_before, break_after, max_steps)
    config["first_step"] = at + 1
    run = ActiveRun(new_run_id_ or new_run_id(), new_state, at + 1, [], {}, config)
    run.plan, run.joins = runner.planner.next([(TaskSpec(START), Outcome("completed"))], run.state, {})
    row = runner.recorder.run_row(run.run_id, runner.graph, input_json=input_json, config=config,
                                  parent=run_id, fork_step=at, relation="continuation")
    records = [
        *[(kind, {**r, "run_id": run.run_id}) for kind, r in input_changes],
        runner._plan_record(run, at + 1),
        ("event", {"run_id": run.run_id, "step": at, "kind": "continued", "node": None, "created_at": now_us(),
                   "detail": codec.dumps({"from": run_id, "from_status": status, "at": at,
                                          "keys": sorted(input or {})})}),
    ]
    superseded = None
    if status != "completed":
        pending = store.plan(run_id, at + 1)
        discarded = at + 1 if pending and pending["tasks"] else None
        superseded = {"by": run.run_id, "from_status": status, "discarded_step": discarded,
                      # Those asked inside its subgraphs too: they are closed with it.
                      "open_interrupts": sum(1 for i in store.tree_interrupts(run_id) if i["resumed_at"] is None)}
    store.begin_continuation(row, records, parent_status=status, superseded=superseded)
    runner._break_when = break_when
    runner._emit(Event("run_started", run.run_id, at, None,
                       {"graph": runner.graph.name, "continues": run_id}))
    return await runner._execute(run)


def turn_starts(store: StoreReader, lineage: list[tuple[str, int]]) -> list[int]:
    """The steps after which a conversation's next turn starts, in the history of a run with
    this ``lineage`` (``[(run_id, last step taken from it), ...]``, the run itself first)."""
    ids = [run for run, _ in lineage[:-1]]
    if not ids:
        return []
    rows = {r[0]: (r[1], r[2]) for r in store._query(
        "SELECT run_id, relation, fork_step FROM wb_runs WHERE list_contains(?, run_id)", [ids])}
    starts = set()
    for run, upto in lineage[:-1]:
        relation, at = rows.get(run, (None, None))
        # A turn counts once its input is in the history (a fork at its first step included).
        if relation == "continuation" and at is not None and upto >= at:
            starts.add(int(at))
    return sorted(starts)


def replay_turns(runner: Runner, session: Any, root_input: dict[str, Any], max_steps: int | None) -> RunResult:
    """Replay every turn of a recorded conversation in order (a run that is no continuation is
    one turn). Each turn after the first starts from its recorded starting state — the earlier
    turn's last state, which the replay of that turn has just checked, merged with its input —
    and must end where its recording ended (raises the replay's divergences)."""
    from workbench.replay import Divergence, _Diverged, _EndOfTurn
    from workbench.runtime.sync import run_sync as _run_sync

    history = session.history
    starts = turn_starts(history.store, history.lineage)
    result: RunResult | None = None
    for i, end in enumerate([*starts, None]):
        session.turn_end = end
        try:
            if i == 0:
                result = runner.run(root_input, max_steps=max_steps)
            else:
                first = starts[i - 1] + 1
                state = runner.schema.decode(history.state_after(first - 1))
                run = ActiveRun(history.run_id, state, first, [], {}, {"max_steps": max_steps, "first_step": first})
                run.plan, run.joins = runner.planner.next([(TaskSpec(START), Outcome("completed"))], run.state, {})
                result = _run_sync(runner._execute(run))
        except _EndOfTurn:
            continue
        if end is None:
            break
        pending = history.store.plan(history.owner(end), end + 1) or {"tasks": []}
        if result.status != "completed" or result.step != end or pending["tasks"]:
            verb = "after" if result.status == "completed" else "at"
            raise _Diverged(Divergence(result.step, "end", None,
                                       f"the run now ends {result.status} {verb} step {result.step}; the recording "
                                       f"went on to the conversation's next turn after step {end}"))
    assert result is not None
    return result


def conversation_turns(store: StoreReader, run_id: str) -> list[dict[str, Any]]:
    """The turns of the conversation ``run_id`` ends, oldest first: for each, the run that
    started it, its steps, input and status (a run that continues nothing is one turn)."""
    lineage = store.lineage(run_id)
    ids = [run for run, _ in lineage]
    rows = {r["run_id"]: r for r in store._query_dicts(
        "SELECT run_id, relation, fork_step, input, status FROM wb_runs WHERE list_contains(?, run_id)", [ids])}
    turns: list[dict[str, Any]] = []
    for i, (run, upto) in enumerate(reversed(lineage)):
        row = rows.get(run) or {}
        at = row.get("fork_step")
        if i == 0 or (row.get("relation") == "continuation" and at is not None and upto >= at):
            first = 1 if i == 0 or at is None else int(at) + 1
            raw = row.get("input")
            turns.append({"turn": len(turns) + 1, "run_id": run, "first_step": first,
                          "input": codec.loads(raw) if isinstance(raw, str) else raw, "status": row.get("status")})
    last = store.last_step(run_id)
    for this, nxt in zip(turns, [*turns[1:], None], strict=True):
        this["last_step"] = nxt["first_step"] - 1 if nxt else last
    final = turns[-1]
    if final["run_id"] != run_id:
        # run_id is a fork made inside (or at the first step of) the last turn: the turn's input
        # is its starter's, but its steps from the fork on, and how it ended, are this run's.
        own = rows.get(run_id) or store.get_run(run_id) or {}
        first_own = int(lineage[1][1]) + 1 if len(lineage) > 1 else final["first_step"]
        final["status"] = own.get("status")
        final["redone_by"] = {"run_id": run_id, "from_step": max(first_own, final["first_step"])}
    return turns

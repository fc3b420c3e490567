"""Forking at a step inside a subgraph: ``--at 3/review/2``.

The address names step 3 of the run, the task of subgraph node ``review`` in it, and step 2 of
that subgraph's child run (``3/review#1/2`` picks task 1 when several tasks of the step run
``review``; ``3/review/2/inner/1`` goes one level deeper). The fork is a new run that shares the
run's steps before 3 (like ``--at 3``) whose task ``review`` has a child run that is itself a
fork of the recorded child at its step 2, carrying the edits (state keys of the subgraph's
schema, model answers of that inner step). Both are written in one frame, then the new run
runs from step 3: its ``review`` task finds its child already recorded and continues it from
inner step 2, the way a resume does — nothing is copied, the lineage of each run shares history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from workbench import codec
from workbench.context import Event
from workbench.errors import InputError, InvalidUpdateError, RunStateError, SerializationError, WorkbenchError
from workbench.graph import Graph
from workbench.recording import Record
from workbench.runtime.addresses import Hop, parse_address, task_of
from workbench.runtime.continuing import seed_llm_edits
from workbench.runtime.fork_close import closing_records
from workbench.runtime.option_names import opt
from workbench.runtime.subgraph import SEP, child_run_id, graphs_under
from workbench.runtime.types import ActiveRun, RunResult, TaskResume, TaskSpec, check_planned_nodes, new_run_id

if TYPE_CHECKING:
    from workbench.runtime.runner import Runner

async def fork_inside(runner: Runner, parent_run_id: str, at: int, hops: list[Hop], *,
                      set_state: dict[str, Any] | None, llm_responses: dict[int, str] | None,
                      config: dict[str, Any], break_when: Any, label: str, close: list[str]) -> RunResult:
    """Fork ``parent_run_id`` at step ``at`` with a child fork at ``hops``; run it (see module doc)."""
    store = runner.store
    assert store is not None
    store.get_run(parent_run_id)  # a RunNotFoundError for an unknown run
    plan = store.plan(parent_run_id, at)
    if plan is None:
        store.check_run(parent_run_id)  # deleted meanwhile: say that
        raise InputError(f"run {parent_run_id} has no recorded plan for step {at}")
    check_planned_nodes(runner.graph, plan["tasks"], f"a fork of run {parent_run_id} at step {at} runs step {at}")
    fork_id = new_run_id()
    records: list[Record] = []
    graph: Graph = runner.graph
    caller_old, caller_new, caller_plan, caller_step = parent_run_id, fork_id, plan["tasks"], at
    root_task = None
    path = ""
    child_new = ""
    inner_rerouted: dict[str, Any] | None = None
    for depth, hop in enumerate(hops):
        where = f"step {caller_step} of run {caller_old}"
        idx = task_of(caller_plan, hop, where)
        if root_task is None:
            root_task = idx
        node = graph.nodes.get(hop.node)
        if node is None:
            raise InputError(f"{opt('--at')}: graph {graph.name!r} has no node {hop.node!r}")
        owner = store.step_owner(caller_old, caller_step)
        child_old = child_run_id(owner, caller_step, idx, hop.call)
        child_new = child_run_id(caller_new, caller_step, idx, hop.call)
        path = f"{path}{SEP}{hop.node}" if path else hop.node
        try:
            old = store.get_run(child_old)
        except Exception:
            which = f"subgraph call {hop.call} of" if hop.call else "subgraph run for"
            raise InputError(f"{opt('--at')}: {where} recorded no {which} {hop.node!r}") from None
        graph = _child_graph(graph, node, old["graph"])
        last = store.last_step(child_old)
        if not 1 <= hop.step <= last:
            raise InputError(f"{opt('--at')}: subgraph {path!r} ran steps 1..{last} in run {parent_run_id}; "
                             f"step {hop.step} is out of range")
        inner_plan = store.plan(child_old, hop.step)
        if inner_plan is None:
            raise InputError(f"{opt('--at')}: subgraph {path!r} has no recorded plan for its step {hop.step}")
        check_planned_nodes(graph, inner_plan["tasks"], f"a fork of subgraph {path!r} at its step {hop.step} "
                            f"runs that step")
        inner_tasks, inner_joins, rerouted = inner_plan["tasks"], inner_plan["joins"] or {}, None
        innermost = depth == len(hops) - 1
        # The edits, checked before any routing reads them (the innermost child holds them).
        edit_records = _edits(runner, graph, child_new, hop.step - 1, set_state or {}) if innermost else []
        if innermost and set_state:
            # As at a root step: the inner step is routed again from the edited state.
            from workbench.runtime.planner import Planner

            edited = graph.schema.decode(store.state_at(child_old, hop.step - 1))
            edited.update(graph.schema.decode(set_state))
            inner_tasks, inner_joins, rerouted = _route_again(Planner(graph, graph.schema), store, child_old,
                                                              hop.step, edited, inner_plan,
                                                              bool(llm_responses or close))
        inner_config = {k: v for k, v in (old["config"] or {}).items()
                        if k not in ("paused", "break_before", "break_after")}
        # A fork's input is what it was given: its edits (the innermost child holds them).
        given = (set_state or {}) if innermost else {}
        row = runner.recorder.run_row(child_new, graph, input_json=codec.dumps(given),
                                      config=inner_config, parent=child_old, fork_step=hop.step - 1)
        row.update(root_run_id=fork_id, caller_run_id=caller_new, caller_step=caller_step, caller_task=idx,
                   path=path)
        records.append(("run", row))
        records.append(runner.recorder.plan(child_new, hop.step, inner_tasks, inner_joins))
        if rerouted:  # what the child's replay reads (ReplaySession.rerouted)
            records.append(runner.recorder.event_record(child_new, hop.step - 1, "rerouted", None, rerouted))
            inner_rerouted = {**rerouted, "where": label}
        if innermost:
            records += edit_records
            scratch = ActiveRun(child_new, {}, hop.step, [TaskSpec.from_json(t) for t in inner_tasks], {}, {})
            records += seed_llm_edits(scratch, store, child_old, hop.step, llm_responses or {})
            closing, dropped = closing_records(store, child_old, hop.step, child_new, inner_tasks, close,
                                               f"step {hop.step} of subgraph {path!r}")
            if dropped & set(scratch.resume):
                raise InputError(f"{opt('--close')}: a closed task has no model call to edit; "
                                 f"drop the {opt('--llm-response')}")
            records += closing
        caller_old, caller_new, caller_plan, caller_step = child_old, child_new, inner_tasks, hop.step

    state = runner.schema.decode(store.state_at(parent_run_id, at - 1))
    run = ActiveRun(fork_id, state, at, [TaskSpec.from_json(t) for t in plan["tasks"]], plan["joins"] or {},
                    config)
    assert root_task is not None
    # The task whose child is forked continues it (as a resumed task does).
    run.resume[root_task] = TaskResume(1, [], [], 0)
    runner.set_break_when(break_when)
    row = runner.recorder.run_row(fork_id, runner.graph, input_json="{}",
                                  config=config, parent=parent_run_id, fork_step=at - 1)
    detail = {"parent": parent_run_id, "at": label, "set": sorted(set_state or {}),
              "llm_responses": sorted(llm_responses or {}), "subgraph_run": child_new,
              **({"closed": list(dict.fromkeys(close))} if close else {}),
              **({"rerouted": inner_rerouted} if inner_rerouted else {})}
    runner.recorder.fork_started(row, [], runner._plan_record(run, at), records, detail)
    from workbench.context import Event

    started = {"graph": runner.graph.name, "parent": parent_run_id,
               **({"rerouted": inner_rerouted} if inner_rerouted else {})}
    runner._emit(Event("run_started", fork_id, at - 1, None, started))
    return await runner._execute(run)


def _child_graph(graph: Graph, node: Any, recorded: str) -> Graph:
    """The graph of a recorded child run of ``node``: a subgraph node's graph, or the one of the
    graphs a function node declares (``subgraphs=[...]``) that the child ran. Without it the
    fork could not check its edits or record the child truthfully, so it is refused."""
    for sub in graphs_under(node):
        if sub.name == recorded:
            return sub.validate()
    if node.subgraph is not None:
        raise InputError(f"{opt('--at')}: node {node.name!r} now runs graph {node.subgraph.name!r}; the recorded "
                         f"subgraph run is of graph {recorded!r}")
    raise InputError(f"{opt('--at')}: node {node.name!r} of graph {graph.name!r} ran subgraph {recorded!r} from its "
                     f"body; to fork inside it, declare that graph: add_node({node.name!r}, fn, subgraphs=[...])")


def _edits(runner: Runner, graph: Graph, run_id: str, step: int, edits: dict[str, Any]) -> list[Record]:
    schema = graph.schema
    try:
        schema.check_keys(edits, opt("--set"))
        for key, value in edits.items():
            schema.check_type(key, value, opt("--set"))
            if schema.rule(key).kind == "append" and not isinstance(value, list):
                raise InvalidUpdateError(f"{opt('--set')}: state key {key!r} holds a list, got {type(value).__name__}")
        return runner.recorder.changes(run_id, step, [(k, "set", v) for k, v in edits.items()])
    except (InvalidUpdateError, SerializationError) as exc:
        raise InputError(str(exc)) from None


def refuse_child(rec: dict[str, Any]) -> None:
    """A subgraph's run is forked through the run it belongs to."""
    if rec.get("caller_run_id"):
        raise RunStateError(f"run {rec['run_id']} is subgraph {rec['path']!r} of run {rec['root_run_id']}; fork that "
                            f"run at STEP/{rec['path'].split(SEP)[-1]}/INNER_STEP (see 'workbench show')")


# A fork shares its ancestors' history through a chain of parents; the store's lineage view
# follows at most this many links.
MAX_FORK_DEPTH = 1000


def _check_answers(llm_responses: dict[int, str] | None) -> None:
    """Model answers are numbered by int (1-based, as ``show --step`` lists the calls) and are text."""
    if llm_responses is not None and not isinstance(llm_responses, Mapping):
        raise InputError(f"{opt('--llm-response')}: give an object of call number to answer text, got "
                         f"{type(llm_responses).__name__}")
    for number, text in (llm_responses or {}).items():
        if isinstance(number, bool) or not isinstance(number, int):
            raise InputError(f"{opt('--llm-response')}: number the model calls 1, 2, ... as whole numbers "
                             f"(as 'workbench show RUN --step N' lists them), got {number!r}")
        if not isinstance(text, str):
            raise InputError(f"{opt('--llm-response')} {number}: the answer is the model's text, "
                             f"got {type(text).__name__}")


async def fork_run(
    runner: Runner,
    parent_run_id: str,
    at_step: int | str,
    *,
    set_state: dict[str, Any] | None = None,
    llm_responses: dict[int, str] | None = None,
    break_before: Iterable[str] | None = None,
    break_after: Iterable[str] | None = None,
    break_when: Any = None,
    max_steps: int | None = None,
    close: Iterable[str] = (),
) -> RunResult:
    """:meth:`Runner.afork`: a new run sharing ``parent_run_id``'s history before ``at_step``,
    with the edits applied, run live from ``at_step`` (or from a step inside a subgraph)."""
    store = runner._require_store()
    _check_answers(llm_responses)
    if isinstance(at_step, bool) or not isinstance(at_step, (int, str)):
        raise InputError(f"{opt('--at')}: give a step number or an address like '3/review/2', got {at_step!r}")
    if set_state is not None and not isinstance(set_state, Mapping):
        raise InputError(f"{opt('--set')}: give an object of state key to value, got {type(set_state).__name__}")
    parent = store.get_run(parent_run_id)
    refuse_child(parent)
    label = str(at_step)
    close = [str(c) for c in ([close] if isinstance(close, str) else close)]
    # "3/review/2": step 2 inside the child run of subgraph node review at step 3
    at_step, hops = (at_step, []) if isinstance(at_step, int) else parse_address(at_step)
    if parent["graph"] != runner.graph.name:
        raise RunStateError(
            f"run {parent_run_id} belongs to graph {parent['graph']!r}, not {runner.graph.name!r}"
        )
    last = store.last_step(parent_run_id)
    if at_step < 1 or at_step > last:
        raise InputError(f"run {parent_run_id} has steps 1..{last}; {opt('--at')} {at_step} is out of range")
    if len(store.lineage(parent_run_id)) >= MAX_FORK_DEPTH:
        raise InputError(f"run {parent_run_id} is already {MAX_FORK_DEPTH - 1} forks deep; fork one of its "
                         "ancestors instead (fork chains are limited to "
                         f"{MAX_FORK_DEPTH} runs)")
    if hops:
        inherited = {k: v for k, v in (parent["config"] or {}).items()
                     if k not in ("paused", "break_before", "break_after")}
        return await fork_inside(runner, parent_run_id, at_step, hops, set_state=set_state,
                                 llm_responses=llm_responses, break_when=break_when, label=label, close=close,
                                 config=runner._with_options(inherited, break_before, break_after, max_steps))
    plan = store.plan(parent_run_id, at_step)
    if plan is None:
        store.check_run(parent_run_id)  # deleted meanwhile (a `workbench rm` at the same moment): say that
        raise InputError(f"run {parent_run_id} has no recorded plan for step {at_step}")
    check_planned_nodes(runner.graph, plan["tasks"], f"a fork of run {parent_run_id} at step {at_step} runs that step")
    state = runner.schema.decode(store.state_at(parent_run_id, at_step - 1))
    edits = dict(set_state or {})
    try:
        runner.schema.check_keys(edits, opt("--set"))
        for key, value in edits.items():
            runner.schema.check_type(key, value, opt("--set"))
            if runner.schema.rule(key).kind == "append" and not isinstance(value, list):
                # An edit sets the whole value: an append key holds a list.
                raise InvalidUpdateError(f"{opt('--set')}: state key {key!r} holds a list, got {type(value).__name__}")
        edit_changes = runner.recorder.changes("", at_step - 1, [(k, "set", v) for k, v in edits.items()])
        # What the fork was given, not its parent's input: it starts from the parent's state
        # before the fork step with these edits applied (state_at(fork, fork_step)).
        input_json = codec.dumps(edits, opt("--set"))
    except (InvalidUpdateError, SerializationError) as exc:
        raise InputError(str(exc)) from None
    state.update(runner.schema.decode(edits))
    tasks, joins, rerouted = plan["tasks"], plan["joins"] or {}, None
    if edits:
        tasks, joins, rerouted = _route_again(runner.planner, store, parent_run_id, at_step, state, plan,
                                              bool(llm_responses or close))

    # A fork is a fresh live run: it keeps the parent's step limit, not its breakpoints.
    inherited = {k: v for k, v in (parent["config"] or {}).items()
                 if k not in ("paused", "break_before", "break_after")}
    config = runner._with_options(inherited, break_before, break_after, max_steps)
    run = ActiveRun(new_run_id(), state, at_step, [TaskSpec.from_json(t) for t in tasks], joins, config)
    runner.set_break_when(break_when)
    seeded = seed_llm_edits(run, store, parent_run_id, at_step, llm_responses or {})
    closing, dropped = closing_records(store, parent_run_id, at_step, run.run_id, tasks, close,
                                       f"step {at_step} of run {parent_run_id}")
    if dropped & set(run.resume):
        raise InputError(f"{opt('--close')}: a closed task has no model call to edit; drop the {opt('--llm-response')}")
    # Recorded in the fork's first frame (below): the task is dropped, not run, not asked again.
    run.closed.update({idx: False for idx in dropped})
    row = runner.recorder.run_row(run.run_id, runner.graph, input_json=input_json, config=config,
                                parent=parent_run_id, fork_step=at_step - 1)
    runner.recorder.fork_started(row, edit_changes, runner._plan_record(run, at_step), [*seeded, *closing], {
        "parent": parent_run_id, "at": at_step, "set": sorted(edits),
        "llm_responses": sorted(llm_responses or {}), **({"closed": list(dict.fromkeys(close))} if close else {}),
        **({"rerouted": rerouted} if rerouted else {}),
    })
    runner._emit(Event("run_started", run.run_id, at_step - 1, None,
                     {"graph": runner.graph.name, "parent": parent_run_id,
                      **({"rerouted": rerouted} if rerouted else {})}))
    return await runner._execute(run)


def _route_again(planner: Any, store: Any, parent_run_id: str, at_step: int, state: dict[str, Any],
                 plan: dict[str, Any], answers_edited: bool
                 ) -> tuple[list[dict[str, Any]], dict[str, list[Any]], dict[str, Any] | None]:
    """Step ``at_step`` planned from the edited state (runtime/fork_plan.py): its tasks, joins,
    and what changed (``{"from": nodes, "to": nodes}``) when the routing now differs."""
    from workbench.runtime.fork_plan import replanned

    try:
        again = replanned(planner, store, parent_run_id, at_step, state)
    except WorkbenchError as exc:
        raise InputError(f"{opt('--set')}: step {at_step} cannot be planned from the edited state: {exc}") from None
    except Exception as exc:  # the graph's own router failed on the edited value
        raise InputError(f"{opt('--set')}: step {at_step} cannot be planned from the edited state: a router raised "
                         f"{type(exc).__name__}: {exc}") from None
    recorded = [TaskSpec.from_json(t).to_json() for t in plan["tasks"]]
    if again is None or again[0] == recorded:
        return plan["tasks"], plan["joins"] or {}, None
    was, now = [t["node"] for t in recorded], [t["node"] for t in again[0]]
    if answers_edited:
        raise InputError(f"{opt('--set')}: from the edited state step {at_step} runs {', '.join(now) or 'nothing'}, "
                         f"not the recorded {', '.join(was)}; {opt('--llm-response')} and {opt('--close')} name the "
                         f"recorded tasks: edit the state alone here, or the answers at step {at_step} without "
                         f"{opt('--set')}")
    if not again[0]:
        raise InputError(f"{opt('--set')}: from the edited state the run ends before step {at_step} (no node is "
                         f"routed to); fork at an earlier step, or set other values")
    return again[0], again[1], {"from": was, "to": now}

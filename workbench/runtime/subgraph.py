"""Subgraphs: a graph run by a task — as a subgraph node, or from a node's body — is a child run.

Each invocation is recorded as a run of its own (a *child run*, like a checkpoint namespace in
LangGraph), so everything the runtime does for a run works for it unchanged: its steps, state
changes, plans, model/tool calls and interrupts are recorded under the child's id, with its
inner node names; ``state_at`` works on it; a resume continues it from its last committed step.

Where a child hangs is in its id and its run row: ``CALLER/STEP.TASK.N`` is the ``N``-th
subgraph call (from 0) of task ``TASK`` of step ``STEP`` of run ``CALLER``, nested to any depth
(``ROOT/3.0.0/2.1.0``). The id is derived, not drawn, so a caller's task that runs again after a
pause, a crash or a failure finds the child it started and *continues* it instead of starting
over: completed inner steps never run again, and a child that completed hands back its recorded
result. The run row carries ``root_run_id``, ``caller_run_id``/``caller_step``/``caller_task``
and ``path`` (the calling node's path from the root graph, e.g. ``review``); the documented
views list child runs in ``subgraph_runs`` rather than ``runs``.

A child that waits for a human or pauses at a breakpoint stops its caller's task
(:class:`SubgraphStopped`), which stops the caller's run the same way, up to the root. The
root's ``resume`` answers the oldest open interrupt anywhere in its tree
(:func:`open_interrupts`); the re-run caller task then continues the child, which finds its
answer where it asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.context import Context, Event, InterruptSignal, Listener, ReplayDivergence, current_or_none
from workbench.errors import InputError, RunNotFoundError, WorkbenchError
from workbench.graph import Graph, Node
from workbench.runtime.continuing import load_step_progress
from workbench.runtime.types import ActiveRun, RunResult, TaskSpec
from workbench.state import Overwrite

if TYPE_CHECKING:
    from workbench.runtime.runner import Runner
    from workbench.store.reader import StoreReader

SEP = "/"


def child_run_id(caller_run_id: str, step: int, task: int, call: int) -> str:
    """The id of the ``call``-th subgraph call of a task (deterministic: a re-run task finds it)."""
    return f"{caller_run_id}{SEP}{step}.{task}.{call}"


def address_of(run_id: str, root_run_id: str) -> list[tuple[int, ...]]:
    """``[(step, task, call), ...]`` from the root down to a child run, read from its id."""
    if run_id == root_run_id or not run_id.startswith(root_run_id + SEP):
        return []
    out: list[tuple[int, ...]] = []
    for part in run_id[len(root_run_id) + 1:].split(SEP):
        try:
            out.append(tuple(int(x) for x in part.split(".")))
        except ValueError:
            return out
    return out


@dataclass
class ChildLink:
    """Where a child run hangs in the run that called it, and what it inherits from it."""

    root_run_id: str
    caller_run_id: str
    caller_step: int
    caller_task: int
    path: str  # the calling node's path from the root graph: "review", "review/inner"
    break_before: list[str]
    break_after: list[str]
    break_when: Any = None
    host: Any = None  # the SubgraphHost of the calling task (told of time not to count)

    def columns(self) -> dict[str, Any]:
        """The child's run-row columns that say where it hangs."""
        return {"root_run_id": self.root_run_id, "caller_run_id": self.caller_run_id,
                "caller_step": self.caller_step, "caller_task": self.caller_task, "path": self.path}


class SubgraphStopped(InterruptSignal):
    """A child run stopped (waiting for a human, or paused at a breakpoint): so does its caller.

    An :class:`InterruptSignal`, so it passes through a node body's ``except Exception`` and the
    caller's task ends ``interrupted``; the caller's run then waits or pauses in turn.
    """

    def __init__(self, result: RunResult, where: str, node: str, call: str) -> None:
        super().__init__(result.interrupt, -1)
        self.result = result
        self.where = where  # the inner node's path, relative to the caller's graph
        self.paused = None if result.paused is None else {**result.paused, "node": where}
        # The child's open questions in the caller's terms: ids prefixed with where the child
        # hangs (STEP.TASK.N/), nodes with the calling node (review/approve).
        self.asked = [{**a, "id": f"{call}{SEP}{a['id']}", "node": f"{node}{SEP}{a['node']}"}
                      for a in result.interrupts]


# ----------------------------------------------------------------------------- breakpoints


def split_paths(names: Iterable[str], node: str) -> list[str]:
    """The breakpoints inside subgraph node ``node``, in the child's own terms."""
    prefix = node + SEP
    return [n[len(prefix):] for n in names if n.startswith(prefix)]


def graphs_under(node: Node) -> tuple[Graph, ...]:
    """The graphs a node runs as child runs: a subgraph node's graph, or the graphs a function
    node declares its body runs (``add_node(name, fn, subgraphs=[...])``)."""
    return (node.subgraph,) if node.subgraph is not None else node.body_subgraphs


def names_node(graph: Graph, name: str) -> bool:
    """True when ``name`` (``a/b/c``) names a node of ``graph`` or of a graph under it."""
    head, _, rest = name.partition(SEP)
    node = graph.nodes.get(head)
    if node is None:
        return False
    return not rest or any(names_node(g, rest) for g in graphs_under(node))


def check_path(graph: Graph, name: str, what: str) -> None:
    """Refuse a breakpoint name that is not a node of ``graph`` (``a/b`` for node ``b`` of the
    graph node ``a`` runs: a subgraph node's, or one its body runs and declares), with a
    one-line reason."""
    parts = name.split(SEP)
    current = [graph]
    for i, part in enumerate(parts):
        here = [g for g in current if part in g.nodes]
        if not here:
            if i == 0:
                where = f"graph {graph.name!r}"
            else:
                where = f"subgraph {SEP.join(parts[:i])!r} (graph {', '.join(repr(g.name) for g in current)})"
            known = ", ".join(dict.fromkeys(n for g in current for n in g.nodes))
            raise InputError(f"{what}: {where} has no node {part!r} (nodes: {known})")
        if i == len(parts) - 1:
            return
        below = [sub.validate() for g in here for sub in graphs_under(g.nodes[part])]
        if not below:
            at = SEP.join(parts[:i + 1])
            raise InputError(f"{what}: node {at!r} runs no subgraph that workbench knows of, so {name!r} names "
                             f"nothing; if its body runs one (await Runner(sub).arun(...)), declare it: "
                             f"add_node({part!r}, fn, subgraphs=[sub])")
        current = below


def split_break_when(break_when: Any) -> tuple[Any, dict[str, Any]]:
    """``break_when`` is a predicate over the root's state, or a mapping of graph paths to
    predicates (``""`` the root, ``"review"`` the subgraph node review's state after each of its
    steps). Returns the root's predicate and the rest."""
    if isinstance(break_when, dict):
        rest = {str(k): v for k, v in break_when.items() if k}
        return break_when.get(""), rest
    return break_when, {}


def inner_break_when(inner: dict[str, Any], node: str) -> Any:
    prefix = node + SEP
    below = {k[len(prefix):]: v for k, v in inner.items() if k.startswith(prefix)}
    if node in inner:
        below[""] = inner[node]
    return below or None


# ----------------------------------------------------------------------------- the host


def runs_alone(runner: Runner) -> bool:
    """Whether nothing else runs on the event loop while a one-task step of ``runner``'s run
    does: a root run, or a child run whose calling task was alone in its step, all the way up.
    A sync node may then run on the loop itself; otherwise (a subgraph beside siblings) it would
    hold them up, and their timeouts would blame them for its time."""
    host = runner._child.host if runner._child is not None else None
    return host is None or bool(host.alone)


class SubgraphHost:
    """Runs the subgraph calls of one task attempt (a node's context carries it)."""

    def __init__(self, parent: Runner, run: ActiveRun, idx: int, spec: TaskSpec, continuing: bool,
                 attempt: int = 1) -> None:
        self.parent = parent
        self.run = run
        self.idx = idx
        self.spec = spec
        self.attempt = attempt
        # The task ran before (a resume, a retry, a fork at an inner step): its children may exist.
        self.continuing = continuing
        self.calls = 0
        # Whether the calling task runs alone on the event loop (Runner.alone_in_process).
        self.alone = True
        # When this task's subgraphs' tasks waited for set-up (the model library's import): not
        # the calling task's time either. Spans, not seconds: parallel inner tasks wait at once.
        self.excluded: list[tuple[float, float]] = []

    # ------------------------------------------------------------------ entry points

    async def call_node(self, node: Node, value: Any) -> dict[str, Any] | None:
        """Run ``node``'s subgraph on the caller's state ``value``; return the caller's update."""
        sub = node.subgraph
        assert sub is not None
        if isinstance(value, dict):
            keys = sub.schema.channels
            sub_input = dict(value) if sub.schema.is_open() else {k: v for k, v in value.items() if k in keys}
        else:
            sub_input = {}
        result, inner = await self.call(sub, sub_input)
        return _update_for(self.parent, inner, sub_input, result)

    async def call(self, graph: Graph, input: dict[str, Any] | None, *,
                   max_steps: int | None = None) -> tuple[RunResult, Runner]:
        """Run ``graph`` as the next child of this task; returns only when it completed.

        A child that fails raises its exception in the caller's task; one that waits or pauses
        raises :class:`SubgraphStopped`.
        """
        from workbench.runtime.runner import Runner

        graph.validate()
        n = self.calls
        self.calls += 1
        parent, run, spec = self.parent, self.run, self.spec
        link = self._link(run.run_id, spec.node)
        # A node body may run several graphs: each child gets the breakpoints that name its nodes.
        link.break_before = [b for b in link.break_before if names_node(graph, b)]
        link.break_after = [b for b in link.break_after if names_node(graph, b)]
        listener = _forwarding(parent.listener, parent, run, spec.node)
        if parent._replay is not None:
            return await self._replay_child(graph, input, n, link, listener)
        inner = Runner(graph, parent.store, max_concurrency=parent.max_concurrency, listener=listener,
                       _child=link)
        child_id = child_run_id(run.run_id, run.step, self.idx, n)
        existing = self._existing(child_id) if parent.recorder.enabled else None
        if existing is not None:
            if existing["graph"] != graph.name:
                raise WorkbenchError(f"subgraph call {n + 1} of node {spec.node!r} ran graph {existing['graph']!r} "
                                     f"before (run {child_id}), and now graph {graph.name!r}")
            result = await continue_child(inner, existing, link)
        else:
            result = await inner.arun(input, run_id=child_id if parent.recorder.enabled else None,
                                      break_before=link.break_before, break_after=link.break_after,
                                      break_when=link.break_when, max_steps=max_steps)
        return self._settle(inner, result, n), inner

    # ------------------------------------------------------------------ helpers

    def _link(self, run_id: str, node: str) -> ChildLink:
        parent = self.parent
        own = parent._child
        config = self.run.config
        return ChildLink(
            root_run_id=own.root_run_id if own else run_id, caller_run_id=run_id, caller_step=self.run.step,
            caller_task=self.idx, path=f"{own.path}{SEP}{node}" if own else node,
            break_before=split_paths(config.get("break_before") or [], node),
            break_after=split_paths(config.get("break_after") or [], node),
            break_when=inner_break_when(parent._inner_break_when, node), host=self,
        )

    def _existing(self, child_id: str) -> dict[str, Any] | None:
        store = self.parent.store
        if not self.continuing or store is None:
            return None
        try:
            return store.get_run(child_id)
        except RunNotFoundError:
            return None

    def _settle(self, inner: Runner, result: RunResult, n: int) -> RunResult:
        if result.status == "completed":
            return result
        if result.status == "failed":
            exc = inner.last_error
            if isinstance(exc, Exception):
                raise exc
            raise WorkbenchError(f"subgraph {inner.graph.name!r} failed: {result.error}")
        # waiting or paused: the caller's task stops here, and its run with it
        where = self.spec.node
        inner_node = (result.paused or {}).get("node") if result.status == "paused" else inner.stopped_at
        if inner_node:
            where = f"{where}{SEP}{inner_node}"
        raise SubgraphStopped(result, where, self.spec.node, f"{self.run.step}.{self.idx}.{n}")

    async def _replay_child(self, graph: Graph, input: dict[str, Any] | None, n: int, link: ChildLink,
                            listener: Listener | None) -> tuple[RunResult, Runner]:
        from workbench.runtime.runner import Runner

        outer = self.parent._replay
        # A child run that failed with its caller's attempt and was continued by the resume that
        # gave the caller another: replayed for the first attempt it fails there, as recorded;
        # for the later one it goes on past that failure, as the resumed child did.
        continued = self.attempt > outer.first_attempt(self.run.step, self.idx)
        stopped = outer.attempt_status(self.run.step, self.idx, self.attempt) == "failed"
        session = outer.child_session(self.run.step, self.idx, n, self.spec.node, graph.name, continued=continued,
                                      fails_here=stopped)
        inner = Runner(graph, None, max_concurrency=self.parent.max_concurrency, listener=listener,
                       replay=session, _child=link)
        try:
            result = await inner.arun(input, max_steps=session.max_steps)
            session.check_end(result.status, result.step, failed_there=stopped and result.status == "failed")
        except ReplayDivergence as div:
            self.parent._replay.lift(div, self.run.step, self.spec.node)
            raise
        return self._settle(inner, result, n), inner


def host_of(ctx: Context | None) -> SubgraphHost | None:
    """The subgraph host of the node running here, if any (how ``Runner(sub).arun()`` inside a
    node body finds its caller)."""
    host = getattr(ctx, "subgraphs", None) if ctx is not None else None
    return host if isinstance(host, SubgraphHost) else None


def calling_host() -> SubgraphHost | None:
    return host_of(current_or_none())


async def continue_child(inner: Runner, rec: dict[str, Any], link: ChildLink) -> RunResult:
    """Continue a recorded child run from where it stopped (its caller's run holds the claim)."""
    store = inner.store
    assert store is not None
    run_id = rec["run_id"]
    status = rec["status"]
    touched, extended = _changed_keys(store, run_id)
    if rec.get("parent_run_id") is not None and rec.get("fork_step") == 0:
        # A fork at its first inner step: its edits (at step 0) are changes the caller must get.
        for (key,) in store._query("SELECT key FROM wb_changes WHERE run_id = ? AND step = 0", [run_id]):
            touched.add(key)
            extended.pop(key, None)
    if status == "completed":
        inner.last_touched, inner.last_extended = touched, extended
        return RunResult(run_id, "completed", inner.schema.decode(rec["output"] or {}), int(rec["last_step"] or 0))
    config = dict(rec["config"] or {})
    paused = config.pop("paused", None) or {}
    config.update(break_before=link.break_before, break_after=link.break_after)
    why = {"error": rec["error"]} if rec.get("error") else {}  # the row's error goes with the claim
    inner.recorder.run_continued(run_id, config)
    committed = store.last_committed_step(run_id)
    step = committed + 1
    plan = store.plan(run_id, step)
    if plan is None:
        raise WorkbenchError(f"subgraph run {run_id} has no recorded plan for step {step}; the trace is incomplete")
    state = inner.schema.decode(store.state_at(run_id, committed))
    run = ActiveRun(run_id, state, step, [TaskSpec.from_json(t) for t in plan["tasks"]], plan["joins"] or {},
                    config)
    run.touched, run.extended = touched, extended
    run.skip_before = status == "waiting" or (status == "paused" and paused.get("when") == "before"
                                              and paused.get("step") == step)
    load_step_progress(run, store, store.interrupts(run_id), resumed_from=status)
    inner.recorder.event(run_id, step, "resumed", None, {"from": status, **why})
    inner.set_break_when(link.break_when)
    return await inner._execute(run)


def _changed_keys(store: StoreReader, run_id: str) -> tuple[set[str], dict[str, list[Any]]]:
    """Which keys a recorded child changed after its input, and the items it appended."""
    touched: set[str] = set()
    extended: dict[str, list[Any]] = {}
    for step, key, op, value in store.changes(run_id):
        if step < 1:
            continue
        touched.add(key)
        if op == "extend":
            extended.setdefault(key, []).extend(value)
        else:
            extended.pop(key, None)
    return touched, extended


def _update_for(parent: Runner, inner: Runner, sub_input: dict[str, Any], result: RunResult) -> dict[str, Any] | None:
    """What the child changed, as an update in the caller's terms: items appended to an append
    key, the amount added to an add key, the changed entries of a merge key, else the value.

    A key the child overwrote (``Overwrite``: a trimmed list, a dict with entries gone) reaches
    the caller as an ``Overwrite`` of its final value: appended or merged, the caller would keep
    what the child dropped, and its record would disagree with the child's."""
    update: dict[str, Any] = {}
    start = inner.schema.initial(sub_input)[0]
    schema = parent.schema
    for key in sorted(inner.last_touched):
        if key not in schema.channels and not schema.is_open():
            continue
        kind = schema.rule(key).kind
        final = result.state.get(key)
        if kind == "append":
            before = start.get(key) or []
            added = inner.last_extended.get(key)
            # Only appended to since the start: the items it added. Else it was overwritten.
            grown = added is not None and isinstance(final, list) and final == [*before, *added]
            update[key] = added if grown else Overwrite(final)
        elif kind == "add":
            update[key] = (final or 0) - (start.get(key) or 0)
        elif kind == "merge" and isinstance(final, dict):
            before = start.get(key) or {}
            if any(k not in final for k in before):  # a merge never removes an entry
                update[key] = Overwrite(final)
            else:
                update[key] = {k: v for k, v in final.items() if before.get(k) != v}
        else:
            # replace (and custom rules: the subgraph's final value is handed over whole)
            update[key] = final
    return update or None


def _forwarding(listener: Listener | None, parent: Runner, run: ActiveRun, node: str) -> Listener | None:
    """A child's progress, told to the caller's listener as the caller's: same run and step, the
    node named by its path (``review/approve``), the child's own run and step in ``data``."""
    if listener is None:
        return None
    keep = {"task_finished", "task_retrying", "token", "output"}

    def forward(event: Event) -> None:
        if event.kind not in keep and event.kind.startswith(("run_", "step_")):
            return
        if event.kind in ("waiting", "paused"):
            return
        data = {**event.data, "child_run_id": event.data.get("child_run_id", event.run_id),
                "inner_step": event.data.get("inner_step", event.step)}
        listener(Event(event.kind, run.run_id, run.step, f"{node}{SEP}{event.node}" if event.node else node, data))

    return forward


# ----------------------------------------------------------------------------- answering


def tree_interrupts(store: StoreReader, run_id: str) -> list[dict[str, Any]]:
    """The interrupts of a run and of every child run under it, oldest first: by the caller's
    step and task, then inside the child by its own step, task and call order. Each row has
    ``path`` (the asking node's path from the root graph, its ``node`` too, so messages name it)
    and an ``interrupt_id`` unique in the tree (``2.0.0/1.0.1.0`` for one asked in a child)."""
    rows = store.tree_interrupts(run_id)
    for r in rows:
        r["node"] = r.get("path") or r["node"]

    def key(r: dict[str, Any]) -> list[tuple[int, ...]]:
        return [*address_of(r["run_id"], run_id), (r["step"], r["task"], r["attempt"], r["idx"])]

    return sorted(rows, key=key)


def open_interrupts(store: StoreReader, run_id: str) -> list[dict[str, Any]]:
    """The open interrupts of :func:`tree_interrupts`."""
    return [r for r in tree_interrupts(store, run_id) if r["resumed_at"] is None]


BreakPredicate = Callable[[dict[str, Any]], bool]


def find_graph(graph: Graph, name: str) -> Graph | None:
    """The graph called ``name`` among ``graph`` and the subgraphs under it, at any depth."""
    seen: set[int] = set()
    todo = [graph]
    while todo:
        g = todo.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        if g.name == name:
            return g
        for node in g.nodes.values():
            todo.extend(graphs_under(node))
    return None

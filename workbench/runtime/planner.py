"""Planning: which tasks run in the next superstep, from the edges, routers and joins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from workbench import codec
from workbench.cow import reclaim
from workbench.errors import RoutingError, SerializationError
from workbench.failures import type_name
from workbench.graph import END, START, Graph, Send, display_path
from workbench.runtime.types import Outcome, TaskSpec
from workbench.state import StateSchema


class Planner:
    """Plans the tasks of the next superstep of a graph.

    Every finished task contributes its edges and its router's choice; a node reached by several
    edges runs once; a ``Send`` is a task of its own with its own argument; a join's target runs
    once all of its sources have finished since it last ran. A failed task with an ``on_error``
    handler plans the handler, with the failure as its input.
    """

    def __init__(self, graph: Graph, schema: StateSchema) -> None:
        self.graph = graph
        self.schema = schema

    def next(
        self, finished: Sequence[tuple[TaskSpec, Outcome]], state: dict[str, Any], joins: dict[str, list[Any]]
    ) -> tuple[list[TaskSpec], dict[str, list[Any]]]:
        """The next plan and the join bookkeeping after it."""
        try:
            return self._next(finished, state, joins)
        finally:
            reclaim(state)  # routers read the state's own containers: whatever they changed is undone

    def _next(
        self, finished: Sequence[tuple[TaskSpec, Outcome]], state: dict[str, Any], joins: dict[str, list[Any]]
    ) -> tuple[list[TaskSpec], dict[str, list[Any]]]:
        joins = {k: list(v) for k, v in joins.items()}
        plan: list[TaskSpec] = []
        plain: set[str] = set()

        def add(name: str, error: dict[str, Any] | None = None) -> None:
            if name == END:
                return
            if error is not None:
                plan.append(TaskSpec(name, error=error))
            elif name not in plain:
                plain.add(name)
                plan.append(TaskSpec(name))

        view = None
        for spec, outcome in finished:
            src = spec.node
            if outcome.status == "failed":
                handler = self.graph.nodes[src].on_error
                assert handler is not None
                kind = outcome.error_type or (type_name(outcome.error) if outcome.error else "Exception")
                add(handler, {"node": src, "type": kind, "message": outcome.message})
                continue
            if outcome.status != "completed":  # a task closed unanswered: its branch ends here
                continue
            for dst in self.graph.edges.get(src, []):
                add(dst)
            for target in outcome.goto or ():  # a Command's destinations (checked when returned)
                if isinstance(target, Send):
                    plan.append(TaskSpec(target.node, target.arg, send=True))
                else:
                    add(target)
            route = self.graph.routes.get(src)
            if route is not None:
                if view is None:
                    view = self.schema.view(state, shared=True)
                for target in self.route(route.router, route.targets, src, view):
                    if isinstance(target, Send):
                        try:
                            codec.dumps(target.arg, f"Send({target.node!r}) argument")
                        except SerializationError as exc:
                            raise SerializationError(f"router after {src!r}: {exc}") from None
                        plan.append(TaskSpec(target.node, codec.to_jsonable(target.arg), send=True))
                    else:
                        add(target)
            for i, join in enumerate(self.graph.joins):
                if src in join.sources:
                    key = str(i)
                    seen = joins.setdefault(key, [])
                    if src not in seen:
                        seen.append(src)
                    if set(seen) >= set(join.sources):
                        add(join.target)
                        joins.pop(key)
        return hold_deferred(self.graph, plan, joins)

    def route(self, router: Any, targets: dict[str, str], src: str, view: Any) -> list[str | Send]:
        """Call a router and check what it returned against the targets it declared."""
        result = router(view)
        items = result if isinstance(result, (list, tuple)) else [result]
        allowed = set(targets.values())
        out: list[str | Send] = []

        def where() -> str:  # built only for an error: display_path costs a system call
            return f"{display_path(self.graph.file)}: graph {self.graph.name!r}, router after {src!r}"

        for item in items:
            if isinstance(item, Send):
                if item.node not in allowed or item.node not in self.graph.nodes:
                    raise RoutingError(f"{where()}: Send to undeclared node {item.node!r} "
                                       f"(declared targets: {_names(allowed)})")
                out.append(item)
                continue
            if item == END or item is None:
                out.append(END)
                continue
            if not isinstance(item, str):
                raise RoutingError(f"{where()}: returned {item!r}; return a node name, END, or a list of Send")
            if item in targets:
                out.append(targets[item])
            elif item in allowed:
                out.append(item)
            else:
                raise RoutingError(f"{where()}: returned unknown node {item!r} "
                                   f"(declared targets: {_names(targets)})")
        return out


DEFERRED = "deferred"
"""The key, in a plan's join bookkeeping, of the deferred tasks held back for later."""


def hold_deferred(graph: Graph, plan: list[TaskSpec], joins: dict[str, list[Any]]
                  ) -> tuple[list[TaskSpec], dict[str, list[Any]]]:
    """Hold tasks of deferred nodes back while anything else is planned.

    A deferred node (``@g.node(defer=True)``) runs only when no other branch has work left:
    reached while other tasks are planned, it waits (recorded with the plan, under the
    ``deferred`` key of its joins) and runs in the first step where nothing else would.
    """
    held = [TaskSpec.from_json(t) for t in joins.pop(DEFERRED, [])]
    if not held and not any(graph.nodes[t.node].defer for t in plan):
        return plan, joins
    now: list[TaskSpec] = []
    for task in plan:
        if not graph.nodes[task.node].defer:
            now.append(task)
        elif task.send or task.error is not None or all(h.send or h.node != task.node for h in held):
            held.append(task)  # a plain deferred node waits once, however often it is reached
    if not now:
        return held, joins
    joins[DEFERRED] = [t.to_json() for t in held]
    return now, joins


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted("END" if n == END else "START" if n == START else n for n in names))


def loop_message(graph: Graph, history: list[str], limit: int, *, subgraph: bool = False) -> str:
    """Why a run stopped at its step limit, naming the loop it was in (``history``: the nodes
    of each step so far, ``"a+b"`` for a step of two). A subgraph's limit is its graph's own:
    ``resume --max-steps`` raises the root run's, not that one."""
    loop = None
    for p in range(1, len(history) // 2 + 1):
        if history[-p:] == history[-2 * p:-p]:
            loop = [*history[-p:], history[-p]]
            break
    where = f"{display_path(graph.file)}: graph {graph.name!r}"
    desc = f"; loop {' → '.join(loop)}" if loop else ""
    if subgraph:
        return (f"{where}: the subgraph's run reached its step limit of {limit}{desc}; give the loop an exit "
                f"condition, or raise the subgraph's own limit (Graph({graph.name!r}, ..., max_steps=N)), then "
                "resume the run")
    return (f"{where}: run reached its step limit of {limit}{desc}; give the loop an exit "
            "condition, or raise max_steps (workbench resume RUN --max-steps N continues it)")

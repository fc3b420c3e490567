"""The graph model: nodes, edges, routers, fan-out and joins, validated when the graph is built.

A graph is written in a Python file::

    g = Graph("support", State)

    @g.node(retry=RetryPolicy(attempts=3), timeout=30)
    def classify(state, ctx):
        reply = ctx.llm([{"role": "user", "content": state["message"]}])
        return {"category": reply.text}

    g.edge(START, "classify")
    g.route("classify", pick_next, targets=["refund", "answer"])
    g.edge("refund", END)

Validation happens on first use (``g.validate()``); each problem is reported with the graph's
file, the node and what to do.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import linecache
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench import graph_checks as checks
from workbench.errors import GraphDefinitionError
from workbench.node_signature import takes_context
from workbench.retry import RetryPolicy
from workbench.retry import policy_for as policy_for  # re-exported: the runner reads it here
from workbench.state import StateSchema

START = "__start__"
"""The virtual node a run enters from."""
END = "__end__"
"""The virtual node that ends a run."""

_RESERVED = {START, END}


@dataclass(frozen=True)
class Send:
    """Run ``node`` with its own input ``arg`` — one branch of a fan-out decided at run time.

    A router returns a list of Sends; every Send becomes a task of the next superstep, and the
    node receives ``arg`` in place of the shared state.
    """

    node: str
    arg: Any = None


@dataclass
class Node:
    """A step of the graph: a function (or a subgraph) and its policies."""

    name: str
    fn: Callable[..., Any] | None
    subgraph: Graph | None = None
    retry: RetryPolicy | None = None  # the first of ``retries`` (kept for readers of one policy)
    timeout: float | None = None
    on_error: str | None = None
    file: str = ""
    line: int = 0
    is_async: bool = False
    takes_ctx: bool = False
    retries: tuple[RetryPolicy, ...] = ()
    # Run only when nothing else is planned (a summary after branches of uneven length).
    defer: bool = False
    # Where a Command returned by this node may send the run (checked, drawn, validated).
    goto: tuple[str, ...] = ()
    # Graphs this function node's body runs (``await Runner(sub).arun(...)``), declared so that
    # breakpoint paths and fork addresses through the node can be checked before a run.
    body_subgraphs: tuple[Graph, ...] = ()
    # Hash of the node's source as it was when the graph was built (not as the file is now:
    # comparing an old version of a graph with a reloaded one needs each version's own code).
    source_hash: str = ""
    # Learned while running (runtime/calls.py): how many of this sync body's last runs beside
    # siblings in a row were quick and made no model, tool or subgraph call. Enough of them,
    # and it runs on the event loop instead of taking a trip to a worker thread.
    quick_bodies: int = field(default=0, init=False, repr=False, compare=False)
    # ``threaded=True``: never learned onto the event loop (thread-local state, asyncio.run).
    threaded: bool = False

    def __post_init__(self) -> None:
        if self.subgraph is not None:
            # The subgraph's own nodes and wiring, not its file: an edit elsewhere in the file
            # does not change it.
            self.source_hash = self.subgraph.structure_hash()
            return
        try:
            linecache.checkcache(self.file)  # the file may have been saved since it was last read
            src = inspect.getsource(self.fn)  # type: ignore[arg-type]
        except (OSError, TypeError):
            src = repr(self.fn)
        self.source_hash = hashlib.sha256(src.encode()).hexdigest()[:16]


@dataclass
class Route:
    """A run-time decision after ``source``: ``router(state)`` names the next node(s)."""

    source: str
    router: Callable[[Any], Any]
    targets: dict[str, str]  # label returned by the router -> node name


@dataclass
class Join:
    """``target`` runs once every node in ``sources`` has finished since it last ran."""

    sources: tuple[str, ...]
    target: str


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)


def _caller_file() -> tuple[str, int]:
    frame = inspect.currentframe()
    # Walk out of this module to the user's file.
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return "<unknown>", 0
    return frame.f_code.co_filename, frame.f_lineno


def display_path(path: str) -> str:
    """A file path relative to the working directory when it is inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


class Graph:
    """A workflow graph over a typed shared state.

    Args:
        name: the graph's name, shown in the CLI, the trace store and the TUI.
        state: the state schema (TypedDict, dataclass or Pydantic model); ``None`` for an
            untyped dict state.
        max_steps: supersteps a run may take before it fails with a step-limit error that names
            the loop (override per run).
        description: one line shown in listings.
        inputs: the state keys a run's input is expected to set (shown in the TUI's input
            form); by default every key.
    """

    def __init__(
        self,
        name: str,
        state: Any = None,
        *,
        max_steps: int = 100,
        description: str = "",
        inputs: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.file, self.line = _caller_file()
        try:
            self.schema = StateSchema(state)
        except GraphDefinitionError as exc:
            raise GraphDefinitionError(f"{display_path(self.file)}:{self.line}: graph {name!r}: {exc}") from None
        try:
            self.max_steps = checks.check_max_steps(max_steps)
            keys = checks.check_inputs(inputs)
        except checks.BadDeclaration as exc:
            raise GraphDefinitionError(f"{display_path(self.file)}:{self.line}: graph {name!r}: {exc}") from None
        self.description = description
        # The keys a run's input is expected to set (the TUI's input form); default: all keys.
        self.inputs = keys if keys is not None else self.schema.keys
        self.nodes: dict[str, Node] = {}
        self.edges: dict[str, list[str]] = {}
        self.routes: dict[str, Route] = {}
        self.joins: list[Join] = []
        # Where each edge, router and join was declared: an error about one names that line.
        self._declared: dict[tuple[str, ...], int] = {}
        self._validated = False
        self._code_version = self._hash_file()

    # ----------------------------------------------------------------- building

    def node(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | Sequence[RetryPolicy] | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        goto: Sequence[str] | None = None,
        defer: bool = False,
        subgraphs: Sequence[Graph] | None = None,
        threaded: bool = False,
    ) -> Any:
        """Add a node; usable as ``@g.node``, ``@g.node(retry=...)`` or ``g.node(fn)``.

        The function takes ``(state)`` or ``(state, ctx)``, may be ``async``, and returns a dict
        of state updates, a list of them (applied in order), None, or a :class:`Command` (an
        update plus where to go next). ``retry`` retries failures (one policy, or a list: the
        first that matches an error applies), ``timeout`` (seconds, > 0) bounds each attempt,
        ``on_error`` names a node the run goes to when the node still fails, ``goto`` declares
        the nodes a Command may send the run to, ``defer=True`` holds the node back until no
        other branch is left to run, and ``subgraphs`` declares the graphs the node's body runs
        (``await Runner(sub).arun(...)``), so breakpoints and forks can address their steps by
        path (``node/inner``). ``threaded=True`` keeps a sync node's bodies that run beside
        siblings in worker threads even when they are quick (by default a quick body moves onto
        the event loop: right for pure functions, wrong for one that uses thread-local state or
        calls ``asyncio.run``).
        """

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self.add_node(name or f.__name__, f, retry=retry, timeout=timeout, on_error=on_error,
                          goto=goto, defer=defer, subgraphs=subgraphs, threaded=threaded)
            return f

        if fn is not None:
            return register(fn)
        return register

    def add_node(
        self,
        name: str,
        fn: Callable[..., Any] | Graph,
        *,
        retry: RetryPolicy | Sequence[RetryPolicy] | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        goto: Sequence[str] | None = None,
        defer: bool = False,
        subgraphs: Sequence[Graph] | None = None,
        threaded: bool = False,
    ) -> Graph:
        """Add a node by name: a function, or another Graph used as a subgraph (options as
        :meth:`node`)."""
        self._checked(None, checks.check_node_name, name)
        if name in _RESERVED or name.startswith("__"):
            raise GraphDefinitionError(self._where(name, "this node name is reserved; choose another"))
        if name in self.nodes:
            first = self.nodes[name]
            code = getattr(inspect.unwrap(fn), "__code__", None) if callable(fn) else None
            here = f"{display_path(code.co_filename)}:{code.co_firstlineno}" if code else display_path(self.file)
            defined = f" (first defined at line {first.line})" if first.line and first.file == self.file else ""
            raise GraphDefinitionError(f"{here}: graph {self.name!r}, node {name!r}: a node with this name already "
                                       f"exists{defined}; choose another name")
        timeout = self._checked(name, checks.check_timeout, timeout)
        on_error = self._checked(name, checks.check_on_error, on_error)
        retries = self._retry_policies(name, retry)
        destinations = self._goto_names(name, goto)
        if isinstance(fn, Graph):
            node = Node(name, None, subgraph=fn, timeout=timeout, on_error=on_error,
                        file=fn.file, line=fn.line, is_async=True, takes_ctx=True)
        else:
            if not callable(fn):
                raise GraphDefinitionError(self._where(name, f"{fn!r} is not a function"))
            target = inspect.unwrap(fn)
            code = getattr(target, "__code__", None)
            node = Node(
                name, fn, timeout=timeout, on_error=on_error,
                file=code.co_filename if code else self.file,
                line=code.co_firstlineno if code else 0,
                is_async=inspect.iscoroutinefunction(target),
                takes_ctx=self._takes_context(name, fn),
            )
        node.retries, node.retry = retries, (retries[0] if retries else None)
        node.goto, node.defer = destinations, bool(defer)
        node.threaded = bool(threaded)
        node.body_subgraphs = self._body_subgraphs(name, fn, subgraphs)
        self.nodes[name] = node
        self._validated = False
        return self

    def _takes_context(self, name: str, fn: Any) -> bool:
        """Whether node ``name``'s function gets the context (workbench/node_signature.py)."""
        takes, problem = takes_context(fn)
        if problem:
            raise GraphDefinitionError(self._where(name, problem))
        return takes

    def _body_subgraphs(self, name: str, fn: Any, subgraphs: Any) -> tuple[Graph, ...]:
        """A function node's ``subgraphs=`` as a tuple of graphs (refused on a subgraph node,
        which runs its one graph, and for anything that is not a Graph)."""
        if subgraphs is None:
            return ()
        if isinstance(fn, Graph):
            raise GraphDefinitionError(self._where(None, f"node {name!r} is a subgraph node; subgraphs= declares "
                                                         "the graphs a function node's body runs"))
        graphs = [subgraphs] if isinstance(subgraphs, Graph) else subgraphs
        if isinstance(graphs, (str, bytes, dict)) or not isinstance(graphs, Sequence) \
                or not all(isinstance(g, Graph) for g in graphs):
            raise GraphDefinitionError(self._where(
                None, f"node {name!r}: subgraphs must be a list of Graphs, got {type(subgraphs).__name__}"))
        return tuple(graphs)

    def _retry_policies(self, name: str, retry: Any) -> tuple[RetryPolicy, ...]:
        """A node's ``retry=`` as a tuple of policies; a wrong type is refused here, at build time."""
        if retry is None:
            return ()
        policies = [retry] if isinstance(retry, RetryPolicy) else retry
        if isinstance(policies, (str, bytes, dict)) or not isinstance(policies, Sequence):
            raise GraphDefinitionError(self._where(
                None, f"node {name!r}: retry must be a RetryPolicy or a list of them, got {type(retry).__name__}"))
        out = []
        for policy in policies:
            if not isinstance(policy, RetryPolicy):
                raise GraphDefinitionError(self._where(
                    None, f"node {name!r}: retry must be a RetryPolicy or a list of them, got a "
                          f"{type(policy).__name__} in the list"))
            problem = policy.problem()
            if problem:
                raise GraphDefinitionError(self._where(None, f"node {name!r}: {problem}"))
            out.append(policy)
        return tuple(out)

    def _goto_names(self, name: str, goto: Any) -> tuple[str, ...]:
        if goto is None:
            return ()
        names = [goto] if isinstance(goto, str) else goto
        if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
            raise GraphDefinitionError(self._where(
                None, f"node {name!r}: goto must be a list of node names (or END), got {goto!r}"))
        return tuple(dict.fromkeys(names))

    def edge(self, source: str, target: str) -> Graph:
        """After ``source`` finishes, run ``target`` (``START`` and ``END`` allowed)."""
        self._checked(None, checks.check_ref, source, "an edge's source", "START")
        self._checked(None, checks.check_ref, target, "an edge's target", "END")
        self.edges.setdefault(source, []).append(target)
        self._declare(("edge", source, target))
        return self

    def sequence(self, *names: str) -> Graph:
        """Chain nodes: ``sequence(START, "a", "b", END)`` adds a→b edges in order."""
        if len(names) == 1 and not isinstance(names[0], str):  # sequence([...]) would add no edge
            raise GraphDefinitionError(self._here(None, "sequence takes node names as separate arguments, e.g. "
                                                        "graph.sequence(START, 'a', 'b', END)"))
        for a, b in itertools.pairwise(names):
            self.edge(a, b)
        return self

    def route(
        self,
        source: str,
        router: Callable[[Any], Any],
        targets: Sequence[str] | dict[str, str],
    ) -> Graph:
        """After ``source``, call ``router(state)`` to pick what runs next.

        The router returns a node name (or a label of ``targets`` when it is a dict), ``END``, a
        list of names, or a list of :class:`Send` for a fan-out of run-time width. ``targets``
        declares every node it may return (one name may be a plain string), so the graph can be
        checked and drawn.
        """
        self._checked(None, checks.check_ref, source, "a router's source", "START")
        if source in self.routes:
            raise GraphDefinitionError(self._where(source, "already has a router; combine the two functions"))
        self._checked(source, checks.check_router, router)
        mapping = self._checked(source, checks.check_targets, targets)
        self.routes[source] = Route(source, router, mapping)
        self._declare(("route", source))
        return self

    def join(self, sources: Iterable[str], target: str) -> Graph:
        """Run ``target`` once all of ``sources`` have finished (a wait-for-all join); one
        source may be given as a plain name."""
        names = self._checked(None, checks.check_join_sources, sources)
        self._checked(None, checks.check_ref, target, "a join's target", "END")
        self.joins.append(Join(names, target))
        self._declare(("join", target))
        return self

    def _checked(self, node: str | None, check: Callable[..., Any], *args: Any) -> Any:
        """``check(*args)`` (workbench/graph_checks.py), its problem refused with the line that
        declared it."""
        try:
            return check(*args)
        except checks.BadDeclaration as exc:
            raise GraphDefinitionError(self._here(node, str(exc))) from None

    def _here(self, node: str | None, problem: str) -> str:
        """``problem`` prefixed with the file and line being declared (called from the builders)."""
        file, line = _caller_file()
        loc = f"{display_path(file)}:{line}" if line else display_path(self.file)
        subject = f"graph {self.name!r}" + (f", node {node!r}" if node else "")
        return f"{loc}: {subject}: {problem}"

    def _declare(self, what: tuple[str, ...]) -> None:
        file, line = _caller_file()
        if file == self.file:
            self._declared.setdefault(what, line)
        self._validated = False

    # ----------------------------------------------------------------- reading

    def successors(self, name: str) -> list[str]:
        """Every node (or END) that may run after ``name``, from all edge kinds."""
        out: list[str] = list(self.edges.get(name, []))
        route = self.routes.get(name)
        if route:
            out.extend(route.targets.values())
        out.extend(j.target for j in self.joins if name in j.sources)
        node = self.nodes.get(name)
        if node and node.goto:
            out.extend(node.goto)
        if node and node.on_error:
            out.append(node.on_error)
        return list(dict.fromkeys(out))

    @property
    def code_version(self) -> str:
        """A hash of the graph file's source as loaded: runs record it, so a changed graph is visible."""
        return self._code_version

    def _hash_file(self) -> str:
        try:
            with open(self.file, "rb") as fh:
                data = fh.read()
        except OSError:
            data = self.name.encode()
        return hashlib.sha256(data).hexdigest()[:16]

    def node_versions(self) -> dict[str, str]:
        """``{node: hash of its source}`` — to show which nodes changed since a run."""
        return {name: node.source_hash for name, node in self.nodes.items()}

    def structure_hash(self) -> str:
        """A hash of what this graph does: its nodes' code, edges, routes (routers' code
        included) and joins — not the rest of the file it lives in."""
        routes = {}
        for src, route in self.routes.items():
            try:
                router = inspect.getsource(route.router)
            except (OSError, TypeError):
                router = repr(route.router)
            routes[src] = [sorted(route.targets.items()), hashlib.sha256(router.encode()).hexdigest()[:16]]
        shape: dict[str, Any] = {
            "nodes": self.node_versions(), "edges": {k: sorted(v) for k, v in self.edges.items()},
            "routes": routes, "joins": [[sorted(j.sources), j.target] for j in self.joins],
        }
        control = {n.name: [sorted(n.goto), n.defer] for n in self.nodes.values() if n.goto or n.defer}
        if control:  # only when used: graphs without commands keep the hash they had
            shape["control"] = control
        blob = json.dumps(shape, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def changed_since(self, recorded: dict[str, str] | None) -> list[str]:
        """Nodes whose code differs from ``recorded`` (a run's ``node_versions``), sorted."""
        recorded = recorded or {}
        return sorted(n for n, v in self.node_versions().items() if recorded.get(n) not in (None, v))

    # ----------------------------------------------------------------- validation

    def _where(self, node: str | None, problem: str, declared: tuple[str, ...] = ()) -> str:
        """``problem`` prefixed with where to fix it: the line that declared the edge, router or
        join (``declared``), else the node's definition."""
        loc = display_path(self.file)
        n = self.nodes.get(node or "")
        if self._declared.get(declared):
            loc = f"{loc}:{self._declared[declared]}"
        elif n is not None and n.line and n.file == self.file:
            loc = f"{loc}:{n.line}"
        subject = f"graph {self.name!r}" + (f", node {node!r}" if node else "")
        return f"{loc}: {subject}: {problem}"

    def validate(self) -> Graph:
        """Check the graph; raise GraphDefinitionError naming file, node and problem."""
        if self._validated:
            return self
        known = set(self.nodes) | {END}

        def check_target(src: str, dst: str, kind: str, declared: tuple[str, ...] = ()) -> None:
            if dst == START:
                where = src if src != START else None
                raise GraphDefinitionError(self._where(where, f"{kind} to START is not allowed", declared))
            if dst not in known:
                hint = _closest(dst, self.nodes)
                raise GraphDefinitionError(
                    self._where(src if src in self.nodes else None,
                                f"{kind} to unknown node {dst!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                                declared)
                )

        for src, dsts in self.edges.items():
            if src == END:
                raise GraphDefinitionError(self._where(None, f"an edge from END (to {', '.join(map(repr, dsts))}) is "
                                                             "not allowed: END is where a run stops",
                                                       ("edge", src, dsts[0])))
            if src != START and src not in self.nodes:
                raise GraphDefinitionError(self._where(None, f"edge from unknown node {src!r}", ("edge", src, dsts[0])))
            for dst in dsts:
                check_target(src, dst, "edge", ("edge", src, dst))
        for src, route in self.routes.items():
            if src != START and src not in self.nodes:
                raise GraphDefinitionError(self._where(None, f"router after unknown node {src!r}", ("route", src)))
            for dst in route.targets.values():
                check_target(src, dst, "route", ("route", src))
        for join in self.joins:
            if not join.sources:  # only a Join built by hand: join() refuses it
                raise GraphDefinitionError(self._where(None, f"the join to {join.target!r} has no source nodes"))
            for s in join.sources:
                if s not in self.nodes:
                    raise GraphDefinitionError(self._where(None, f"join from unknown node {s!r}",
                                                           ("join", join.target)))
            check_target(join.sources[0], join.target, "join", ("join", join.target))
        for node in self.nodes.values():
            if node.on_error:
                check_target(node.name, node.on_error, "on_error route")
            for dst in node.goto:
                check_target(node.name, dst, "goto")
            if node.subgraph is not None:
                node.subgraph.validate()
            for body in node.body_subgraphs:
                body.validate()

        unknown_inputs = [k for k in self.inputs if not self.schema.is_open() and k not in self.schema.channels]
        if unknown_inputs:
            raise GraphDefinitionError(self._where(None, f"inputs names unknown state key {unknown_inputs[0]!r}"))
        if not self.edges.get(START) and START not in self.routes:
            raise GraphDefinitionError(
                self._where(None, "no entry: add an edge from START, e.g. graph.edge(START, 'first_node')")
            )
        for name in self.nodes:
            if not self.successors(name) or self.successors(name) == [self.nodes[name].on_error]:
                raise GraphDefinitionError(
                    self._where(name, f"has no outgoing edge; add g.edge({name!r}, END) or a route")
                )
        reachable = self._reachable_from(START)
        for name in self.nodes:
            if name not in reachable:
                raise GraphDefinitionError(
                    self._where(name, "is unreachable from START; connect it with an edge or remove it")
                )
        for name in self.nodes:
            if END not in self._reachable_from(name):
                raise GraphDefinitionError(self._where(name, "can never reach END (a loop with no exit?)"))
        if END not in reachable:
            raise GraphDefinitionError(self._where(None, "no path from START to END"))
        self._validated = True
        return self

    def _reachable_from(self, start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            cur = stack.pop()
            for nxt in self.successors(cur):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, nodes={list(self.nodes)})"


def _closest(name: str, options: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None

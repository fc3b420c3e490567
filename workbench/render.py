"""Draw a graph offline: as ASCII for the terminal, and as Mermaid text."""

from __future__ import annotations

from collections import deque
from typing import Any

from workbench.graph import END, START, Graph


def policy_tags(node: Any) -> list[str]:
    """A node's policies in a few words (subgraph, retries, deferred, timeout), for drawings."""
    tags = []
    if node.subgraph is not None:
        tags.append(f"subgraph {node.subgraph.name}")
    if node.retries:
        tags.append("retry×" + "|".join(str(p.attempts) for p in node.retries))
    if node.defer:
        tags.append("deferred")
    if node.timeout:
        tags.append(f"timeout {node.timeout:g}s")
    return tags


def _order(graph: Graph) -> list[str]:
    """Nodes in breadth-first order from START (declaration order breaks ties)."""
    seen: list[str] = []
    queue = deque([START])
    while queue:
        cur = queue.popleft()
        for nxt in graph.successors(cur):
            if nxt not in seen and nxt != END:
                seen.append(nxt)
                queue.append(nxt)
    return seen + [n for n in graph.nodes if n not in seen]


def _label(name: str) -> str:
    return {START: "START", END: "END"}.get(name, name)


def _edges(graph: Graph, src: str) -> list[tuple[str, str]]:
    """(target, kind) pairs leaving ``src``: kind is edge, route, send, join or error."""
    out: list[tuple[str, str]] = [(d, "edge") for d in graph.edges.get(src, [])]
    route = graph.routes.get(src)
    if route is not None:
        out += [(d, "route") for d in dict.fromkeys(route.targets.values())]
    out += [(j.target, "join") for j in graph.joins if src in j.sources]
    node = graph.nodes.get(src)
    if node is not None:
        out += [(d, "goto") for d in node.goto]
    if node is not None and node.on_error:
        out.append((node.on_error, "error"))
    return out


ARROWS = {"edge": "──▶", "route": "─?▶", "join": "─&▶", "error": "─!▶", "goto": "─»▶"}


def ascii_lines(graph: Graph) -> list[tuple[str, str | None]]:
    """The ASCII drawing as ``(line, node the line belongs to or None)`` pairs.

    A box per node, in flow order, with its outgoing edges listed under it: ``──▶`` a plain
    edge, ``─?▶`` a run-time route (which may fan out), ``─&▶`` a join, ``─!▶`` the error route,
    ``─»▶`` a destination a Command returned by the node may choose (``@g.node(goto=[...])``);
    ``↺`` marks an edge that closes a loop. The TUI styles lines by their node.
    """
    order = _order(graph)
    lines: list[tuple[str, str | None]] = []

    def edge_lines(src: str) -> list[tuple[str, str | None]]:
        res: list[tuple[str, str | None]] = []
        for dst, kind in _edges(graph, src):
            # An edge closes a loop when its target can get back to its source.
            back = " ↺" if dst != END and (dst == src or src in graph._reachable_from(dst)) else ""
            res.append((f"   {ARROWS[kind]} {_label(dst)}{back}", None))
        return res

    lines.append(("( START )", START))
    lines += edge_lines(START)
    for name in order:
        node = graph.nodes[name]
        tags = policy_tags(node)
        if node.on_error:
            tags.append(f"on error → {node.on_error}")
        text = name + (f"  [{', '.join(tags)}]" if tags else "")
        lines.append(("┌" + "─" * (len(text) + 2) + "┐", name))
        lines.append((f"│ {text} │", name))
        lines.append(("└" + "─" * (len(text) + 2) + "┘", name))
        lines += edge_lines(name)
    lines.append(("( END )", END))
    return lines


def to_ascii(graph: Graph) -> str:
    """The graph drawn for the terminal (see :func:`ascii_lines` for the notation)."""
    title = f"graph {graph.name}" + (f" — {graph.description}" if graph.description else "")
    return "\n".join([title, *(line for line, _ in ascii_lines(graph))])


def _mid(name: str) -> str:
    return {START: "__start__", END: "__end__"}.get(name, "n_" + "".join(c if c.isalnum() else "_" for c in name))


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart text (paste into any Mermaid renderer)."""
    lines = ["flowchart TD", "    __start__([START])", "    __end__([END])"]
    for name, node in graph.nodes.items():
        shape = f"[[{name}]]" if node.subgraph is not None else f"[{name}]"
        lines.append(f"    {_mid(name)}{shape}")
    styles = {"edge": "-->", "route": "-.->", "join": "==>", "error": "-.->|error|", "goto": "-.->|goto|"}
    for src in [START, *graph.nodes]:
        for dst, kind in _edges(graph, src):
            lines.append(f"    {_mid(src)} {styles[kind]} {_mid(dst)}")
    return "\n".join(lines)

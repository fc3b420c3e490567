"""Draw a graph offline: as ASCII for the terminal, and as Mermaid text."""

from __future__ import annotations

from collections import deque

from workbench.graph import END, START, Graph


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
    if node is not None and node.on_error:
        out.append((node.on_error, "error"))
    return out


def to_ascii(graph: Graph) -> str:
    """A box per node, in flow order, with its outgoing edges listed under it.

    ``──▶`` is a plain edge, ``─?▶`` a run-time route, ``─⋔▶`` a route that may fan out,
    ``─&▶`` a join, ``─!▶`` the error route; ``↺`` marks an edge back to an earlier node (a loop).
    """
    order = _order(graph)
    lines = [f"graph {graph.name}" + (f" — {graph.description}" if graph.description else "")]
    arrows = {"edge": "──▶", "route": "─?▶", "join": "─&▶", "error": "─!▶", "send": "─⋔▶"}

    def edge_lines(src: str) -> list[str]:
        res = []
        for dst, kind in _edges(graph, src):
            # An edge closes a loop when its target can get back to its source.
            back = " ↺" if dst != END and (dst == src or src in graph._reachable_from(dst)) else ""
            res.append(f"   {arrows[kind]} {_label(dst)}{back}")
        return res

    lines.append("( START )")
    lines += edge_lines(START)
    for name in order:
        node = graph.nodes[name]
        tags = []
        if node.subgraph is not None:
            tags.append(f"subgraph {node.subgraph.name}")
        if node.retry:
            tags.append(f"retry×{node.retry.attempts}")
        if node.timeout:
            tags.append(f"timeout {node.timeout:g}s")
        text = name + (f"  [{', '.join(tags)}]" if tags else "")
        lines.append("┌" + "─" * (len(text) + 2) + "┐")
        lines.append(f"│ {text} │")
        lines.append("└" + "─" * (len(text) + 2) + "┘")
        lines += edge_lines(name)
    lines.append("( END )")
    return "\n".join(lines)


def _mid(name: str) -> str:
    return {START: "__start__", END: "__end__"}.get(name, "n_" + "".join(c if c.isalnum() else "_" for c in name))


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart text (paste into any Mermaid renderer)."""
    lines = ["flowchart TD", "    __start__([START])", "    __end__([END])"]
    for name, node in graph.nodes.items():
        shape = f"[[{name}]]" if node.subgraph is not None else f"[{name}]"
        lines.append(f"    {_mid(name)}{shape}")
    styles = {"edge": "-->", "route": "-.->", "join": "==>", "error": "-.->|error|"}
    for src in [START, *graph.nodes]:
        for dst, kind in _edges(graph, src):
            lines.append(f"    {_mid(src)} {styles[kind]} {_mid(dst)}")
    return "\n".join(lines)

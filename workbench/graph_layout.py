"""A graph laid out in two dimensions on a character grid: pure data in, pure data out.

The workbench's graph view and ``workbench graph --format layered`` draw with it. The steps are
the usual ones for layered (Sugiyama-style) drawings, kept small because workflow graphs are:

1. **Cycles.** A depth-first walk from ``START`` marks the edges that close a loop (back edges);
   layering ignores them and they are drawn separately, up the right-hand side, dotted.
2. **Layers.** Longest path from ``START``: a node sits one layer below the lowest node that
   leads to it, so a join sits below every branch it waits for, and ``END`` is always last.
3. **Long edges** get a one-column placeholder in every layer they cross, so they run between
   boxes, never through them.
4. **Order.** Barycentre sweeps down and up (a node moves towards the mean position of its
   neighbours in the next layer), keeping the order with the fewest crossings.
5. **Columns.** Each node is pulled towards the centre of its neighbours, pushed apart to keep
   a gap, and every layer is packed from the left.
6. **Edges** leave a box through ports spread along its bottom border, turn on their own row
   ("track") of the channel between two layers, and enter the target's top through ``▼``.
   Crossing and merging lines are drawn with box-drawing junctions.

Steps 1, 2, 4 and 5 (where the boxes go) are in :mod:`workbench.graph_layers`; this module
finds the edges, lays out the long ones and draws. No Textual here (the core never imports the
UI): the result is rows of text plus, for every cell, what it belongs to, which the TUI turns
into styles.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from workbench.graph import END, START, Graph, Send
from workbench.graph_layers import back_edges, longest_path_layers, order_layers, place_columns
from workbench.render import policy_tags

MARKERS = {"route": "?", "join": "&", "error": "!", "goto": "»", "send": "*"}
"""The character under a box where an edge of that kind leaves it (plain edges: ``│``)."""

_U, _D, _L, _R = 1, 2, 4, 8
_LINES = {
    _U: "│", _D: "│", _U | _D: "│", _L: "─", _R: "─", _L | _R: "─",
    _D | _R: "┌", _D | _L: "┐", _U | _R: "└", _U | _L: "┘",
    _U | _D | _R: "├", _U | _D | _L: "┤", _D | _L | _R: "┬", _U | _L | _R: "┴", _U | _D | _L | _R: "┼",
}
_DOTTED = {_U | _D: "┊", _U: "┊", _D: "┊", _L | _R: "┈", _L: "┈", _R: "┈"}


@dataclass(frozen=True)
class Edge:
    """An edge to draw: ``kind`` is edge, route, send, join, goto or error."""

    src: str
    dst: str
    kind: str = "edge"
    label: str = ""


@dataclass
class Box:
    """Where a node was placed: top-left corner, size, and its layer."""

    name: str
    x: int
    y: int
    w: int
    h: int
    layer: int

    @property
    def centre(self) -> int:
        return self.x + self.w // 2


@dataclass
class Drawing:
    """The laid-out graph: text rows, what each cell belongs to, and the boxes.

    ``owners[y][x]`` is ``"n:NAME"`` for a cell of node NAME's box, ``"e:KIND"`` for a cell of an
    edge (``e:back`` for a loop's edge), or ``""`` for blank.
    """

    rows: list[str]
    owners: list[list[str]]
    boxes: dict[str, Box]
    layers: list[list[str]]  # real nodes per layer, left to right
    back_edges: list[Edge] = field(default_factory=list)
    edges: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    """The cells (x, y) each drawn edge ``(src, dst)`` runs through, its arrow included: the TUI
    lights the edges a run took."""

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    @property
    def height(self) -> int:
        return len(self.rows)

    def text(self) -> str:
        return "\n".join(r.rstrip() for r in self.rows)

    def node_at(self, x: int, y: int) -> str | None:
        """The node whose box covers cell (x, y), if any."""
        for box in self.boxes.values():
            if box.x <= x < box.x + box.w and box.y <= y < box.y + box.h:
                return box.name
        return None


# ----------------------------------------------------------------------------- the model

SEP = "/"
"""Between the parts of a node's path in a subgraph (``review/approve``), as the runner spells it."""


def local_name(path: str, prefix: str) -> str | None:
    """The node of the graph at ``prefix`` (``""`` for the root, ``"review/"`` inside node
    review) that ``path`` is or runs inside: ``review/approve`` is ``review`` at the root and
    ``approve`` inside review; None when ``path`` is not under ``prefix``."""
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    return path[len(prefix):].split(SEP)[0]



def _returns_send(router: Callable[..., object]) -> bool:
    """A router annotated to return Sends fans out at run time (``-> list[Send]``)."""
    try:
        hint = typing.get_type_hints(router).get("return")
    except Exception:  # unresolvable annotations: then we cannot tell, and draw a route
        return False
    return hint is Send or Send in typing.get_args(hint)


def graph_edges(graph: Graph) -> list[Edge]:
    """Every edge of ``graph`` with its kind and, for a router with labelled targets, the label."""
    out: list[Edge] = []
    for src in [START, *graph.nodes]:
        out += [Edge(src, d) for d in graph.edges.get(src, [])]
        route = graph.routes.get(src)
        if route is not None:
            kind = "send" if _returns_send(route.router) else "route"
            labels: dict[str, list[str]] = {}
            for label, target in route.targets.items():
                labels.setdefault(target, []).append(label)
            for target, names in labels.items():
                shown = [n for n in names if n != target]
                out.append(Edge(src, target, kind, "/".join(shown)))
        out += [Edge(src, j.target, "join") for j in graph.joins if src in j.sources]
        node = graph.nodes.get(src)
        if node is not None:
            out += [Edge(src, d, "goto") for d in node.goto]
            if node.on_error:
                out.append(Edge(src, node.on_error, "error"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for e in out:  # one line per pair of nodes: the first kind declared wins
        if (e.src, e.dst) not in seen:
            seen.add((e.src, e.dst))
            unique.append(e)
    return unique


def box_lines(graph: Graph, name: str) -> list[str]:
    """The text inside a node's box: its name, then its policies when it has any."""
    if name in (START, END):
        return [{START: "START", END: "END"}[name]]
    tags = policy_tags(graph.nodes[name])
    return [name, " · ".join(tags)] if tags else [name]


# ----------------------------------------------------------------------------- drawing


class _Canvas:
    def __init__(self) -> None:
        self.chars: dict[tuple[int, int], str] = {}
        self.owner: dict[tuple[int, int], str] = {}
        self.bits: dict[tuple[int, int], int] = {}
        self.kinds: dict[tuple[int, int], set[str]] = {}

    def text(self, x: int, y: int, s: str, owner: str) -> None:
        for i, ch in enumerate(s):
            self.chars[(x + i, y)] = ch
            self.owner[(x + i, y)] = owner

    def path(self, points: list[tuple[int, int]], kind: str) -> list[tuple[int, int]]:
        """Connect the points with axis-aligned lines; returns every cell on the way."""
        cells = [points[0]]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            while (x0, y0) != (x1, y1):
                nx = x0 + (x1 > x0) - (x1 < x0)
                ny = y0 + (y1 > y0) - (y1 < y0) if nx == x0 else y0
                a, b = ((_R, _L) if nx > x0 else (_L, _R)) if nx != x0 else ((_D, _U) if ny > y0 else (_U, _D))
                self.bits[(x0, y0)] = self.bits.get((x0, y0), 0) | a
                self.bits[(nx, ny)] = self.bits.get((nx, ny), 0) | b
                x0, y0 = nx, ny
                cells.append((x0, y0))
        for c in cells:
            self.kinds.setdefault(c, set()).add(kind)
        return cells

    def render(self) -> tuple[list[str], list[list[str]]]:
        keys = set(self.chars) | set(self.bits)
        width = 1 + max((x for x, _ in keys), default=-1)
        height = 1 + max((y for _, y in keys), default=-1)
        rows, owners = [], []
        for y in range(height):
            row, own = [], []
            for x in range(width):
                if (x, y) in self.chars:
                    row.append(self.chars[(x, y)])
                    own.append(self.owner[(x, y)])
                elif (x, y) in self.bits:
                    bits, kinds = self.bits[(x, y)], self.kinds.get((x, y), set())
                    dotted = kinds == {"back"} and bits in _DOTTED
                    row.append(_DOTTED[bits] if dotted else _LINES[bits])
                    own.append("e:back" if kinds == {"back"} else "e:" + min(kinds - {"back"} or {"edge"}))
                else:
                    row.append(" ")
                    own.append("")
            rows.append("".join(row))
            owners.append(own)
        return rows, owners


def _draw_box(canvas: _Canvas, box: Box, lines: list[str], kind: str) -> None:
    owner = "n:" + box.name
    if kind in ("start", "end"):
        canvas.text(box.x, box.y, f"( {lines[0]} )", owner)
        return
    h, v, corners = ("═", "║", "╔╗╚╝") if kind == "subgraph" else ("─", "│", "┌┐└┘")
    inner = box.w - 2
    canvas.text(box.x, box.y, corners[0] + h * inner + corners[1], owner)
    for i, line in enumerate(lines):
        canvas.text(box.x, box.y + 1 + i, v + f" {line}".ljust(inner) + v, owner)
    canvas.text(box.x, box.y + box.h - 1, corners[2] + h * inner + corners[3], owner)


def layout(names: Sequence[str], edges: Sequence[Edge], labels: dict[str, list[str]],
           kinds: dict[str, str] | None = None) -> Drawing:
    """Lay out nodes ``names`` (START and END included, if drawn) joined by ``edges``.

    ``labels`` holds the text lines of each box; ``kinds`` marks boxes drawn differently:
    ``start``/``end`` (one line, no border) and ``subgraph`` (a double border).
    """
    kinds = kinds or {}
    names = list(dict.fromkeys(names))
    edges = list(dict.fromkeys(e for e in edges if e.src in names and e.dst in names))
    back = back_edges(names, edges)
    forward = [e for e in edges if (e.src, e.dst) not in back]
    layer = longest_path_layers(names, forward)
    # A loop back to the first layer has no channel above it to arrive through (only START
    # is there, and nothing leads to START).
    back_list = [e for e in edges if (e.src, e.dst) in back and layer[e.dst] > 0]

    size: dict[str, tuple[int, int]] = {}
    for n in names:
        lines = labels.get(n) or [n]
        if kinds.get(n) in ("start", "end"):
            size[n] = (len(lines[0]) + 4, 1)
        else:
            size[n] = (max(len(s) for s in lines) + 4, len(lines) + 2)

    # Placeholders for edges that skip layers: ("~", i, k) names never clash with node names.
    chains: dict[Edge, list[str]] = {}
    widths = {n: size[n][0] for n in names}
    n_layers = 1 + max(layer.values(), default=0)
    order: list[list[str]] = [[] for _ in range(n_layers)]
    for n in names:  # declaration order is the starting order
        order[layer[n]].append(n)
    for k, e in enumerate(forward):
        chain = [e.src]
        for li in range(layer[e.src] + 1, layer[e.dst]):
            dummy = f"\0{k}\0{li}"
            widths[dummy] = 1
            order[li].append(dummy)
            chain.append(dummy)
        chain.append(e.dst)
        chains[e] = chain
    down: dict[str, list[str]] = {}
    up: dict[str, list[str]] = {}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    order = order_layers(order, down, up)
    xs = place_columns(order, widths, down, up)

    # Channels between layers: a stub row, one row per track, an arrow row.
    layer_h = [max((size[n][1] for n in lay if n in size), default=1) for lay in order]
    right_edge = max((xs[n] + widths[n] for lay in order for n in lay), default=0)
    columns = {e: right_edge + 1 + 2 * i
               for i, e in enumerate(sorted(back_list, key=lambda e: layer[e.src] - layer[e.dst]))}

    def port_out(e: Edge) -> int:
        return ports_out[e]

    # Source ports, spread along the bottom border in the order of where the edges go.
    ports_out: dict[Edge, int] = {}
    by_src: dict[str, list[Edge]] = {}
    for e in [*forward, *back_list]:
        by_src.setdefault(e.src, []).append(e)

    def heading(e: Edge) -> float:
        if e in columns:
            return 1e9 + columns[e]
        nxt = chains[e][1]
        return xs[nxt] + widths[nxt] / 2

    for src, out in by_src.items():
        out.sort(key=heading)
        x0, w = xs[src], widths[src]
        for i, e in enumerate(out):
            pos = x0 + (i + 1) * w // (len(out) + 1)  # one edge: the centre, as Box.centre
            ports_out[e] = max(x0 + 1, min(x0 + w - 2, pos)) if w > 2 else x0
    centre = {n: xs[n] + widths[n] // 2 for lay in order for n in lay}

    # Horizontal runs per channel, then tracks.
    runs: dict[int, list[tuple[int, int, object]]] = {}  # channel -> (left, right, key)
    for e, chain in chains.items():
        for i, (a, b) in enumerate(itertools.pairwise(chain)):
            xa = port_out(e) if i == 0 else centre[a]
            xb = centre[b]
            if xa != xb:
                runs.setdefault(layer[e.src] + i, []).append((min(xa, xb), max(xa, xb), (e, i)))
    for e, col in columns.items():
        runs.setdefault(layer[e.src], []).append((port_out(e), col, (e, "out")))
        runs.setdefault(layer[e.dst] - 1, []).append((centre[e.dst], col, (e, "in")))
    track: dict[object, int] = {}
    n_tracks: dict[int, int] = {}
    for ch, items in runs.items():
        ends: list[int] = []  # rightmost cell used on each track
        for left, right, key in sorted(items, key=lambda r: (r[0], r[1])):
            t = next((i for i, end in enumerate(ends) if end < left - 1), len(ends))
            if t == len(ends):
                ends.append(right)
            else:
                ends[t] = right
            track[key] = t
        n_tracks[ch] = len(ends)

    top: list[int] = []
    y = 0
    for li in range(len(order)):
        top.append(y)
        y += layer_h[li] + 2 + n_tracks.get(li, 0)

    def track_row(ch: int, key: object) -> int:
        return top[ch] + layer_h[ch] + 1 + track[key]

    canvas = _Canvas()
    edge_cells: dict[tuple[str, str], list[tuple[int, int]]] = {}
    boxes: dict[str, Box] = {}
    for li, lay in enumerate(order):
        for n in lay:
            if n in size:
                boxes[n] = Box(n, xs[n], top[li], size[n][0], size[n][1], li)

    for e, chain in chains.items():
        start = (port_out(e), boxes[e.src].y + boxes[e.src].h)
        points = [(start[0], start[1] - 1), start]  # from the border, so the border gets a ┬
        for i, b in enumerate(chain[1:]):
            ch = layer[e.src] + i
            xa, xb = points[-1][0], centre[b]
            if (e, i) in track:
                row = track_row(ch, (e, i))
                points += [(xa, row), (xb, row)]
            bottom = top[ch + 1] - 1 if b == e.dst else top[ch + 1] + layer_h[ch + 1] - 1
            points.append((xb, bottom))
        cells = canvas.path(points, e.kind)
        _finish_edge(canvas, cells, e)
        edge_cells[(e.src, e.dst)] = cells[1:]  # the first cell is the source's border
    for e, col in columns.items():
        sx = port_out(e)
        ys = boxes[e.src].y + boxes[e.src].h
        row_out, row_in = track_row(layer[e.src], (e, "out")), track_row(layer[e.dst] - 1, (e, "in"))
        tx = centre[e.dst]
        points = [(sx, ys - 1), (sx, ys), (sx, row_out), (col, row_out), (col, row_in), (tx, row_in),
                  (tx, top[layer[e.dst]] - 1)]
        cells = canvas.path(points, "back")
        _finish_edge(canvas, cells, e, back=True)
        edge_cells[(e.src, e.dst)] = cells[1:]
    for box in boxes.values():
        _draw_box(canvas, box, labels.get(box.name) or [box.name], kinds.get(box.name, "node"))
    for e in [*chains, *columns]:  # the border cell an edge leaves through
        bx = boxes[e.src]
        if kinds.get(e.src) not in ("start", "end"):
            corner = "╤" if kinds.get(e.src) == "subgraph" else "┬"
            canvas.chars[(port_out(e), bx.y + bx.h - 1)] = corner
    rows, owners = canvas.render()
    layers = [[n for n in lay if n in boxes] for lay in order]
    return Drawing(rows, owners, boxes, [lay for lay in layers if lay], back_list, edge_cells)


def _finish_edge(canvas: _Canvas, cells: list[tuple[int, int]], e: Edge, back: bool = False) -> None:
    """The source's border cell is left to the box; mark the edge's kind and its arrow head."""
    first, stub, last = cells[0], cells[1], cells[-1]
    canvas.bits[first] = canvas.bits.get(first, 0)  # drawn over by the box border
    marker = MARKERS.get(e.kind)
    if marker and stub not in canvas.chars:
        canvas.text(stub[0], stub[1], marker, "e:" + e.kind)
    canvas.text(last[0], last[1], "▼", "e:back" if back else "e:arrow")
    if e.label:
        x, y = last
        free = all((x + 1 + i, y) not in canvas.chars and (x + 1 + i, y) not in canvas.bits
                   for i in range(len(e.label) + 1))
        if free:
            canvas.text(x + 1, y, e.label, "e:label")


def path_edges(steps: Sequence[Sequence[str]], *, finished: bool = False,
               joins: Iterable[tuple[Iterable[str], str]] = ()) -> set[tuple[str, str]]:
    """The edges a run took, from the nodes of its steps in order: START to the first step's
    nodes, each step's nodes to the next step's, and the last step's to END when ``finished``.
    Pairs that are not edges of the graph are left for the caller to ignore (parallel branches
    of one step pair with every node of the next).

    ``joins``: the graph's joins as ``(sources, target)``. A join runs once all its sources have
    finished, which may be steps after the first of them did: each source that ran since the
    join last ran (or since the start) leads to it, however many steps it waited.
    """
    out: set[tuple[str, str]] = set()
    sources_of: dict[str, set[str]] = {}
    for sources, target in joins:
        sources_of.setdefault(target, set()).update(sources)
    waiting: dict[str, set[str]] = {target: set() for target in sources_of}  # sources run since
    previous: Sequence[str] = [START]
    for nodes in steps:
        out.update((a, b) for a in previous for b in nodes)
        for target, ran in waiting.items():
            if target in nodes:
                out.update((source, target) for source in ran)
                ran.clear()
            ran.update(n for n in nodes if n in sources_of[target])  # these feed its next run
        previous = nodes
    if finished and steps:
        out.update((a, END) for a in previous)
    return out


def draw(graph: Graph, labels: Callable[[str], list[str]] | None = None) -> Drawing:
    """Lay out ``graph``: START, its nodes and END, every kind of edge.

    ``labels(name)`` gives a box's text lines (default :func:`box_lines`); the TUI adds its
    marks (breakpoints, visit counts) there.
    """
    names = [START, *graph.nodes, END]
    text = {n: (labels or (lambda m: box_lines(graph, m)))(n) for n in names}
    kinds = {START: "start", END: "end"}
    kinds.update({n: "subgraph" for n, node in graph.nodes.items() if node.subgraph is not None})
    return layout(names, graph_edges(graph), text, kinds)


def to_text(graph: Graph) -> str:
    """The layered drawing as plain text, with a title line (``workbench graph --format layered``)."""
    title = f"graph {graph.name}" + (f" — {graph.description}" if graph.description else "")
    return title + "\n" + draw(graph).text()

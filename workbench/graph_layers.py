"""Where a layered drawing's boxes go: steps 1, 2, 4 and 5 of the pipeline that
:mod:`workbench.graph_layout` describes, as pure functions over node names and edges (anything
with ``src`` and ``dst``): :func:`back_edges` (1), :func:`longest_path_layers` (2),
:func:`order_layers` with :func:`crossings` (4), :func:`place_columns` with :data:`GAP` (5).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from workbench.graph import END, START

GAP = 3  # columns between two neighbours in a layer


class Link(Protocol):
    """An edge as layering sees it: where it starts and where it ends."""

    @property
    def src(self) -> str: ...

    @property
    def dst(self) -> str: ...


def back_edges(names: Sequence[str], edges: Sequence[Link]) -> set[tuple[str, str]]:
    """Edges that close a loop, found by a depth-first walk from START in declaration order."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        succ[e.src].append(e.dst)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the walk's stack, 2 finished
    for root in names:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def longest_path_layers(names: Sequence[str], forward: Sequence[Link]) -> dict[str, int]:
    """Longest-path layer of every node over the loop-free edges; END alone at the bottom."""
    preds: dict[str, list[str]] = {n: [] for n in names}
    for e in forward:
        preds[e.dst].append(e.src)
    layer: dict[str, int] = {}

    def depth(n: str) -> int:
        # Iterative longest path (graphs are small, but recursion limits are not generous).
        todo = [n]
        while todo:
            cur = todo[-1]
            if cur in layer:
                todo.pop()
                continue
            missing = [p for p in preds[cur] if p not in layer]
            if missing:
                todo.extend(missing)
                continue
            # A node nothing leads to (only START, in a valid graph) starts the drawing.
            layer[cur] = 1 + max((layer[p] for p in preds[cur]), default=-1 if cur == START else 0)
            todo.pop()
        return layer[n]

    for n in names:
        depth(n)
    if END in layer:
        layer[END] = 1 + max((v for k, v in layer.items() if k != END), default=-1)
    return layer


def crossings(order: list[list[str]], links: dict[str, list[str]]) -> int:
    total = 0
    for upper, lower in itertools.pairwise(order):
        pos = {n: i for i, n in enumerate(lower)}
        pairs = [(i, pos[d]) for i, n in enumerate(upper) for d in links.get(n, []) if d in pos]
        total += sum(1 for a in range(len(pairs)) for b in range(a + 1, len(pairs))
                     if (pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0)
    return total


def order_layers(order: list[list[str]], down: dict[str, list[str]], up: dict[str, list[str]]) -> list[list[str]]:
    """Barycentre sweeps; returns the order with the fewest crossings seen."""
    best, best_cross = [list(layer) for layer in order], crossings(order, down)
    current = [list(layer) for layer in order]
    for sweep in range(8):
        going_down = sweep % 2 == 0
        indices = range(1, len(current)) if going_down else range(len(current) - 2, -1, -1)
        for i in indices:
            ref = current[i - 1] if going_down else current[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            nbrs = up if going_down else down

            def key(item: tuple[int, str], pos: dict[str, int] = pos, nbrs: dict[str, list[str]] = nbrs) -> float:
                k, n = item
                near = [pos[m] for m in nbrs.get(n, []) if m in pos]
                return sum(near) / len(near) if near else float(k)

            current[i] = [n for _, n in sorted(enumerate(current[i]), key=key)]
        cross = crossings(current, down)
        if cross < best_cross:
            best, best_cross = [list(layer) for layer in current], cross
    return best


def place_columns(order: list[list[str]], widths: dict[str, int], down: dict[str, list[str]],
           up: dict[str, list[str]]) -> dict[str, int]:
    """Left column of every item: towards its neighbours' centres, never closer than GAP."""
    x: dict[str, int] = {}
    for layer in order:
        pos = 0
        for n in layer:
            x[n] = pos
            pos += widths[n] + GAP

    def centre(n: str) -> int:
        return x[n] + widths[n] // 2  # the column an edge enters or leaves through

    def settle(layer: list[str], want: dict[str, float]) -> None:
        # Two feasible packings (pushing right, pushing left); their mean is feasible too and
        # does not drift to one side.
        right: list[float] = []
        for i, n in enumerate(layer):
            lo = right[i - 1] + widths[layer[i - 1]] + GAP if i else -1e9
            right.append(max(want[n], lo))
        left: list[float] = [0.0] * len(layer)
        for i in range(len(layer) - 1, -1, -1):
            n = layer[i]
            hi = left[i + 1] - widths[n] - GAP if i + 1 < len(layer) else 1e9
            left[i] = min(want[n], hi)
        for i, n in enumerate(layer):
            x[n] = round((right[i] + left[i]) / 2)

    for sweep in range(4):
        going_down = sweep % 2 == 0
        layers = order[1:] if going_down else list(reversed(order[:-1]))
        nbrs = up if going_down else down
        for layer in layers:
            want = {}
            for n in layer:
                near = [centre(m) for m in nbrs.get(n, [])]
                want[n] = float(round(sum(near) / len(near)) if near else centre(n)) - widths[n] // 2
            settle(layer, want)
    shift = min(x.values(), default=0)
    return {n: v - shift for n, v in x.items()}

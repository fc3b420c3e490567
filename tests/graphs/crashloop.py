"""A long loop with a run-time fan-out, no model calls: the crash test's workload.

``tick`` runs LIMIT times, appending one item per step; every 10th tick fans out to 2-4
``part`` branches (the width depends on the state), which join back into ``tick``.
Each node does a little real work (hashing) so a SIGKILL lands at varied points.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Send, add, append

LIMIT = 60


class LoopState(TypedDict):
    n: int
    items: Annotated[list[str], append]
    parts: Annotated[list[str], append]
    total: Annotated[int, add]


def work(seed: str, rounds: int = 3000) -> str:
    h = seed.encode()
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    return h.hex()[:12]


graph = Graph("crashloop", LoopState, max_steps=500, description="60 ticks with fan-outs, no LLM")


@graph.node
def tick(state: LoopState) -> dict[str, Any]:
    n = state["n"] + 1
    return {"n": n, "items": [f"{n}:{work(str(n))}"], "total": n}


def after_tick(state: LoopState) -> Any:
    n = state["n"]
    if n >= LIMIT:
        return END
    if n % 10 == 0:
        width = 2 + (n // 10) % 3
        return [Send("part", {"n": n, "k": k}) for k in range(width)]
    return "tick"


@graph.node
def part(arg: dict[str, Any]) -> dict[str, Any]:
    label = f"{arg['n']}.{arg['k']}"
    return {"parts": [f"{label}:{work(label)}"], "total": arg["k"]}


graph.edge(START, "tick")
graph.route("tick", after_tick, targets=["tick", "part", END])
graph.edge("part", "tick")

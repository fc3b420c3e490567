"""Crash matrix: fan-out. Each round, ``plan`` sends 3-5 parallel ``branch`` tasks (each with a
recorded tool call and an appended result), ``collect`` gathers them, then the fixed parallel pair
``left``/``right`` runs and is joined back into ``plan``. A kill in a branch step leaves some
branches finished (recorded) and others not."""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Send, add, append, tool

ROUNDS = 4


def _kit() -> Any:
    """The crash-matrix driver (tests/reliability/crash_driver.py) when it runs this, else None."""
    return sys.modules.get("crash_driver")


def checkpoint(site: str, ctx: Any = None) -> None:
    kit = _kit()
    if kit is not None:
        kit.node_point(site, ctx)


@tool
def stamp(label: str) -> str:
    """The side effect: returns the effect's nonce (so the recording names the effect it made)."""
    kit = _kit()
    return str(kit.effect(label)) if kit is not None else label


class Fan(TypedDict):
    round: int
    results: Annotated[list[str], append]
    sides: Annotated[list[str], append]
    log: Annotated[list[str], append]
    total: Annotated[int, add]


graph = Graph("crash_fanout", Fan, max_steps=1000, description="Send fan-outs, a collector, a static join")


def width(r: int) -> int:
    return 3 + r % 3


@graph.node
def plan(state: Fan, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    r = state["round"] + 1
    checkpoint("node.exit", ctx)
    return {"round": r, "log": [f"plan {r}"]}


def fan(state: Fan) -> Any:
    r = state["round"]
    if r > ROUNDS:
        return END
    return [Send("branch", {"round": r, "k": k}) for k in range(width(r))]


@graph.node
def branch(arg: dict[str, Any], ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    label = f"b{arg['round']}.{arg['k']}"
    stamp(label)
    digest = hashlib.sha256(label.encode()).hexdigest()[:10]
    checkpoint("node.exit", ctx)
    return {"results": [f"{label}:{digest}"], "total": arg["k"] + 1}


@graph.node
def collect(state: Fan, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    r = state["round"]
    mine = sorted(x for x in state["results"] if x.startswith(f"b{r}."))
    checkpoint("node.exit", ctx)
    return {"log": [f"collect {r}: {len(mine)}"]}


@graph.node
def left(state: Fan, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    stamp(f"left-{state['round']}")
    checkpoint("node.exit", ctx)
    return {"sides": [f"L{state['round']}"], "total": 100}


@graph.node
def right(state: Fan, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    stamp(f"right-{state['round']}")
    checkpoint("node.exit", ctx)
    return {"sides": [f"R{state['round']}"], "total": 1000}


graph.edge(START, "plan")
graph.route("plan", fan, targets=["branch", END])
graph.edge("branch", "collect")
graph.edge("collect", "left")
graph.edge("collect", "right")
graph.join(["left", "right"], "plan")

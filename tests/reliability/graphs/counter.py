"""Crash matrix: sequential steps. ``tick`` runs STEPS times; each step makes one recorded tool
call (a side effect logged outside the store) and appends one item, so a lost or repeated step
shows as a missing or duplicate item, and a repeated recorded call as a second effect."""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, add, append, tool

STEPS = 24


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


class Counter(TypedDict):
    n: int
    items: Annotated[list[str], append]
    receipts: Annotated[list[str], append]
    total: Annotated[int, add]


graph = Graph("crash_counter", Counter, max_steps=1000, description="sequential steps with a tool call each")


@graph.node
def tick(state: Counter, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    n = state["n"] + 1
    stamp(f"tick-{n}")
    digest = hashlib.sha256(str(n).encode()).hexdigest()[:12]
    checkpoint("node.exit", ctx)
    return {"n": n, "items": [f"{n}:{digest}"], "receipts": [f"tick-{n}"], "total": n}


graph.edge(START, "tick")
graph.route("tick", lambda s: END if s["n"] >= STEPS else "tick", targets=["tick", END])

"""Crash matrix: subgraphs. ``count`` is a subgraph node whose graph loops ``INNER`` steps, each
with one recorded tool call (a side effect logged outside the store) and one appended item;
``delegate`` runs a second subgraph from its Python body (``await Runner(sub).arun(...)``),
``BODY`` steps the same way. A killed process's resume must continue each child run from its
last committed inner step: a lost or repeated inner step shows as a missing or duplicate item,
a repeated recorded call as a second effect."""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Runner, append, tool

INNER = 8
BODY = 5


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


class Nested(TypedDict):
    n: int
    items: Annotated[list[str], append]
    receipts: Annotated[list[str], append]


def looping(name: str, steps: int) -> Graph:
    sub = Graph(name, Nested, max_steps=1000)

    @sub.node
    def tick(state: Nested, ctx: Any) -> dict[str, Any]:
        checkpoint("node.enter", ctx)
        n = state["n"] + 1
        stamp(f"{name}-{n}")
        digest = hashlib.sha256(f"{name}{n}".encode()).hexdigest()[:12]
        checkpoint("node.exit", ctx)
        return {"n": n, "items": [f"{name}:{n}:{digest}"], "receipts": [f"{name}-{n}"]}

    sub.edge(START, "tick")
    sub.route("tick", lambda s: END if s["n"] >= steps else "tick", targets=["tick", END])
    return sub


counting = looping("crash_inner", INNER)
body = looping("crash_body", BODY)

graph = Graph("crash_nested", Nested, max_steps=1000, description="a subgraph node and a node-body subgraph")


@graph.node
def prep(state: Nested, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    stamp("prep")
    checkpoint("node.exit", ctx)
    return {"items": ["prep"]}


graph.add_node("count", counting)


async def delegate(state: Nested, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    result = await Runner(body).arun({"n": 0})
    checkpoint("node.exit", ctx)
    return {"items": [f"delegated {result.state['n']}"]}


graph.add_node("delegate", delegate, subgraphs=[body])
graph.sequence(START, "prep", "count", "delegate", END)

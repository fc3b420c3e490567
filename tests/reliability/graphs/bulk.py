"""Crash matrix: the writer's flush. Every step does a little work and carries 64 KB values (a set
key and an appended item), and every third step fans out to three branches appending 64 KB each,
so the background writer loads big batches while the run goes on."""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Send, append, tool

STEPS = 10
SIZE = 64 * 1024


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


def work(label: str, rounds: int) -> str:
    """Some real work per step, so that the background writer loads batches while the run goes on."""
    h = label.encode()
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    return h.hex()[:8]


def blob(label: str) -> str:
    h = hashlib.sha256(label.encode()).hexdigest()
    return (h * (SIZE // len(h) + 1))[:SIZE]


class Bulk(TypedDict):
    n: int
    latest: str
    chunks: Annotated[list[str], append]
    shards: Annotated[list[str], append]


graph = Graph("crash_bulk", Bulk, max_steps=100, description="64 KB values every step")


@graph.node
def grow(state: Bulk, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    n = state["n"] + 1
    stamp(f"grow-{n}")
    # Every fourth step is slow enough for the writer to catch up (and roll its journal).
    latest = blob(f"latest {n} {work(str(n), 150000 if n % 4 == 2 else 5000)}")
    checkpoint("node.exit", ctx)
    return {"n": n, "latest": latest, "chunks": [blob(f"chunk {n}")]}


def after_grow(state: Bulk) -> Any:
    n = state["n"]
    if n >= STEPS:
        return END
    if n % 3 == 0:
        return [Send("shard", {"n": n, "k": k}) for k in range(3)]
    return "grow"


@graph.node
def shard(arg: dict[str, Any], ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    label = f"shard {arg['n']}.{arg['k']}"
    stamp(label)
    checkpoint("node.exit", ctx)
    return {"shards": [blob(label)]}


graph.edge(START, "grow")
graph.route("grow", after_grow, targets=["grow", "shard", END])
graph.edge("shard", "grow")

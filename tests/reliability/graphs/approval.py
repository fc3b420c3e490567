"""Crash matrix: a human answer. Three ``prepare`` steps, then ``ask`` makes a recorded tool call,
waits for a human (``interrupt``), applies the answer with a second recorded tool call, and three
``finish`` steps follow. The answer must apply exactly once whatever is killed while it is given."""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt, tool

BEFORE = 3
AFTER = 3


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


class Approval(TypedDict):
    n: int
    log: Annotated[list[str], append]
    answers: Annotated[list[str], append]


graph = Graph("crash_approval", Approval, max_steps=100, description="steps around a human answer")


@graph.node
def prepare(state: Approval, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    n = state["n"] + 1
    stamp(f"prepare-{n}")
    checkpoint("node.exit", ctx)
    return {"n": n, "log": [f"prepare {n}"]}


@graph.node
def ask(state: Approval, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    stamp("ask")
    reply = interrupt({"question": "approve?", "n": state["n"]})
    checkpoint("node.answered", ctx)
    stamp(f"apply:{reply}")
    checkpoint("node.exit", ctx)
    return {"answers": [str(reply)], "log": ["asked"]}


@graph.node
def finish(state: Approval, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    n = state["n"] + 1
    stamp(f"finish-{n}")
    checkpoint("node.exit", ctx)
    return {"n": n, "log": [f"finish {n}"]}


graph.edge(START, "prepare")
graph.route("prepare", lambda s: "ask" if s["n"] >= BEFORE else "prepare", targets=["prepare", "ask"])
graph.edge("ask", "finish")
graph.route("finish", lambda s: END if s["n"] >= BEFORE + AFTER else "finish", targets=["finish", END])

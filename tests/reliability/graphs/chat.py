"""Crash matrix: model calls. Each of TURNS steps makes two calls to the offline demo model
``workbench-demo/assistant`` through ``ctx.llm``. Under the crash driver each answer carries a
nonce naming the call that produced it (`` #fx-...``); the node keeps the answer without it, so
the state is the same whichever process made the call, and the recording says which call it kept."""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append

TURNS = 5
MODEL = "workbench-demo/assistant"


def checkpoint(site: str, ctx: Any = None) -> None:
    kit = sys.modules.get("crash_driver")
    if kit is not None:
        kit.node_point(site, ctx)


def answer(ctx: Any, n: int, part: str) -> str:
    reply = ctx.llm([
        {"role": "system", "content": "Draft a reply to the customer."},
        {"role": "user", "content": f"Customer name: Ada {n}\nCategory: billing\nPart: {part}\nTurn {n}."},
    ], model=MODEL)
    return str(reply.text).split(" #fx-")[0]


class Chat(TypedDict):
    n: int
    replies: Annotated[list[str], append]


graph = Graph("crash_chat", Chat, max_steps=100, description="two demo-model calls per step")


@graph.node
def turn(state: Chat, ctx: Any) -> dict[str, Any]:
    checkpoint("node.enter", ctx)
    n = state["n"] + 1
    first = answer(ctx, n, "greeting")
    checkpoint("node.middle", ctx)
    second = answer(ctx, n, "follow-up")
    checkpoint("node.exit", ctx)
    return {"n": n, "replies": [f"{n}a:{first}", f"{n}b:{second}"]}


graph.edge(START, "turn")
graph.route("turn", lambda s: END if s["n"] >= TURNS else "turn", targets=["turn", END])

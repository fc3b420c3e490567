"""Crash matrix: the runs of the import family's trace file. Importing this module writes a
marker file when ``$CRASH_TRIPWIRE`` is set: importing a trace file, listing or showing its runs
must never run a graph's code, so in those trials the marker must never appear."""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt

if os.environ.get("CRASH_TRIPWIRE"):
    with open(os.environ["CRASH_TRIPWIRE"], "a", encoding="utf-8") as _fh:
        _fh.write(f"graph code imported by pid {os.getpid()}\n")

STEPS = 6


class Trip(TypedDict):
    n: int
    ask: bool
    items: Annotated[list[str], append]
    answer: str


graph = Graph("crash_tripwire", Trip, max_steps=100, description="a small loop that may ask a human")


@graph.node
def step(state: Trip) -> dict[str, Any]:
    n = state["n"] + 1
    return {"n": n, "items": [f"{n}:" + "x" * (512 * n)]}


@graph.node
def ask(state: Trip) -> dict[str, Any]:
    return {"answer": str(interrupt({"question": "ok?"}))}


def after(state: Trip) -> Any:
    if state["n"] < STEPS:
        return "step"
    return "ask" if state["ask"] else END


graph.edge(START, "step")
graph.route("step", after, targets=["step", "ask", END])
graph.edge("ask", END)

"""A graph whose middle step waits for the test: ``first`` → ``gate`` → ``last``.

``gate`` blocks until a line arrives on the FIFO named by ``$WORKBENCH_TEST_GATE`` (when set),
so a test decides exactly when a recording process moves on — no timers involved.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append


class GatedState(TypedDict):
    tag: str
    log: Annotated[list[str], append]


graph = Graph("gated", GatedState, description="first, wait for the test's gate, last")


@graph.node
def first(state: GatedState) -> dict[str, Any]:
    return {"log": [f"first {state['tag']}"]}


@graph.node
def gate(state: GatedState) -> dict[str, Any]:
    fifo = os.environ.get("WORKBENCH_TEST_GATE")
    if fifo:
        with open(fifo, encoding="utf-8") as fh:
            fh.readline()
    return {"log": ["gate"]}


@graph.node
def last(state: GatedState) -> dict[str, Any]:
    return {"log": ["last"]}


graph.sequence(START, "first", "gate", "last", END)

"""Small graphs without model calls for the CLI tests.

``graph`` (name "simple"): greet → ask (interrupts when input has "ask": true) → finish.
``failing``: a node that raises. ``other``: a second graph, selected as simple.py:other.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt


class SimpleState(TypedDict):
    name: str
    ask: bool
    log: Annotated[list[str], append]
    answer: str


graph = Graph("simple", SimpleState, description="greet, maybe ask a human, finish")


@graph.node
def greet(state: SimpleState) -> dict[str, Any]:
    return {"log": [f"hello {state['name'] or 'world'}"]}


@graph.node
def ask(state: SimpleState) -> dict[str, Any]:
    if not state["ask"]:
        return {"log": ["no question"]}
    reply = interrupt({"question": "what is the answer?"})
    return {"answer": str(reply), "log": ["asked"]}


@graph.node
def finish(state: SimpleState) -> dict[str, Any]:
    return {"log": ["done"]}


graph.sequence(START, "greet", "ask", "finish", END)


class FailState(TypedDict):
    x: int


failing = Graph("failing", FailState)


@failing.node
def boom(state: FailState) -> dict[str, Any]:
    raise ValueError("boom at node")


failing.sequence(START, "boom", END)


other = Graph("other", FailState)


@other.node
def inc(state: FailState) -> dict[str, Any]:
    return {"x": state["x"] + 1}


other.sequence(START, "inc", END)

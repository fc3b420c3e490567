"""The two workloads, written once for workbench and once for LangGraph, as alike as the APIs allow.

W1 — a loop of ``n`` steps: one node appends one short string to a list in the state and a
router sends the run back to the same node until the list holds ``n`` items (``n`` supersteps in
both runtimes).

Fan-out — ``plan`` routes to ``width`` branches of ``work`` (each with its own argument: a
workbench ``Send`` / a LangGraph ``Send``), each branch appends one number, then ``join`` runs
once after all of them and counts the results.

LangGraph is imported only inside the builders, so ``import bench`` stays cheap.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Send, append

# ----------------------------------------------------------------- W1: the 1,000-step loop


class LoopState(TypedDict):
    items: Annotated[list[str], append]


def wb_loop(n: int) -> Graph:
    """workbench: ``step`` returns ``{"items": ["x"]}`` and routes to itself until n items."""
    g = Graph(f"w1_loop_{n}", LoopState, max_steps=n)

    @g.node
    def step(state: LoopState) -> dict[str, Any]:
        return {"items": ["x"]}

    def again(state: LoopState) -> str:
        return "step" if len(state["items"]) < n else END

    g.edge(START, "step")
    g.route("step", again, targets=["step", END])
    return g.validate()


class LgLoopState(TypedDict):
    items: Annotated[list[str], operator.add]


def lg_loop(n: int, checkpointer: Any = None) -> Any:
    """LangGraph: the same loop with ``Annotated[list[str], operator.add]``."""
    from langgraph.graph import END as LG_END
    from langgraph.graph import START as LG_START
    from langgraph.graph import StateGraph

    def step(state: LgLoopState) -> dict[str, Any]:
        return {"items": ["x"]}

    def again(state: LgLoopState) -> str:
        return "step" if len(state["items"]) < n else LG_END

    b = StateGraph(LgLoopState)
    b.add_node("step", step)
    b.add_edge(LG_START, "step")
    b.add_conditional_edges("step", again, ["step", LG_END])
    return b.compile(checkpointer=checkpointer)


# ----------------------------------------------------------------- fan-out + join


class FanState(TypedDict):
    results: Annotated[list[int], append]
    total: int


def wb_fanout(width: int) -> Graph:
    """workbench: ``plan`` → ``width`` × ``Send("work", i)`` → ``join`` (runs once) → END."""
    g = Graph(f"fanout_{width}", FanState, max_steps=10)

    @g.node
    def plan(state: FanState) -> None:
        return None

    @g.node
    def work(i: int) -> dict[str, Any]:
        return {"results": [i * 2]}

    @g.node
    def join(state: FanState) -> dict[str, Any]:
        return {"total": len(state["results"])}

    g.edge(START, "plan")
    g.route("plan", lambda s: [Send("work", i) for i in range(width)], targets=["work"])
    g.edge("work", "join")
    g.edge("join", END)
    return g.validate()


class LgFanState(TypedDict):
    results: Annotated[list[int], operator.add]
    total: int


def lg_fanout(width: int, checkpointer: Any = None) -> Any:
    """LangGraph: the same fan-out with ``Send`` from a conditional edge and a plain edge join."""
    from langgraph.graph import END as LG_END
    from langgraph.graph import START as LG_START
    from langgraph.graph import StateGraph
    from langgraph.types import Send as LgSend

    def plan(state: LgFanState) -> dict[str, Any]:
        return {}

    def work(i: int) -> dict[str, Any]:
        return {"results": [i * 2]}

    def join(state: LgFanState) -> dict[str, Any]:
        return {"total": len(state["results"])}

    b = StateGraph(LgFanState)
    b.add_node("plan", plan)
    b.add_node("work", work)  # type: ignore[arg-type]  # a Send branch gets its own argument
    b.add_node("join", join)
    b.add_edge(LG_START, "plan")
    b.add_conditional_edges("plan", lambda s: [LgSend("work", i) for i in range(width)], ["work"])
    b.add_edge("work", "join")
    b.add_edge("join", LG_END)
    return b.compile(checkpointer=checkpointer)

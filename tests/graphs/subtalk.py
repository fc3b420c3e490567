"""A conversation whose whole turn runs inside a subgraph: the root graph's only node, ``talk``,
is the ``subtalk_inner`` graph, whose ``reply`` echoes the last message; a message starting with
``ask`` makes its ``confirm`` wait for a human — a question asked inside the subgraph.

Input per turn: ``{"messages": "text"}`` (one item appended) or a list of texts.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt


class TalkState(TypedDict):
    messages: Annotated[list[str], append]


inner = Graph("subtalk_inner", TalkState, description="echo the last message; 'ask …' waits for a human")


@inner.node
def reply(state: TalkState) -> dict[str, Any]:
    return {"messages": [f"echo {state['messages'][-1]}"]}


def after_reply(state: TalkState) -> str:
    said = [m for m in state["messages"] if not m.startswith(("echo ", "confirmed "))]
    return "confirm" if said and said[-1].startswith("ask") else END


inner.route("reply", after_reply, targets=["confirm", END])


@inner.node
def confirm(state: TalkState) -> dict[str, Any]:
    return {"messages": [f"confirmed {interrupt({'question': 'sure?'})}"]}


inner.edge(START, "reply")
inner.edge("confirm", END)

graph = Graph("subtalk", TalkState, inputs=["messages"], description="a conversation run by a subgraph")
graph.add_node("talk", inner)
graph.sequence(START, "talk", END)

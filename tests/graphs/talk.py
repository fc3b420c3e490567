"""A conversation without a model: ``reply`` echoes the last message; a message starting with
``ask`` makes ``confirm`` wait for a human, one starting with ``fail`` makes ``reply`` fail.

Input per turn: ``{"messages": "text"}`` (one item appended) or a list of texts.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, add, append, interrupt


class TalkState(TypedDict):
    messages: Annotated[list[str], append]
    turns: Annotated[int, add]
    mood: str


graph = Graph("talk", TalkState, max_steps=2, inputs=["messages", "mood"],
              description="echo each message; 'ask …' waits for a human, 'fail …' fails")


@graph.node
def reply(state: TalkState) -> dict[str, Any]:
    last = state["messages"][-1]
    if last.startswith("fail"):
        raise RuntimeError(f"cannot answer {last!r}")
    return {"messages": [f"echo {last}"], "turns": 1}


def after_reply(state: TalkState) -> str:
    said = [m for m in state["messages"] if not m.startswith("echo ")]
    return "confirm" if said and said[-1].startswith("ask") else END


graph.route("reply", after_reply, targets=["confirm", END])


@graph.node
def confirm(state: TalkState) -> dict[str, Any]:
    answer = interrupt({"question": "sure?"})
    return {"messages": [f"confirmed {answer}"]}


graph.edge(START, "reply")
graph.edge("confirm", END)

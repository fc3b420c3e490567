"""Chat assistant — a multi-turn conversation, one run per turn.

The first turn is a run; every next turn *continues* the last one
(``workbench run chat --continue last --input ...``): a new run whose state starts from the
previous turn's, with the new message appended to ``messages`` (an ``append`` key), so the
model sees the whole conversation. The runs form one chain in the trace store that can be
listed, shown, replayed, forked at any turn, diffed and exported.

Asking to *order* something makes the assistant ask a human to confirm (the run waits). Answer
it with ``workbench resume``, or just send the next message: the question is then superseded
(closed unanswered, the waiting run marked ``superseded``) and the conversation goes on.

Input: ``{"messages": [{"role": "user", "content": "Hi, my name is Ada"}]}`` — one message (or a
list of them) per turn.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, add, append, interrupt

SYSTEM = "You are a friendly chat assistant. Keep answers short and remember what the user told you."


class ChatState(TypedDict):
    messages: Annotated[list[dict[str, Any]], append]
    turns: Annotated[int, add]


graph = Graph("chat", ChatState, max_steps=10, inputs=["messages"],
              description="a multi-turn chat: one run per turn, each continuing the last (--continue)")


def last_user_message(state: ChatState) -> str:
    said = [m.get("content") or "" for m in state["messages"] if m.get("role") == "user"]
    return str(said[-1]) if said else ""


@graph.node
def respond(state: ChatState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([{"role": "system", "content": SYSTEM}, *state["messages"]])
    return {"messages": [{"role": "assistant", "content": answer.text}], "turns": 1}


def after_respond(state: ChatState) -> str:
    return "confirm" if re.search(r"\border\b", last_user_message(state), flags=re.I) else END


graph.route("respond", after_respond, targets=["confirm", END])


@graph.node
def confirm(state: ChatState) -> dict[str, Any]:
    answer = interrupt({"question": f"Place this order? {last_user_message(state)!r}", "options": ["yes", "no"]})
    placed = str(answer).strip().lower() in ("yes", "y", "ok")
    text = "Done: the order is placed." if placed else "All right, I did not place the order."
    return {"messages": [{"role": "assistant", "content": text}]}


graph.edge(START, "respond")
graph.edge("confirm", END)

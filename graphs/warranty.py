"""Warranty claims — a graph with a subgraph that asks a human.

intake (read the amount) → review, a subgraph: assess the request with the model → approve (a
human decides when the amount is over the limit; smaller ones are approved automatically) →
record the decision → then, back in the parent, reply to the customer with the model.

The review runs as a child run of the task that called it: its steps are recorded with their
paths (review/assess, review/approve, review/record), a breakpoint can stop before one of them
(--break-before review/approve), and the human's answer reaches review/approve when the run is
resumed, without assessing again.

Input: {"message": str, "customer_id": str (optional)}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt

AUTO_APPROVE_LIMIT_USD = 50


class ReviewState(TypedDict):
    message: str
    amount: float
    risk: str
    decision: str
    notes: Annotated[list[str], append]


_review = Graph("refund_review", ReviewState, description="assess a refund, have it approved, record the decision")


@_review.node
def assess(state: ReviewState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Assess the risk of this refund request in one short sentence."},
        {"role": "user", "content": f"{state['message']} (amount: ${state['amount']:.2f})"},
    ])
    return {"risk": answer.text.strip(), "notes": [f"assessed ${state['amount']:.2f}"]}


@_review.node
def approve(state: ReviewState) -> dict[str, Any]:
    if state["amount"] <= AUTO_APPROVE_LIMIT_USD:
        return {"decision": "approved", "notes": ["approved automatically"]}
    answer = interrupt({"question": f"Approve a refund of ${state['amount']:.2f}? (yes/no)",
                        "message": state["message"], "risk": state["risk"]})
    decision = "approved" if str(answer).strip().lower() in ("yes", "y", "approve", "approved") else "declined"
    return {"decision": decision, "notes": [f"{decision} by a human"]}


@_review.node
def record(state: ReviewState) -> dict[str, Any]:
    return {"notes": [f"decision recorded: {state['decision']}"]}


_review.sequence(START, "assess", "approve", "record", END)


class RefundState(TypedDict):
    message: str
    customer_id: str
    amount: float
    risk: str
    decision: str
    notes: Annotated[list[str], append]
    reply: str


graph = Graph("warranty", RefundState, max_steps=10, inputs=["message", "customer_id"],
              description="read a warranty refund claim, review it in a subgraph (a human approves large ones), reply")


@graph.node
def intake(state: RefundState) -> dict[str, Any]:
    found = re.search(r"\$\s*(\d+(?:\.\d+)?)", state["message"])
    return {"amount": float(found.group(1)) if found else 0.0, "notes": ["request read"]}


graph.add_node("review", _review)  # the subgraph (named with _ so it is not listed on its own)


@graph.node
def reply(state: RefundState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Write a two-sentence reply telling the customer the decision on their refund."},
        {"role": "user", "content": f"Decision: {state['decision']}. Request: {state['message']}"},
    ])
    return {"reply": answer.text.strip()}


graph.sequence(START, "intake", "review", "reply", END)

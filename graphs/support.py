"""Customer-support assistant — the seed document's example workflow.

classify the message → fetch the customer's account (a tool) → retrieve policy snippets →
draft a reply with the model → check it against a safety rule, redrafting when it fails
(at most three drafts) → send it; escalations, refunds over the limit, and drafts that never
pass go to a human instead (the run pauses until someone answers).

Input: {"message": str, "customer_id": str (optional)}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, RetryPolicy, add, append, interrupt, tool

REFUND_LIMIT_USD = 100
MAX_DRAFTS = 3
CATEGORIES = ["billing", "refund", "technical", "escalation", "general"]
FORBIDDEN = ["guarantee", "full refund", "legal advice"]

# A stand-in CRM. A real graph would call an API here.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "C-1001": {"id": "C-1001", "name": "Ada Lovelace", "tier": "pro", "open_tickets": 0},
    "C-1002": {"id": "C-1002", "name": "Grace Hopper", "tier": "basic", "open_tickets": 2},
    "C-1003": {"id": "C-1003", "name": "Alan Turing", "tier": "enterprise", "open_tickets": 1},
}

POLICIES = {
    "refund": "Refunds are reviewed by billing within two business days; never promise one in advance.",
    "billing": "Duplicate charges are reversed after billing confirms them.",
    "technical": "Suggest a password reset first; ask for a screenshot before escalating.",
    "escalation": "Threats of legal action and requests for a manager go to a human agent.",
    "general": "Answer politely and route to the right team.",
}


class SupportState(TypedDict):
    message: str
    customer_id: str
    category: str
    account: dict[str, Any]
    policies: Annotated[list[str], append]
    draft: str
    drafts: Annotated[int, add]
    safety_issues: list[str]
    reply: str
    handled_by: str


graph = Graph("support", SupportState, max_steps=30, inputs=["message", "customer_id"],
              description="classify, look up, draft, check, send or hand off to a human")


@graph.node(retry=RetryPolicy(attempts=3, initial_delay=0.2))
def classify(state: SupportState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Classify the customer's message. Answer with one word.\n"
                                      f"Categories: {', '.join(CATEGORIES)}"},
        {"role": "user", "content": state["message"]},
    ])
    category = answer.text.strip().lower()
    return {"category": category if category in CATEGORIES else "general"}


@tool
def crm_lookup(customer_id: str) -> dict[str, Any]:
    """The CRM call: recorded like a model call, and served from the recording on replay."""
    return ACCOUNTS.get(customer_id, {"id": customer_id, "name": None, "tier": "unknown", "open_tickets": 0})


@graph.node(retry=RetryPolicy(attempts=3, initial_delay=0.2), timeout=5)
def fetch_account(state: SupportState) -> dict[str, Any]:
    return {"account": crm_lookup(state["customer_id"] or "anonymous")}


@graph.node
def retrieve_policy(state: SupportState) -> dict[str, Any]:
    return {"policies": [POLICIES[state["category"]]]}


def refund_amount(message: str) -> float:
    """The largest dollar amount mentioned in the message (0 when none)."""
    amounts = [float(m) for m in re.findall(r"\$\s?(\d+(?:\.\d+)?)", message)]
    return max(amounts, default=0.0)


def after_policy(state: SupportState) -> str:
    if state["category"] == "escalation":
        return "handoff"
    if state["category"] == "refund" and refund_amount(state["message"]) > REFUND_LIMIT_USD:
        return "handoff"
    return "draft"


graph.route("retrieve_policy", after_policy, targets=["draft", "handoff"])


@graph.node
def draft(state: SupportState, ctx: Any) -> dict[str, Any]:
    name = (state["account"] or {}).get("name") or "there"
    feedback = ""
    if state["safety_issues"]:
        feedback = "\nSafety feedback: the last draft said " + ", ".join(state["safety_issues"]) + \
                   ". Do not promise outcomes."
    reply = ctx.llm([
        {"role": "system", "content": "You draft a short, friendly support reply. Follow the policies."},
        {"role": "user", "content": f"Category: {state['category']}\nCustomer name: {name}\n"
                                    f"Policies: {' '.join(state['policies'])}\n"
                                    f"Message: {state['message']}{feedback}"},
    ])
    return {"draft": reply.text, "drafts": 1}


@graph.node
def check(state: SupportState) -> dict[str, Any]:
    text = state["draft"].lower()
    return {"safety_issues": [f"'{w}'" for w in FORBIDDEN if w in text]}


def after_check(state: SupportState) -> str:
    if not state["safety_issues"]:
        return "send"
    return "draft" if state["drafts"] < MAX_DRAFTS else "handoff"


graph.route("check", after_check, targets=["send", "draft", "handoff"])


@graph.node
def send(state: SupportState) -> dict[str, Any]:
    return {"reply": state["draft"], "handled_by": "assistant"}


@graph.node
def handoff(state: SupportState) -> dict[str, Any]:
    answer = interrupt({
        "question": "This conversation needs a human. Type the reply to send (or 'approve' to send the draft).",
        "category": state["category"],
        "message": state["message"],
        "draft": state["draft"] or None,
    })
    text = answer.get("reply") if isinstance(answer, dict) else answer
    if isinstance(text, str) and text.strip().lower() == "approve" and state["draft"]:
        text = state["draft"]
    return {"reply": str(text), "handled_by": "human"}


graph.sequence(START, "classify", "fetch_account", "retrieve_policy")
graph.sequence("draft", "check")
graph.edge("send", END)
graph.edge("handoff", END)

"""An order-refund workflow with a bug: it assumes currency codes are upper case.

Used by examples/production_loop/walkthrough.py (copied into a scratch project as graphs/orders.py,
where the walkthrough later fixes the bug the way a developer would: one edited line).
"""

from __future__ import annotations

from typing import Any, TypedDict

from workbench import END, START, Graph, tool

RATES_TO_USD = {"USD": 1.0, "EUR": 1.08, "CHF": 1.13}


class OrderState(TypedDict):
    order_id: str
    note: str
    currency: str
    amount: float
    order: dict[str, Any]
    reason: str
    refund_usd: float


@tool
def load_order(order_id: str) -> dict[str, Any]:
    """The order service (a tool: recorded, and served from the recording on replay)."""
    return {"id": order_id, "status": "delivered", "items": 2}


graph = Graph("orders", OrderState, description="classify a refund note, price the refund in USD")


@graph.node
def fetch(state: OrderState) -> dict[str, Any]:
    return {"order": load_order(state["order_id"])}


@graph.node
def classify(state: OrderState, ctx: Any) -> dict[str, Any]:
    answer = ctx.llm([
        {"role": "system", "content": "Classify the refund note. Categories: refund, billing, general"},
        {"role": "user", "content": state["note"]},
    ])
    return {"reason": answer.text}


@graph.node
def price(state: OrderState) -> dict[str, Any]:
    rate = RATES_TO_USD[state["currency"]]  # BUG: "chf" from the web form is lower case
    return {"refund_usd": round(state["amount"] * rate, 2)}


graph.sequence(START, "fetch", "classify", "price", END)

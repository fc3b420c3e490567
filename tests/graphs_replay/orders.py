"""An order-processing graph without model calls, for the replay / fork / regression tests.

price (a recorded tool per item) → stats → confirm, or approve (a human, when the total is over
100) → confirm.

The tool ``price_lookup`` appends each item it is asked about to the file named by
``$WB_TOOL_LOG`` (when set): a visible side effect, so a test can prove that replay does not
call it again.

``stats`` has a bug on purpose (the line marked ``BUG``): an order without items divides by
zero. Tests copy this file and replace that line to "fix" it.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, append, interrupt, tool

PRICES = {"apple": 2.0, "pear": 3.0, "melon": 150.0}


class OrderState(TypedDict):
    items: list[str]
    prices: dict[str, float]
    total: float
    average: float
    approved: bool
    log: Annotated[list[str], append]
    status: str


graph = Graph("orders", OrderState, description="price an order, maybe ask a human, confirm")


@tool
def price_lookup(item: str) -> float:
    path = os.environ.get("WB_TOOL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(item + "\n")
    return PRICES.get(item, 1.0)


@graph.node
def price(state: OrderState) -> dict[str, Any]:
    prices = {item: price_lookup(item) for item in state["items"]}
    return {"prices": prices, "total": sum(prices.values()), "log": ["priced"]}


@graph.node
def stats(state: OrderState) -> dict[str, Any]:
    average = state["total"] / len(state["items"])  # BUG: an order without items
    return {"average": average, "log": ["stats"]}


def after_stats(state: OrderState) -> str:
    return "approve" if state["total"] > 100 else "confirm"


graph.route("stats", after_stats, targets=["approve", "confirm"])


@graph.node
def approve(state: OrderState) -> dict[str, Any]:
    answer = interrupt({"question": "approve this order?", "total": state["total"]})
    return {"approved": bool(answer), "log": ["approval"]}


@graph.node
def confirm(state: OrderState) -> dict[str, Any]:
    return {"status": "confirmed" if state["approved"] or state["total"] <= 100 else "rejected",
            "log": ["confirmed"]}


graph.sequence(START, "price", "stats")
graph.edge("approve", "confirm")
graph.edge("confirm", END)

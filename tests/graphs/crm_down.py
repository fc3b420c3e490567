"""A tool raising the graph file's own exception type, caught by the node, then a question.

Resumed and replayed in other processes, the served failure must be this file's ``CrmDown``
(tests/test_tools.py)."""

from __future__ import annotations

from typing import Any, TypedDict

from workbench import END, START, Graph, interrupt, tool


class S(TypedDict, total=False):
    account: Any
    answer: Any


class CrmDown(Exception):
    pass


@tool
def crm(cid: str) -> dict[str, Any]:
    raise CrmDown(f"crm down for {cid}")


graph = Graph("crm_down", S)


@graph.node
def fetch(state: S) -> dict[str, Any]:
    try:
        account = crm("C-2")
    except CrmDown:
        account = {"fallback": True}
    return {"account": account, "answer": interrupt({"q": "proceed?", "account": account})}


graph.sequence(START, "fetch", END)

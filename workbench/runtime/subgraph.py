"""Subgraphs: a graph used as a node of another runs inline inside that node's task.

Its nodes share the parent task's context, so their model calls and interrupts are recorded
(and served on resume) as the parent node's; what it changed is handed back to the parent as an
update in the parent's terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.context import Context
from workbench.errors import WorkbenchError
from workbench.graph import Node

if TYPE_CHECKING:
    from workbench.runtime.runner import Runner


async def run_subgraph(parent: Runner, node: Node, value: Any, ctx: Context) -> dict[str, Any] | None:
    """Run ``node``'s subgraph on the parent's state ``value``; return the parent's update."""
    from workbench.runtime.runner import Runner

    sub = node.subgraph
    assert sub is not None
    if isinstance(value, dict):
        keys = sub.schema.channels
        sub_input = dict(value) if sub.schema.is_open() else {k: v for k, v in value.items() if k in keys}
    else:
        sub_input = {}
    inner = Runner(sub, None, max_concurrency=parent.max_concurrency, _inline_ctx=ctx)
    result = await inner.arun(sub_input)
    if result.status == "failed":
        raise WorkbenchError(f"subgraph {sub.name!r} failed: {result.error}")
    # Give back only what the subgraph changed, in the parent's terms: items appended to an
    # append-key, whole values for the rest.
    update: dict[str, Any] = {}
    start = inner.schema.initial(sub_input)[0]
    schema = parent.schema
    for key in inner.last_touched:
        if key not in schema.channels and not schema.is_open():
            continue
        kind = schema.rule(key).kind
        final = result.state[key]
        if kind == "append" and key in inner.last_extended:
            update[key] = inner.last_extended[key]
        elif kind == "add":
            update[key] = final - (start.get(key) or 0)
        elif kind == "merge" and isinstance(final, dict):
            before = start.get(key) or {}
            update[key] = {k: v for k, v in final.items() if before.get(k) != v}
        else:
            # replace (and custom rules: the subgraph's final value is handed over whole)
            update[key] = final
    return update or None

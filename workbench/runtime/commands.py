"""What a node returned, read and checked: its update(s) and, for a Command, where to go next.

A node returns None, a dict of updates, a list of dicts (applied in order), or a
:class:`~workbench.command.Command`. This module turns any of these into one shape — the
update as the merge takes it, the destinations as the planner takes them — checks both, and
gives their recorded forms (``steps.update`` and ``steps.goto``), which a resumed step reads
back with :func:`recorded_outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench import codec
from workbench.command import Command
from workbench.errors import InvalidUpdateError, RoutingError, SerializationError
from workbench.graph import END, Graph, Node, Send, display_path
from workbench.runtime.types import Outcome
from workbench.state import decode_update, encode_update


@dataclass
class NodeResult:
    """A node's return value, checked: ``update`` for the merge, ``goto`` for the planner."""

    update: Any = None  # None, a dict, or a list of dicts
    goto: list[str | Send] = field(default_factory=list)
    update_json: str | None = None
    goto_json: str | None = None


def read_result(graph: Graph, node: Node, result: Any) -> NodeResult:
    """Check what ``node`` returned and encode it for the record (raises a one-line error)."""
    where = f"node {node.name!r}"
    goto: list[str | Send] = []
    if isinstance(result, Command):
        goto = _destinations(graph, node, result.goto)
        result = result.update
    update = _updates(result, where)
    parts = update if isinstance(update, list) else [update] if update else []
    for part in parts:
        graph.schema.validate_update(part, where)
    out = NodeResult(update, goto)
    if update:
        out.update_json = codec.fast_dumps(encode_update(update), f"{where} update")
    if goto:
        out.goto_json = codec.fast_dumps(encode_goto(goto), f"{where} Command goto")
    return out


def _updates(result: Any, where: str) -> Any:
    if result is None or isinstance(result, dict):
        return result or None
    if isinstance(result, list):
        bad = [u for u in result if u is not None and not isinstance(u, dict)]
        if bad:
            raise InvalidUpdateError(f"{where} returned a list holding a {type(bad[0]).__name__}; "
                                     "a list of updates holds dicts")
        kept = [u for u in result if u]
        return kept or None
    raise InvalidUpdateError(f"{where} returned {type(result).__name__}; return a dict of state updates, "
                             "a list of them, a Command or None")


def _destinations(graph: Graph, node: Node, goto: Any) -> list[str | Send]:
    """A Command's ``goto`` as a list, every destination declared by the node."""
    if goto is None:
        return []
    items = list(goto) if isinstance(goto, (list, tuple)) else [goto]
    declared = set(node.goto)

    def where() -> str:
        return f"{display_path(graph.file)}: graph {graph.name!r}, node {node.name!r}"

    def undeclared(name: str, how: str) -> RoutingError:
        known = ", ".join(sorted("END" if n == END else n for n in declared)) or "none"
        return RoutingError(f"{where()}: Command {how} {name!r}, which is not a declared destination "
                            f"(declared: {known}); add it to @graph.node(goto=[...])")

    out: list[str | Send] = []
    for item in items:
        if isinstance(item, Send):
            if item.node not in declared or item.node not in graph.nodes:
                raise undeclared(item.node, "sends to")
            try:
                codec.dumps(item.arg, f"Send({item.node!r}) argument")
            except SerializationError as exc:
                raise SerializationError(f"{where()}: {exc}") from None
            out.append(Send(item.node, codec.to_jsonable(item.arg)))
        elif item == END or item is None:
            out.append(END)
        elif isinstance(item, str):
            if item not in declared:
                raise undeclared(item, "goes to")
            out.append(item)
        else:
            raise RoutingError(f"{where()}: Command goto holds {item!r}; give node names, END or Send(...)")
    return out


def encode_goto(goto: list[str | Send]) -> list[Any]:
    """Destinations as recorded: a name, or ``{"node", "arg"}`` for a Send."""
    return [{"node": g.node, "arg": g.arg} if isinstance(g, Send) else g for g in goto]


def decode_goto(recorded: Any) -> list[str | Send]:
    """The inverse of :func:`encode_goto`."""
    return [Send(g["node"], g.get("arg")) if isinstance(g, dict) else g for g in recorded or []]


def recorded_outcome(row: dict[str, Any]) -> Outcome:
    """A completed task as its recorded row has it (a resumed step reuses it, never re-runs it)."""
    return Outcome("completed", update=decode_update(row["update"]), goto=decode_goto(row.get("goto")))

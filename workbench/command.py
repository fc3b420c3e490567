"""``Command``: what a node returns to update the state *and* say where the run goes next.

A node normally returns a partial update and lets the graph's edges and routers decide what
runs next. A node that knows better returns a Command::

    @g.node(goto=["refund", "answer"])          # the destinations it may choose, declared
    def triage(state):
        if state["amount"] > 100:
            return Command(update={"category": "refund"}, goto="refund")
        return Command(update={"category": "general"}, goto="answer")

``goto`` is one node name, ``END``, a list of names, or a list of :class:`~workbench.Send` (each
a task of the next step with its own input — so a node reached by ``Send`` can fan out again).
Its destinations are planned after the node's plain edges and before its router. Every
destination must be declared with ``@g.node(goto=[...])``: the graph is then validated and
drawn with them, and a Command that names an undeclared node fails the node with an error naming
both. The recorded task row keeps the Command's destinations (``steps.goto``), so a resumed
step, a replay and a fork follow them as they follow routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    """A node's update plus where the run goes next.

    Args:
        update: a dict of state updates, a list of them (applied in order), or None.
        goto: a node name, ``END``, a :class:`~workbench.Send`, or a list of names and Sends;
            None (the default) adds no destination beyond the node's edges and router.
    """

    update: Any = None
    goto: Any = None

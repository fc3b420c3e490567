"""Break conditions typed by a person: a Python expression over ``state``, checked after each step.

The runtime's ``break_when`` is a plain predicate and pauses whenever it returns true. A
condition a person types in a debugger (``state['drafts'] >= 1``) is meant as a watchpoint: it
should stop the run where it *becomes* true, not on every later step while it stays true, or
``c`` (continue) could never get past it. :func:`becomes_true` turns any predicate into that
edge-triggered form; :class:`BreakCondition` compiles an expression with a small set of
builtins. No UI code here: the TUI uses it, and so can a script.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any

# Enough for comparisons over the state, nothing that reaches the file system or imports.
# (The expression is typed by the user, never read from a trace.)
SAFE_BUILTINS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in ("len", "any", "all", "min", "max", "sum", "abs", "str", "int", "float", "bool",
                 "isinstance", "list", "dict", "set", "sorted", "round")
}


class BreakCondition:
    """A compiled break expression over ``state``. Raises ``SyntaxError`` on a bad expression."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self._code = compile(self.expression, "<break condition>", "eval")

    def holds(self, state: Mapping[str, Any]) -> bool:
        """Evaluate on ``state``; exceptions propagate (the runtime pauses and reports them)."""
        return bool(eval(self._code, {"__builtins__": SAFE_BUILTINS}, {"state": state}))

    def holds_quietly(self, state: Mapping[str, Any] | None) -> bool:
        """Like :meth:`holds`, but a missing state or an error counts as not holding (used to
        learn whether the condition already held where a run starts)."""
        if state is None:
            return False
        try:
            return self.holds(state)
        except Exception:
            return False


def becomes_true(predicate: Callable[[Any], Any], *, initially: bool = False) -> Callable[[Any], bool]:
    """An edge-triggered ``break_when``: true after a step only if ``predicate`` holds there and
    did not hold after the previous step. ``initially``: whether it held where the run starts or
    resumes (a condition already true there fires only once it has turned false and true again).

    An exception from ``predicate`` propagates, so the runtime pauses and reports it; the
    condition then counts as not holding, so the next step that makes it true fires.
    """
    held = [initially]

    def check(state: Any) -> bool:
        before = held[0]
        held[0] = False
        now = bool(predicate(state))
        held[0] = now
        return now and not before

    return check

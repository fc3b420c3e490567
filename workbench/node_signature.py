"""How a node's function is called: with the state, and with the context if it asks for it.

Decided once, when the node is added, from the function's signature; a signature that cannot be
called that way is refused then, rather than failing the run's step with a ``TypeError``.
"""

from __future__ import annotations

import inspect
from typing import Any

SHAPE = "def NAME(state) or def NAME(state, ctx)"


def takes_context(fn: Any) -> tuple[bool, str | None]:
    """``(whether fn gets the context, why it cannot be a node's function or None)``.

    The context goes to a second positional parameter without a default, or to one named
    ``ctx`` or ``context`` (``def f(state, _n=n)``, a loop's closure idiom, keeps its default).
    No parameter at all, or more than two without defaults, is a problem.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False, None  # a builtin or C function: called with the state alone
    values = list(signature.parameters.values())
    params = [p for p in values if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    spread = any(p.kind is p.VAR_POSITIONAL for p in values)
    required = [p.name for p in params if p.default is p.empty]
    required += [p.name for p in values if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if not params and not spread:
        return False, f"its function takes no parameter; a node is called with the state: {SHAPE}"
    if len(required) > 2:
        return False, (f"its function needs {len(required)} arguments ({', '.join(required)}); a node is called "
                       f"with the state and, if it asks, the context: {SHAPE} (give the others defaults)")
    if len(params) < 2:
        return False, None
    second = params[1]
    return second.default is second.empty or second.name in ("ctx", "context"), None

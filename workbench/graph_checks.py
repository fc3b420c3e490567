"""Checks of what a graph file declares, run when it is declared (``workbench/graph.py``).

A wrong type or value given to ``add_node``, ``route``, ``join``, ``edge`` or ``Graph(...)`` is
refused on the line that wrote it, with what to write instead, rather than surfacing later as
an internal error or as a node that fails at run time. Each check raises
:class:`BadDeclaration` with the problem; the graph adds the file, line, graph and node.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any


class BadDeclaration(Exception):
    """A declaration's problem, without its location (the graph adds that)."""


# Characters a node name may not hold: '/' separates a subgraph path (``review/draft``, and
# steps in addresses such as ``3/review/2``), '#' picks a fan-out task (``review#1``).
_SEPARATORS = "/#"
# Control characters (tab and newline included), the line/paragraph separators and the bidi
# controls: a name is shown on one line of the CLI and the TUI, and typed back in options.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _got(value: Any) -> str:
    """``value`` as an error shows it: its repr, and its type when the repr does not say it."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return shown if isinstance(value, (str, int, float, type(None))) else f"{shown} (a {type(value).__name__})"


def check_node_name(name: Any) -> str:
    """A node name: a non-empty string without '/', '#' or control characters."""
    if not isinstance(name, str):
        raise BadDeclaration(f"a node name must be a string, got {_got(name)}")
    if not name.strip():
        raise BadDeclaration(f"a node name must not be empty or only spaces, got {name!r}")
    bad = [c for c in _SEPARATORS if c in name]
    if bad:
        fixed = re.sub("[/#]", "_", name)
        raise BadDeclaration(f"node name {name!r} contains {' and '.join(map(repr, bad))}, which node names may not "
                             "hold: '/' separates subgraph paths and step addresses (review/draft, 3/review/2) and "
                             f"'#' picks a fan-out task (review#1); rename it, e.g. {fixed!r}")
    control = _CONTROL.search(name)
    if control:
        raise BadDeclaration(f"node name {name!r} contains the control character {control.group()!r}; node names "
                             "are shown on one line and typed in options such as --break-before, so use "
                             "printable characters only")
    return name


def check_timeout(timeout: Any) -> float | None:
    """``timeout=``: seconds greater than 0, or None for no timeout."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise BadDeclaration(f"timeout must be a number of seconds greater than 0 (or None for no timeout), "
                             f"got {_got(timeout)}")
    return timeout


def check_max_steps(max_steps: Any) -> int:
    """``Graph(max_steps=...)``: a whole number of 1 or more."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise BadDeclaration(f"max_steps must be a whole number of 1 or more, got {_got(max_steps)}")
    return max_steps


def check_ref(value: Any, role: str, ends: str = "") -> str:
    """A node named by ``role`` (``"edge target"``...): a string. ``ends``: the virtual nodes
    also allowed there, for the message (``"START"``, ``"END"``)."""
    if not isinstance(value, str) or not value:
        also = f" (or {ends})" if ends else ""
        raise BadDeclaration(f"{role} must be a node name{also}, got {_got(value)}")
    return value


def check_names(value: Any, role: str, ends: str = "") -> tuple[str, ...]:
    """A list of node names; one name given as a string is a list of one (as ``goto=`` reads
    it), never split into its characters."""
    if isinstance(value, str):
        return (check_ref(value, role, ends),)
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise BadDeclaration(f"{role} must be a list of node names, got {_got(value)}")
    also = f" (or {ends})" if ends else ""
    names = tuple(value)
    for item in names:
        if not isinstance(item, str) or not item:
            hint = "; write END for the end of the run" if item is None and "END" in ends else ""
            raise BadDeclaration(f"{role} must be a list of node names{also}, got {_got(item)} in the list{hint}")
    return names


def check_router(router: Any) -> Any:
    """``route(source, router, ...)``: a function of the state."""
    if not callable(router):
        raise BadDeclaration(f"the router must be a function of the state that returns the next node(s), "
                             f"got {_got(router)}")
    return router


def check_targets(targets: Any) -> dict[str, str]:
    """A router's ``targets``: ``{label: node}``, or node names (one name as a string)."""
    if isinstance(targets, Mapping):
        for label, node in targets.items():
            if not isinstance(label, str) or not label:
                raise BadDeclaration(f"route targets: a label must be a string (the router returns it), "
                                     f"got {_got(label)}")
            check_ref(node, f"route target {label!r}", "END")
        return dict(targets)
    return {t: t for t in check_names(targets, "route targets", "END")}


def check_join_sources(sources: Any) -> tuple[str, ...]:
    """A join's ``sources``: one node name or more."""
    names = check_names(sources, "join sources")
    if not names:
        raise BadDeclaration("a join needs at least one source node, e.g. graph.join(['a', 'b'], 'c')")
    return names


def check_on_error(on_error: Any) -> str | None:
    """``on_error=``: the name of the node to go to when this one still fails (or None)."""
    if on_error is None:
        return None
    if not isinstance(on_error, str) or not on_error:
        raise BadDeclaration(f"on_error must name the node to go to when this one still fails (or END), "
                             f"got {_got(on_error)}")
    return on_error


def check_inputs(inputs: Any) -> list[str] | None:
    """``Graph(inputs=...)``: state keys; one key given as a string is a list of one."""
    if inputs is None or isinstance(inputs, str):
        return None if inputs is None else [inputs]
    keys = list(inputs) if isinstance(inputs, Iterable) and not isinstance(inputs, (bytes, Mapping)) else None
    if keys is None or not all(isinstance(k, str) for k in keys):
        raise BadDeclaration(f"inputs must be a list of state keys, got {_got(inputs)}")
    return keys

"""A run's options as a caller gives them to run, resume or fork: breakpoints (node names, or
paths into subgraphs such as ``review/approve``) and the step limit, checked before anything is
recorded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.errors import InputError
from workbench.graph import Graph
from workbench.runtime.subgraph import check_path


def check_names(graph: Graph, names: Iterable[str], what: str) -> list[str]:
    """Breakpoint names: nodes of ``graph``, or paths into its subgraphs (``review/approve``);
    one name given as a plain string is one name (it was read as its letters)."""
    out = [names] if isinstance(names, str) else list(names)
    for n in out:
        check_path(graph, n, what)
    return out


def check_limit(max_steps: int | None) -> int | None:
    """A step limit: a whole number of 1 or more (or ``None``: the graph's own)."""
    if max_steps is not None and (not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1):
        raise InputError(f"max_steps must be a positive whole number, got {max_steps!r}")
    return max_steps


def check_concurrency(value: Any) -> int:
    """``Runner(max_concurrency=...)``: a whole number of 1 or more (0 hung every fan-out)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"max_concurrency must be a whole number of 1 or more, got {value!r}")
    return value


def with_options(graph: Graph, config: dict[str, Any], break_before: Iterable[str] | None,
                 break_after: Iterable[str] | None, max_steps: int | None) -> dict[str, Any]:
    """A run's config with the breakpoints and step limit given for this resume or fork."""
    if break_before is not None:
        config["break_before"] = check_names(graph, break_before, "break_before")
    if break_after is not None:
        config["break_after"] = check_names(graph, break_after, "break_after")
    if max_steps is not None:
        config["max_steps"] = check_limit(max_steps)
    return config

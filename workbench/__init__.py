"""workbench: durable, recorded, replayable workflow graphs for LLM agents.

The public authoring API::

    from workbench import Graph, START, END, Send, Command, Overwrite, RetryPolicy, append, add, merge, interrupt

The names are imported on first use (PEP 562): ``import workbench`` — which every submodule
import, the CLI's included, starts with — loads neither the runtime nor the store (DuckDB), so
a command imports only what it needs and ``workbench run`` can start importing the model
library before anything else (docs/performance.md, "The first second").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports these
    from workbench.command import Command
    from workbench.context import Context, Event, interrupt
    from workbench.errors import WorkbenchError
    from workbench.graph import END, START, Graph, RetryPolicy, Send
    from workbench.runtime import NO_VALUE, Runner, RunResult, run_graph
    from workbench.state import Overwrite, add, append, custom, merge, replace
    from workbench.store import TraceStore
    from workbench.tools import tool

__version__ = "0.1.0"

# Each public name and the module that defines it.
_EXPORTS = {
    "Command": "workbench.command",
    "Context": "workbench.context",
    "Event": "workbench.context",
    "interrupt": "workbench.context",
    "WorkbenchError": "workbench.errors",
    "END": "workbench.graph",
    "START": "workbench.graph",
    "Graph": "workbench.graph",
    "RetryPolicy": "workbench.graph",
    "Send": "workbench.graph",
    "NO_VALUE": "workbench.runtime",
    "Runner": "workbench.runtime",
    "RunResult": "workbench.runtime",
    "run_graph": "workbench.runtime",
    "Overwrite": "workbench.state",
    "add": "workbench.state",
    "append": "workbench.state",
    "custom": "workbench.state",
    "merge": "workbench.state",
    "replace": "workbench.state",
    "TraceStore": "workbench.store",
    "tool": "workbench.tools",
}

__all__ = [
    "END",
    "NO_VALUE",
    "START",
    "Command",
    "Context",
    "Event",
    "Graph",
    "Overwrite",
    "RetryPolicy",
    "RunResult",
    "Runner",
    "Send",
    "TraceStore",
    "WorkbenchError",
    "add",
    "append",
    "custom",
    "interrupt",
    "merge",
    "replace",
    "run_graph",
    "tool",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as a plain module attribute."""
    module = _EXPORTS.get(name)
    if module is None:
        # Not ours: ``from workbench import codec`` then imports the submodule, as usual.
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

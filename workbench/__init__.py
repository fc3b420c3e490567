"""workbench: durable, recorded, replayable workflow graphs for LLM agents.

The public authoring API::

    from workbench import Graph, START, END, Send, Command, Overwrite, RetryPolicy, append, add, merge, interrupt
"""

from workbench.command import Command
from workbench.context import Context, Event, interrupt
from workbench.errors import WorkbenchError
from workbench.graph import END, START, Graph, RetryPolicy, Send
from workbench.runtime import NO_VALUE, Runner, RunResult, run_graph
from workbench.state import Overwrite, add, append, custom, merge, replace
from workbench.store import TraceStore
from workbench.tools import tool

__version__ = "0.1.0"

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

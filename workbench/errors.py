"""Exceptions raised by workbench. Every one carries a message meant to be read by a person.

The CLI prints ``str(error)`` on one line; so each message names what went wrong, where, and
what to do about it.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error workbench raises on purpose."""


class GraphDefinitionError(WorkbenchError):
    """The graph is malformed: unknown node, unreachable node, no entry, no path to the end."""


class GraphLoadError(WorkbenchError):
    """A graph file could not be found, imported, or does not define a graph."""


class InvalidUpdateError(WorkbenchError):
    """A node returned an update that does not fit the state schema, or two branches conflict."""


class MergeError(InvalidUpdateError):
    """A state key's merge rule raised while folding an update in (the message names the key)."""


class SerializationError(WorkbenchError):
    """A value cannot be stored as JSON. The message names the key path and the type."""


class RoutingError(WorkbenchError):
    """A router returned a node the graph does not declare."""


class StepLimitError(WorkbenchError):
    """A run exceeded its step limit, usually an unbounded loop."""


class NodeTimeoutError(WorkbenchError):
    """A node did not finish within its timeout."""


class NodeExitError(WorkbenchError):
    """A node called ``sys.exit()``: the node fails with its message, the process goes on."""


class NodeEscapeError(WorkbenchError):
    """A node raised a ``BaseException`` that is not an ``Exception`` (``GeneratorExit``, an
    ``asyncio.CancelledError`` the run did not cause, a class of its own): the node fails with
    it, not retried; the run and the process go on."""


class StoreError(WorkbenchError):
    """The trace store cannot be opened or used (locked, corrupt, too new)."""


class RunNotFoundError(WorkbenchError):
    """No run with that id in the store."""


class RunStateError(WorkbenchError):
    """The run is not in a state that allows the operation (e.g. resuming a completed run)."""


class LLMError(WorkbenchError):
    """A model call failed after its retries and fallbacks."""


class LLMRejectedError(LLMError):
    """Every model refused the request (authentication, permission, bad request, unknown model).

    Trying again cannot fix it, so it is not retried: not by the call, nor by a node's
    ``RetryPolicy``. Fix the credentials, the model name or the request.
    """

    PREFIX = "model call refused, not retried"
    """How its message starts (a replay recognises a recorded refusal by it)."""


class InputError(WorkbenchError):
    """Input from the user (JSON, resume value) is invalid."""

"""What a failed tool call's exception was, recorded so that serving the call raises it again.

A node that catches a tool's own exception type (``except CrmDown``), retries on it
(``RetryPolicy(retry_on=CrmDown)``) or reads ``ctx.error["type"]`` in an ``on_error`` handler
must see the same type when the call is served from the recording — in a replay, or when the
node runs again after an interrupt or a crash — or the run takes another path than it took live.

The type is recorded by name (``module:qualname``, in the call's ``params``) with the
exception's plain attributes (strings, numbers, booleans). Serving the call looks the name up
among the modules this process has already loaded — nothing is imported on a trace's say — and
makes the exception without running its constructor: the record chooses neither a module to
load nor code to run. A type that is not loaded (or not an exception) is served as a
:class:`~workbench.context.RecordedCallError` that reports the recorded type's name.
"""

from __future__ import annotations

import builtins
import re
import sys
from typing import Any

from workbench.redact import scrub

# Plain attributes are kept up to this many, each string up to this length.
_MAX_ATTRS = 20
_MAX_TEXT = 2000


def type_name(exc: BaseException) -> str:
    """The name an exception is recorded and shown by: a served failure reports the type it
    stands for (``recorded_type``), so that live, resumed and replayed runs agree."""
    return getattr(exc, "recorded_type", None) or type(exc).__name__


def identity(exc: BaseException) -> dict[str, Any]:
    """``{"error_type": "module:qualname", "error_args": [...], "error_attrs": {...}}`` for a
    tool call's error. Only an exception JSON can carry whole is made again: one with an
    argument or attribute JSON would change (a tuple, bytes, an object), or with ``__slots__``,
    is recorded by its type alone (``"error_whole": false``) and served as RecordedCallError."""
    cls = type(exc)
    out: dict[str, Any] = {"error_type": f"{_stable(cls.__module__)}:{cls.__qualname__}"}
    args = list(exc.args)
    if isinstance(exc, OSError) and exc.filename is not None:  # its file names are not in args
        args = [exc.errno, exc.strerror, exc.filename]
        if exc.filename2 is not None:
            args += [None, exc.filename2]
    attrs = {k: v for k, v in getattr(exc, "__dict__", {}).items() if isinstance(k, str) and not k.startswith("_")}
    slotted = any("__slots__" in vars(c) for c in cls.__mro__ if c.__module__ != "builtins")
    values = [*args, *attrs.values()]
    if slotted or len(args) > _MAX_ATTRS or len(attrs) > _MAX_ATTRS or not all(map(_faithful, values)):
        out["error_whole"] = False
        return out
    out["error_args"] = [_scrubbed(a) for a in args]
    if attrs:
        out["error_attrs"] = {k: _scrubbed(v) for k, v in attrs.items()}
    return out


# A graph file's module is named after its path with a per-process digest (loader.py): the
# digest is left out of the record, so that another process finds the same module.
_GRAPH_MODULE = re.compile(r"^(workbench_graphs\.\w+?)_\d+$")


def _stable(module: str) -> str:
    return _GRAPH_MODULE.sub(r"\1", module)


def _faithful(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` comes back from JSON as it went in (no tuple, bytes or object)."""
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT
    if depth > 4:
        return False
    if type(value) is list:
        return len(value) <= _MAX_ATTRS and all(_faithful(v, depth + 1) for v in value)
    if type(value) is dict:
        return len(value) <= _MAX_ATTRS and all(isinstance(k, str) and _faithful(v, depth + 1)
                                                 for k, v in value.items())
    return False


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def rebuild(params: Any, message: str, namespace: dict[str, Any] | None = None) -> Exception | None:
    """The recorded exception, or None when its type is not loaded here (or not an exception).

    ``namespace``: the globals of the module that raised it (the tool's), searched first when
    the recorded module is that one — a graph file loaded again has a new module of the same
    name, and the node catches the type of the module its code came from."""
    if not isinstance(params, dict) or not isinstance(params.get("error_type"), str) \
            or params.get("error_whole") is False:
        return None
    module_name, _, qualname = params["error_type"].partition(":")
    parts = qualname.split(".") if qualname else []
    if not parts or any("<" in part for part in parts):  # a class made inside a function
        return None
    found: Any = None
    if namespace is not None and _stable(str(namespace.get("__name__"))) == module_name:
        found = namespace.get(parts[0])
        parts = parts[1:]
    else:
        found = sys.modules.get(module_name)
    for part in parts:
        # The object's own dict, not getattr: a module's __getattr__ (or a class's descriptors)
        # would run code — and import modules — on the record's say.
        try:
            found = vars(found).get(part)
        except TypeError:  # nothing to look in (None, a value without a __dict__)
            return None
    if not (isinstance(found, type) and issubclass(found, Exception)):
        return None
    cls: type[Exception] = found
    recorded = params.get("error_args")
    args = tuple(recorded) if isinstance(recorded, list) else (message,)
    if cls.__module__ == "builtins" and getattr(builtins, cls.__name__, None) is cls:
        try:
            return cls(*args)
        except Exception:  # a built-in type taking other arguments: made as below
            pass
    # The nearest built-in base makes the object (as ``raise`` would), without the type's own
    # constructor: the recorded arguments become its args, the plain attributes its own.
    base = next(b for b in cls.__mro__ if b.__module__ == "builtins")
    try:
        exc = base.__new__(cls, *args)  # type: ignore[call-overload]
        exc.args = args
        attrs = params.get("error_attrs")
        if isinstance(attrs, dict) and hasattr(exc, "__dict__"):
            exc.__dict__.update({k: v for k, v in attrs.items() if isinstance(k, str) and not k.startswith("_")})
    except Exception:  # slots, a metaclass of its own...: served as a RecordedCallError
        return None
    return exc  # type: ignore[no-any-return]

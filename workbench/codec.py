"""JSON encoding of state values — the only format the trace store holds.

No pickle and no class lookup by name: a trace never decides which code runs. Values that JSON
cannot hold natively are reduced to JSON (datetimes to ISO strings, bytes to a tagged base64
object, enums to their value, dataclasses and Pydantic models to objects); on the way back the
state schema (which comes from the graph's code, never from the trace) restores the declared
types. A value that cannot be reduced raises :class:`SerializationError` naming its key path.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import os
import re
import types
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from workbench.errors import SerializationError

_PRIMITIVES = (str, int, float, bool, type(None))

MAX_DEPTH = 256
"""Values nested deeper than this are refused (a deeper structure is almost surely a bug, and
would exhaust the stack of whatever reads it back)."""



def _max_value_setting() -> tuple[int, str | None]:
    """``$WORKBENCH_MAX_VALUE_MB`` in bytes (default 64 MB), and what is wrong with it if it is not
    a number of megabytes above 0 (then the default stands, and the CLI and TraceStore refuse to
    go on: read at import, it must not raise a traceback out of ``import workbench``)."""
    raw = os.environ.get("WORKBENCH_MAX_VALUE_MB", "").strip()
    if not raw:
        return 64 * 1024 * 1024, None
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = float("nan")
    if not megabytes > 0 or megabytes == float("inf"):
        return 64 * 1024 * 1024, f"WORKBENCH_MAX_VALUE_MB must be a number of megabytes above 0 (not {raw!r})"
    return int(megabytes * 1024 * 1024), None


MAX_BYTES, SETTING_ERROR = _max_value_setting()
"""``MAX_BYTES``: the largest JSON text one value may take in the trace store
(``$WORKBENCH_MAX_VALUE_MB``); ``SETTING_ERROR``: why that setting was refused, or ``None``."""


def to_jsonable(value: Any, path: str = "", _depth: int = 0) -> Any:
    """Return a structure of dicts, lists and primitives equal in content to ``value``.

    Raises SerializationError naming ``path`` (e.g. ``state.drafts[2].meta``) for a value of a
    type with no codec, or nested deeper than :data:`MAX_DEPTH`.
    """
    if _depth > MAX_DEPTH:
        where = path if len(path) <= 60 else f"{path[:40]}…{path[-12:]}"
        raise SerializationError(f"{where or 'value'}: nested deeper than {MAX_DEPTH} levels; flatten it")
    if isinstance(value, _PRIMITIVES):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise SerializationError(f"{path or 'value'}: float {value!r} cannot be stored as JSON")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                if isinstance(k, (int, float, bool)) or isinstance(k, enum.Enum):
                    k = str(k.value if isinstance(k, enum.Enum) else k)
                else:
                    raise SerializationError(
                        f"{path or 'value'}: dict key of type {type(k).__name__} cannot be stored as JSON"
                    )
            out[k] = to_jsonable(v, f"{path}.{k}" if path else k, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, f"{path}[{i}]", _depth + 1) for i, v in enumerate(items)]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, path, _depth)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name), f"{path}.{f.name}" if path else f.name, _depth + 1)
            for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        # Pydantic v2 model: its own JSON mode already reduces nested types.
        return to_jsonable(dump(mode="json"), path, _depth)
    raise SerializationError(
        f"{path or 'value'}: value of type {type(value).__module__}.{type(value).__qualname__} "
        "cannot be stored as JSON (use str, int, float, bool, None, list, dict, datetime, bytes, "
        "enum, dataclass or a Pydantic model)"
    )


def dumps(value: Any, path: str = "") -> str:
    """Encode ``value`` as compact JSON text (see :func:`to_jsonable` and :func:`check_text`)."""
    return check_text(json.dumps(to_jsonable(value, path), separators=(",", ":"), ensure_ascii=False), value, path)


def fast_dumps(value: Any, path: str = "") -> str:
    """Encode ``value``, trying the C encoder first and falling back to the path-naming walk.

    Most updates are plain JSON already; this keeps the hot path at one ``json.dumps`` call.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return dumps(value, path)
    if _too_deep(text):
        return dumps(value, path)  # names where the nesting goes too deep
    return check_text(text, value, path)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _too_deep(text: str) -> bool:
    """Whether JSON text nests deeper than :data:`MAX_DEPTH` (the same limit as
    :func:`to_jsonable`'s). Free for most values: it needs that many brackets to start with."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for ch in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if ch in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def utf8_size(text: str) -> int:
    """How many bytes ``text`` takes in UTF-8 (a lone surrogate counted as its three bytes),
    without encoding ASCII text: a 40 MB value was encoded once per size check only to be
    measured, each time a fresh 40 MB of memory."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_text(text: str, value: Any, path: str) -> str:
    """Refuse encoded text the store cannot hold: invalid Unicode (a lone surrogate such as
    ``"\ud800"``, which no UTF-8 file can hold) or more than :data:`MAX_BYTES`. The message
    names the key that is at fault."""
    size = len(text)  # ASCII: one byte a character
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))  # encoded once: the validity check and the size
        except UnicodeEncodeError as exc:
            where = _find(value, path, lambda v: isinstance(v, str) and not _valid_unicode(v)) or path or "value"
            raise SerializationError(
                f"{where}: text holds an unpaired surrogate ({text[exc.start]!r}), which is not valid Unicode; "
                "decode the text properly (e.g. bytes.decode('utf-8', 'replace'))"
            ) from None
    if size > MAX_BYTES:
        where = _largest(value, path) or path or "value"
        raise SerializationError(
            f"{where}: {size / 1048576:.1f} MB is more than the trace store holds per value "
            f"({MAX_BYTES / 1048576:g} MB, set WORKBENCH_MAX_VALUE_MB); store a reference (a file path or URL) "
            "instead of the data"
        )
    return text


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _children(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return []


def _find(value: Any, path: str, bad: Any, depth: int = 0) -> str | None:
    """The path of the first value (depth first) for which ``bad`` holds, keys included."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        for k in value:
            if isinstance(k, str) and bad(k):
                return f"{path}.{k!r} (a key)" if path else f"{k!r} (a key)"
    if bad(value):
        return path
    for child_path, child in _children(value, path):
        found = _find(child, child_path, bad, depth + 1)
        if found is not None:
            return found
    return None


def _largest(value: Any, path: str) -> str | None:
    """The path of the biggest top-level part of a value (what to name when it is too big)."""
    kids = _children(value, path)
    if not kids:
        return path or None
    sizes = [(len(json.dumps(v, ensure_ascii=False, default=str)), p) for p, v in kids]
    return max(sizes)[1]


def loads(text: str | None) -> Any:
    """Decode JSON text from the store (None stays None)."""
    if text is None:
        return None
    return json.loads(text)


def coerce(value: Any, annotation: Any) -> Any:
    """Turn decoded JSON back into the type the schema declares, where that is unambiguous.

    Handles datetimes, dates, bytes, enums, dataclasses, Pydantic models, and lists/dicts/
    Optionals of those. Anything else is returned unchanged.
    """
    if value is None or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return coerce(value, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except Exception:  # try the next member of the union
                continue
        return value
    if origin in (list, tuple, set, frozenset) and isinstance(value, list):
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        items = [coerce(v, item) for v in value]
        return origin(items) if origin is not list else items
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(annotation)
        vt = args[1] if len(args) == 2 else Any
        return {k: coerce(v, vt) for k, v in value.items()}
    if not isinstance(annotation, type):
        return value
    if annotation is bytes and isinstance(value, dict) and "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if annotation is dt.datetime and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if annotation is dt.date and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if annotation is dt.time and isinstance(value, str):
        return dt.time.fromisoformat(value)
    if annotation is dt.timedelta and isinstance(value, (int, float)):
        return dt.timedelta(seconds=value)
    if annotation in (uuid.UUID, Decimal) and isinstance(value, str):
        return annotation(value)
    if issubclass(annotation, PurePath) and isinstance(value, str):
        return annotation(value)
    if issubclass(annotation, enum.Enum) and not isinstance(value, annotation):
        return annotation(value)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        return annotation(**{k: coerce(v, hints.get(k, Any)) for k, v in value.items()})
    validate = getattr(annotation, "model_validate", None)
    if callable(validate) and isinstance(value, dict):
        return validate(value)
    return value

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
import types
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from workbench.errors import SerializationError

_PRIMITIVES = (str, int, float, bool, type(None))


def to_jsonable(value: Any, path: str = "") -> Any:
    """Return a structure of dicts, lists and primitives equal in content to ``value``.

    Raises SerializationError naming ``path`` (e.g. ``state.drafts[2].meta``) for a value of a
    type with no codec.
    """
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
            out[k] = to_jsonable(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, path)
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
            f.name: to_jsonable(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
            for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        # Pydantic v2 model: its own JSON mode already reduces nested types.
        return to_jsonable(dump(mode="json"), path)
    raise SerializationError(
        f"{path or 'value'}: value of type {type(value).__module__}.{type(value).__qualname__} "
        "cannot be stored as JSON (use str, int, float, bool, None, list, dict, datetime, bytes, "
        "enum, dataclass or a Pydantic model)"
    )


def dumps(value: Any, path: str = "") -> str:
    """Encode ``value`` as compact JSON text (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(value, path), separators=(",", ":"), ensure_ascii=False)


def fast_dumps(value: Any, path: str = "") -> str:
    """Encode ``value``, trying the C encoder first and falling back to the path-naming walk.

    Most updates are plain JSON already; this keeps the hot path at one ``json.dumps`` call.
    """
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return dumps(value, path)


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

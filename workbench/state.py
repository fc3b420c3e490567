"""Typed shared state: the schema of a graph's state and the merge rule of each key.

A state schema is a TypedDict, a dataclass or a Pydantic model. Each key has a merge rule that
says how an update from a node combines with the current value:

* ``replace`` (default): the update replaces the value. Two nodes writing the same replace-key
  in one superstep is an error naming both nodes and the key.
* ``append``: the update (an item list) is appended to the list.
* ``add``: numbers are added.
* ``merge``: dicts are merged, the update's keys winning.
* any function ``f(current, update) -> new``: a custom rule (it must take exactly two
  parameters; a rule that does not is refused when the schema is declared).

Whatever a key's rule, ``Overwrite(value)`` in an update sets the whole value (e.g. to trim a
message list); two branches overwriting the same key in one superstep is a conflict.

Declare a rule with ``typing.Annotated``::

    class State(TypedDict):
        question: str
        notes: Annotated[list[str], append]
        cost: Annotated[float, add]
"""

from __future__ import annotations

import copy
import dataclasses
import operator
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from workbench.cow import SharedList, own, reclaim
from workbench.errors import GraphDefinitionError, InvalidUpdateError, MergeError


@dataclass(frozen=True)
class MergeRule:
    """How an update to one state key combines with its current value."""

    kind: str  # replace | append | add | merge | custom
    fn: Callable[[Any, Any], Any] | None = None

    def __repr__(self) -> str:
        return self.kind if self.fn is None else f"custom({getattr(self.fn, '__name__', self.fn)})"


replace = MergeRule("replace")
"""The update replaces the current value (the default)."""
append = MergeRule("append")
"""The update — a list of items, or one item — is appended to the current list."""
add = MergeRule("add")
"""The update is added to the current number."""
merge = MergeRule("merge")
"""The update dict is merged into the current dict (shallow; the update's keys win)."""


def custom(fn: Callable[[Any, Any], Any]) -> MergeRule:
    """A merge rule from a function ``fn(current, update) -> new value``."""
    return MergeRule("custom", fn)


class Overwrite:
    """An update value that replaces a key's whole value, whatever its merge rule.

    ``return {"messages": Overwrite(state["messages"][-10:])}`` trims an ``append`` list to its
    last ten items. Two branches overwriting the same key in one superstep is a conflict (an
    error naming both); updates later in the step's merge order apply on top of the new value.
    Recorded in a task's update as ``{"__overwrite__": value}``.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Overwrite({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Overwrite) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


#: The recorded form of an :class:`Overwrite` value (a task's ``update`` is JSON).
OVERWRITE_KEY = "__overwrite__"


def encode_update(update: Any) -> Any:
    """A node's update (a dict, a list of dicts, or None) in its recorded, JSON-able form."""
    if isinstance(update, list):
        return [encode_update(u) for u in update]
    if not isinstance(update, dict):
        return update
    return {k: ({OVERWRITE_KEY: v.value} if isinstance(v, Overwrite) else v) for k, v in update.items()}


def decode_update(update: Any) -> Any:
    """The inverse of :func:`encode_update` (a recorded update as the merge takes it)."""
    if isinstance(update, list):
        return [decode_update(u) for u in update]
    if not isinstance(update, dict):
        return update
    return {k: (Overwrite(v[OVERWRITE_KEY]) if isinstance(v, dict) and len(v) == 1 and OVERWRITE_KEY in v else v)
            for k, v in update.items()}


def _check_arity(key: str, fn: Callable[..., Any]) -> None:
    """Refuse a merge rule that cannot be called as ``fn(current, update)``."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        sig.bind(None, None)
    except TypeError:
        name = getattr(fn, "__name__", repr(fn))
        positional = [p for p in sig.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
        raise GraphDefinitionError(
            f"state key {key!r}: merge rule {name}{sig} takes {len(positional)} required parameter(s); "
            "a merge rule is called as fn(current, update) and must take exactly two"
        ) from None


@dataclass(frozen=True)
class Channel:
    """One key of the state: its name, declared type, merge rule and default."""

    name: str
    annotation: Any
    rule: MergeRule
    default: Callable[[], Any]


#: A change to one key after one step, as stored: ``(key, op, value)`` where ``op`` is ``set``
#: (value is the new whole value) or ``extend`` (value is the list of items appended).
Change = tuple[str, str, Any]


def _rule_from_metadata(base: Any, metadata: Iterable[Any]) -> MergeRule:
    for meta in metadata:
        if isinstance(meta, MergeRule):
            return meta
        if meta is operator.add:
            # LangGraph's idiom: operator.add on a list means append.
            return append if typing.get_origin(base) is list or base is list else add
        if callable(meta):
            return custom(meta)
    return replace


# What each built-in rule's values must be: an append key holds a list, a merge key a dict, an
# add key something that adds (a number, text, a list). Declared otherwise, a run would fail
# later with a confusing message, or quietly store a list under an int key.
_RULE_TYPES: dict[str, tuple[type, ...]] = {"append": (list,), "merge": (dict,), "add": (int, float, str, list)}


def _check_rule_fits(key: str, annotation: Any, rule: MergeRule) -> None:
    """Refuse a built-in merge rule on a key declared with a simple type it cannot hold."""
    wanted = _RULE_TYPES.get(rule.kind)
    simple = _simple_type(annotation)
    if wanted is None or simple is None or simple in wanted:
        return
    shown = " or ".join(t.__name__ for t in wanted)
    raise GraphDefinitionError(f"state key {key!r} is declared {simple.__name__} with the {rule.kind} rule, which "
                               f"needs a {shown}: declare it e.g. Annotated[{wanted[0].__name__}, {rule.kind}]")


def _const(value: Any) -> Callable[[], Any]:
    """A default factory returning a fresh copy of ``value`` (no sharing between runs)."""
    return lambda: copy.deepcopy(value)


def _default_for(annotation: Any, rule: MergeRule) -> Callable[[], Any]:
    base = typing.get_origin(annotation) or annotation
    if rule.kind == "append" or base is list:
        return list
    if rule.kind == "merge" or base is dict:
        return dict
    if rule.kind == "add":
        return (lambda: 0.0) if base is float else (lambda: 0)
    # Plain typed keys start at their type's zero value; Optional[...] and other types at None.
    zero: dict[Any, Any] = {int: 0, float: 0.0, str: "", bool: False}
    return _const(zero.get(annotation))


def _mismatch(channel: Channel, value: Any) -> type | None:
    """The simple type ``channel`` declares when ``value`` plainly is not one (else None)."""
    expected = _simple_type(channel.annotation)
    if expected is None or value is None:
        return None
    ok = isinstance(value, expected)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if expected is int and isinstance(value, bool):
        ok = False
    return None if ok else expected


def _simple_type(annotation: Any) -> type | None:
    """The runtime type to check an update against, or None when it is not a simple one."""
    base = typing.get_origin(annotation) or annotation
    if base in (str, int, float, bool, list, dict):
        return base  # type: ignore[no-any-return]
    return None


class StateSchema:
    """The keys of a graph's state, with their types, merge rules and defaults."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.kind: str
        self.channels: dict[str, Channel] = {}
        if schema is None or schema is dict:
            self.kind = "dict"
            return
        if dataclasses.is_dataclass(schema):
            self.kind = "dataclass"
        elif hasattr(schema, "model_fields"):
            self.kind = "pydantic"
        elif typing.is_typeddict(schema):
            self.kind = "typeddict"
        else:
            raise TypeError(
                f"state schema must be a TypedDict, dataclass or Pydantic model, not {schema!r}"
            )
        hints = typing.get_type_hints(schema, include_extras=True)
        field_defaults = self._field_defaults(schema)
        for name, hint in hints.items():
            if name.startswith("_"):
                continue
            base, metadata = hint, ()
            if typing.get_origin(hint) is typing.Annotated:
                base, *rest = typing.get_args(hint)
                metadata = tuple(rest)
            rule = _rule_from_metadata(base, metadata)
            if rule.fn is not None:
                _check_arity(name, rule.fn)
            _check_rule_fits(name, base, rule)
            default = field_defaults.get(name) or _default_for(base, rule)
            self.channels[name] = Channel(name, base, rule, default)

    @staticmethod
    def _field_defaults(schema: Any) -> dict[str, Callable[[], Any]]:
        out: dict[str, Callable[[], Any]] = {}
        if dataclasses.is_dataclass(schema):
            for f in dataclasses.fields(schema):
                if f.default is not dataclasses.MISSING:
                    out[f.name] = _const(f.default)
                elif f.default_factory is not dataclasses.MISSING:
                    out[f.name] = f.default_factory
        elif hasattr(schema, "model_fields"):
            for name, info in schema.model_fields.items():
                if info.default_factory is not None:
                    out[name] = info.default_factory
                elif not info.is_required():
                    out[name] = _const(info.default)
        return out

    @property
    def keys(self) -> list[str]:
        """The declared keys, in declaration order (empty for an untyped dict state)."""
        return list(self.channels)

    def is_open(self) -> bool:
        """True for an untyped dict state, which accepts any key with the replace rule."""
        return self.kind == "dict"

    def rule(self, key: str) -> MergeRule:
        ch = self.channels.get(key)
        return ch.rule if ch else replace

    def initial(self, values: dict[str, Any] | None, where: str = "input") -> tuple[dict[str, Any], list[Change]]:
        """The state a run starts from: defaults overlaid with ``values`` (validated)."""
        values = dict(values or {})
        self.check_keys(values, where)
        state: dict[str, Any] = {name: ch.default() for name, ch in self.channels.items()}
        for key, value in values.items():
            self.check_type(key, value, where)
            if self.rule(key).kind == "append" and value is not None and not isinstance(value, list):
                # An append key holds a list: one item given for it is a list of that item, as
                # in an update (and what is recorded is what the run holds).
                value = [value]
            state[key] = value
        changes: list[Change] = [(k, "set", v) for k, v in state.items()]
        # The runtime keeps its own (copy-on-write) containers: never the caller's objects.
        return {k: own(v) for k, v in state.items()}, changes

    def check_keys(self, update: dict[str, Any], where: str) -> None:
        """Refuse keys the schema does not declare, naming them and the known ones."""
        if self.is_open():
            return
        unknown = [k for k in update if k not in self.channels]
        if unknown:
            raise InvalidUpdateError(
                f"{where}: unknown state key {unknown[0]!r} (state keys: {', '.join(self.channels)})"
            )

    def check_type(self, key: str, value: Any, where: str) -> None:
        """Refuse a value whose type plainly contradicts the schema (str for int, and so on)."""
        ch = self.channels.get(key)
        if ch is None or ch.rule.kind == "append":
            return  # an append update may be one item or a list of items
        expected = _mismatch(ch, value)
        if expected is not None:
            raise InvalidUpdateError(
                f"{where}: state key {key!r} expects {expected.__name__}, got {type(value).__name__}"
            )

    def check_update(self, key: str, value: Any, where: str) -> None:
        """Check one update to ``key`` as its merge rule takes it. A custom rule takes any
        update (a LangGraph reducer takes one message for a list key): what it returns is
        checked instead (:meth:`merge`)."""
        if self.rule(key).kind != "custom":
            self.check_type(key, value, where)

    def _check_result(self, key: str, value: Any, where: str) -> None:
        """Refuse what a custom merge rule returned when it contradicts the key's declared type."""
        ch = self.channels.get(key)
        expected = _mismatch(ch, value) if ch is not None else None
        if ch is not None and expected is not None:
            raise InvalidUpdateError(
                f"{where}: merge rule {ch.rule!r} of state key {key!r} returned {type(value).__name__}, but the "
                f"key is declared {expected.__name__}; make the rule return {expected.__name__}"
            )

    def validate_update(self, update: dict[str, Any], where: str) -> None:
        """Check one node's update on its own: known keys, plausible types, dicts for merge keys."""
        self.check_keys(update, where)
        for key, value in update.items():
            if isinstance(value, Overwrite):
                self._check_whole(key, value.value, where)
                continue
            self.check_update(key, value, where)
            if self.rule(key).kind == "merge" and not isinstance(value, dict):
                raise InvalidUpdateError(f"{where}: state key {key!r} merges dicts, got {type(value).__name__}")

    def _check_whole(self, key: str, value: Any, where: str) -> None:
        """Check a value that replaces a key's whole value (an Overwrite, a fork's edit)."""
        rule = self.rule(key).kind
        if rule == "append" and not isinstance(value, list):
            raise InvalidUpdateError(f"{where}: state key {key!r} holds a list, got {type(value).__name__}")
        if rule == "merge" and value is not None and not isinstance(value, dict):
            raise InvalidUpdateError(f"{where}: state key {key!r} holds a dict, got {type(value).__name__}")
        if rule != "append":
            self.check_type(key, value, where)

    def merge(
        self, state: dict[str, Any], updates: list[tuple[str, Any]],
        grown: list[tuple[SharedList, int]] | None = None,
    ) -> tuple[dict[str, Any], list[Change]]:
        """Apply the updates of one superstep, in the given (fixed) order.

        ``updates`` is ``[(node name, update), ...]``, an update being a dict, a list of dicts
        (applied in order; later ones may rewrite what earlier ones of the same task wrote) or
        None. Returns the new state (a new dict) and the list of changes to store.

        The old state is left as it was, unless ``grown`` is given: then an ``append`` key's
        list is extended in place (O(items), not O(length) — what keeps long runs flat), and
        ``grown`` receives ``(list, length before)`` for each, so that the caller can undo it
        with :func:`undo_growth` if the step does not commit.
        """
        new = dict(state)
        pending: dict[str, list[Any]] = {}  # append-key items to add in place once all is valid
        writers: dict[str, int] = {}
        overwriters: dict[str, int] = {}
        extended: dict[str, list[Any]] = {}
        overwritten: set[str] = set()
        touched: list[str] = []

        def conflict(key: str, first_pos: int, node: str, verb: str) -> InvalidUpdateError:
            first = updates[first_pos][0]
            who = f"nodes {first!r} and {node!r}" if first != node else f"two branches of node {node!r}"
            hint = ("write it from one branch" if verb == "overwrote" else
                    "give the key a merge rule (e.g. Annotated[list, append]) or write it from one branch")
            return InvalidUpdateError(f"{who} both {verb} state key {key!r} in the same step; {hint}")

        for position, (node, update) in enumerate(updates):
            parts = update if isinstance(update, list) else [update]
            for part in parts:
                if not part:
                    continue
                if not isinstance(part, dict):
                    what = (f"a list holding a {type(part).__name__}" if isinstance(update, list)
                            else type(part).__name__)
                    raise InvalidUpdateError(
                        f"node {node!r} returned {what}; a node returns a dict of state updates (or a list "
                        "of them) or None"
                    )
                self.check_keys(part, f"node {node!r}")
                for key, value in part.items():
                    rule = self.rule(key)
                    if isinstance(value, Overwrite):
                        self._check_whole(key, value.value, f"node {node!r}")
                        if overwriters.get(key, position) != position:
                            raise conflict(key, overwriters[key], node, "overwrote")
                        if rule.kind == "replace" and writers.get(key, position) != position:
                            raise conflict(key, writers[key], node, "wrote")
                        overwriters[key] = writers[key] = position
                        new[key] = value.value
                        overwritten.add(key)
                        extended.pop(key, None)
                        pending.pop(key, None)
                    elif rule.kind == "replace":
                        self.check_type(key, value, f"node {node!r}")
                        if writers.get(key, position) != position:
                            raise conflict(key, writers[key], node, "wrote")
                        writers[key] = position
                        new[key] = value
                    elif (grown is not None and rule.kind == "append" and type(new.get(key)) is SharedList
                          and new[key] is state.get(key) and not new[key].changed()):
                        # The runtime's own list, unchanged: grown in place below, once valid.
                        self.check_type(key, value, f"node {node!r}")
                        items = value if isinstance(value, list) else [value]
                        extended.setdefault(key, []).extend(items)
                        pending.setdefault(key, []).extend(items)
                    else:
                        self.check_update(key, value, f"node {node!r}")
                        current = new.get(key)
                        if key in pending:  # appended in place so far: make it a value first
                            current = [*(current or []), *pending.pop(key)]
                        new[key] = self._fold(rule, key, node, current, value, extended)
                        if rule.kind == "custom":
                            self._check_result(key, new[key], f"node {node!r}")
                    if key not in touched:
                        touched.append(key)
        changes: list[Change] = []
        for key in touched:
            if key in extended and key not in overwritten and self.rule(key).kind == "append":
                changes.append((key, "extend", extended[key]))
            else:
                changes.append((key, "set", new[key]))
        if grown is not None:
            for key in touched:
                if key in pending:
                    lst = new[key]
                    grown.append((lst, len(lst)))
                    lst.grow(pending[key])
                else:
                    new[key] = own(new[key])  # a node's object is never the runtime's
        return new, changes

    @staticmethod
    def _fold(rule: MergeRule, key: str, node: str, current: Any, value: Any,
              extended: dict[str, list[Any]]) -> Any:
        """One update folded into a key with a merge rule (not replace)."""
        if rule.kind == "append":
            items = value if isinstance(value, list) else [value]
            extended.setdefault(key, []).extend(items)
            return [*(current or []), *items]
        if rule.kind == "merge":
            if not isinstance(value, dict):
                raise InvalidUpdateError(f"node {node!r}: state key {key!r} merges dicts, got {type(value).__name__}")
            return {**(current or {}), **value}
        try:
            if rule.kind == "add":
                return (current or 0) + value
            assert rule.fn is not None
            return rule.fn(current, value)
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            raise MergeError(f"merge rule {rule!r} of state key {key!r} failed on the update of node "
                             f"{node!r}: {what}") from exc

    def view(self, state: dict[str, Any], *, shared: bool = False) -> Any:
        """The object a node receives: a dict, or an instance of the dataclass/Pydantic schema.

        Changing it in place never changes ``state``. By default the node gets its own copy,
        one level deep. ``shared=True`` (one reader at a time, dict states): the node gets the
        state's own copy-on-write lists and dicts (:mod:`workbench.cow`) and the caller must
        call :func:`workbench.cow.reclaim` on ``state`` after the node ran — O(keys) per step
        instead of O(size).
        """
        if shared and self.kind in ("dict", "typeddict"):
            for k, v in state.items():
                if type(v) is list or type(v) is dict:  # a resumed or forked state: owned once
                    state[k] = own(v)
            return dict(state)
        copied = {k: (v.copy() if isinstance(v, (list, dict, set)) else v) for k, v in state.items()}
        if self.kind in ("dict", "typeddict"):
            return copied
        return self.schema(**self.decode(copied))

    def decode(self, state: dict[str, Any]) -> dict[str, Any]:
        """Restore declared types (datetimes, models, ...) on a state decoded from JSON."""
        from workbench.codec import coerce

        # Schema order first, so a rebuilt state reads like a live one.
        out = {k: state[k] for k in self.channels if k in state}
        out.update({k: v for k, v in state.items() if k not in out})
        for key, ch in self.channels.items():
            if key in out:
                out[key] = coerce(out[key], ch.annotation)
        return out

    def describe(self) -> list[dict[str, str]]:
        """The schema as rows of ``{key, type, rule}`` (for docs, the CLI and the TUI)."""
        rows = []
        for ch in self.channels.values():
            t = getattr(ch.annotation, "__name__", None) or str(ch.annotation).replace("typing.", "")
            rows.append({"key": ch.name, "type": t, "rule": repr(ch.rule)})
        return rows


def undo_growth(state: dict[str, Any], grown: list[tuple[SharedList, int]]) -> None:
    """Take back what :meth:`StateSchema.merge` appended in place (a step that did not commit):
    each grown list in ``state`` is replaced by a fresh one holding what it held before the
    step (even if a router changed it in place since); then any other container a reader
    changed is reclaimed."""
    for lst, length in grown:
        before = SharedList(lst.pristine()[:length])
        for key, value in state.items():
            if value is lst:
                state[key] = before
    grown.clear()
    reclaim(state)


def apply_changes(state: dict[str, Any], changes: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Fold stored changes into a state (used to rebuild any step's state from the store)."""
    for key, op, value in changes:
        if op == "extend":
            state[key] = [*(state.get(key) or []), *value]
        else:
            state[key] = value
    return state

"""Copy-on-write containers: how a node can read the state's lists and dicts without a copy.

A node used to receive its own copy of every top-level list and dict of the state, so that
appending to ``state["messages"]`` in place could not change the runtime's state (and so the
record) behind its back. That copy costs O(length) per step — a 10,000-step run appending one
item per step copied 50 million pointers. Now the runtime keeps the state's top-level lists and
dicts as :class:`SharedList` / :class:`SharedDict` and hands nodes the objects themselves. The
first in-place change to one (through any method or operator: ``append``, ``x[i] = v``,
``del``, ``+=``, ``sort``, ``update``, ...) first saves a pristine copy of its contents; after
the node ran, :func:`reclaim` puts a fresh container with those pristine contents back into the
runtime's state. A node that mutates pays one copy; one that only reads pays nothing.

They are real ``list`` / ``dict`` subclasses, so ``isinstance``, JSON encoding, slicing,
``+`` and comparisons behave as before. What the methods cannot see: C code that changes a list
subclass without calling its methods (``heapq.heappush(state["xs"], v)``, ``list.append(xs,
v)``); :func:`reclaim` also compares lengths, which catches the ones that add or remove items.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

__all__ = ["SharedDict", "SharedList", "own", "reclaim"]


class SharedList(list[Any]):
    """A list of the runtime's state, handed to nodes without a copy (see the module docstring).

    ``_before`` holds a copy of the contents from just before the first in-place change, or
    None while it is unchanged; ``_length`` is the length the runtime last gave it.
    """

    __slots__ = ("_before", "_length")

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self._before: list[Any] | None = None
        self._length = list.__len__(self)

    def _touch(self) -> None:
        if self._before is None:
            self._before = list.copy(self)

    def grow(self, items: list[Any]) -> None:
        """Append ``items`` on the runtime's behalf (the append merge rule): not a mutation."""
        list.extend(self, items)
        self._length = list.__len__(self)

    def changed(self) -> bool:
        """True when something changed it in place since the runtime last looked."""
        return self._before is not None or list.__len__(self) != self._length

    def pristine(self) -> list[Any]:
        """Its contents as the runtime last knew them."""
        if self._before is not None:
            return self._before
        # Changed behind the methods' back (heapq and the like): only additions at the end and
        # removals can be undone from here; the length says how many items were the runtime's.
        return list.copy(self)[: self._length]

    def append(self, item: Any) -> None:
        self._touch()
        super().append(item)

    def extend(self, items: Any) -> None:
        self._touch()
        super().extend(items)

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._touch()
        super().insert(index, item)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._touch()
        return super().pop(index)

    def remove(self, item: Any) -> None:
        self._touch()
        super().remove(item)

    def clear(self) -> None:
        self._touch()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._touch()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._touch()
        super().reverse()

    def __setitem__(self, index: Any, value: Any) -> None:
        self._touch()
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self._touch()
        super().__delitem__(index)

    def __iadd__(self, items: Any) -> SharedList:  # type: ignore[override,misc]
        self._touch()
        list.extend(self, items)
        return self

    def __imul__(self, n: SupportsIndex) -> SharedList:  # type: ignore[override,misc]
        self._touch()
        return super().__imul__(n)  # type: ignore[return-value]

    def copy(self) -> list[Any]:
        """A plain list (what ``list.copy`` returned before)."""
        return list.copy(self)

    def __reduce__(self) -> Any:  # pickle and deepcopy: a plain list
        return (list, (list.copy(self),))


class SharedDict(dict[Any, Any]):
    """A dict of the runtime's state, handed to nodes without a copy (see the module docstring)."""

    __slots__ = ("_before", "_length")

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self._before: dict[Any, Any] | None = None
        self._length = dict.__len__(self)

    def _touch(self) -> None:
        if self._before is None:
            self._before = dict.copy(self)

    def changed(self) -> bool:
        return self._before is not None or dict.__len__(self) != self._length

    def pristine(self) -> dict[Any, Any]:
        return self._before if self._before is not None else dict.copy(self)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._touch()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._touch()
        super().__delitem__(key)

    def pop(self, *args: Any) -> Any:
        self._touch()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._touch()
        return super().popitem()

    def clear(self) -> None:
        self._touch()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._touch()
        super().update(*args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._touch()
        return super().setdefault(key, default)

    def __ior__(self, other: Any) -> SharedDict:  # type: ignore[override,misc]
        self._touch()
        dict.update(self, other)
        return self

    def copy(self) -> dict[Any, Any]:
        """A plain dict (what ``dict.copy`` returned before)."""
        return dict.copy(self)

    def __reduce__(self) -> Any:  # pickle and deepcopy: a plain dict
        return (dict, (dict.copy(self),))


def own(value: Any) -> Any:
    """``value`` as the runtime keeps it: a plain top-level list or dict becomes a shared one
    (always a copy, so no object of a node's or a caller's — nor another key's — is ever the
    runtime's); anything else as it is."""
    kind = type(value)
    if kind is list or kind is SharedList:
        return SharedList(value)
    if kind is dict or kind is SharedDict:
        return SharedDict(value)
    return value


def reclaim(state: dict[str, Any]) -> None:
    """After nodes (or routers, or a break condition) saw ``state``: any shared container one
    of them changed in place is replaced, in ``state``, by a fresh one holding what it held."""
    for key, value in state.items():
        kind = type(value)
        if (kind is SharedList or kind is SharedDict) and value.changed():
            state[key] = kind(value.pristine())

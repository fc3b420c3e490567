"""One trace store shared by the threads of a long-lived process (the workbench).

The store no longer locks other processes out while it is open (store/database.py takes the
file only while it works), so a long-lived process simply keeps one :class:`TraceStore` and lends
it to every thread; this class keeps the lease-style API the TUI is written against.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.store.store import TraceStore


class SharedStore:
    """A :class:`TraceStore` opened on first use and lent to every thread until :meth:`close`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._store: TraceStore | None = None

    @contextmanager
    def lease(self) -> Iterator[TraceStore]:
        """Use the store (opened on first use; raises StoreError when it cannot be opened)."""
        with self._lock:
            if self._store is None:
                self._store = TraceStore(self.path)
            store = self._store
        yield store

    def close(self, timeout: float | None = None) -> None:
        """Close the store (call when no lease is active); ``timeout``: see TraceStore.close."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            if timeout is None:
                store.close()
            else:
                store.close(timeout=timeout)

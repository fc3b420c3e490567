"""One trace store shared by the threads of a long-lived process, held only while in use.

DuckDB lets one process hold a database file; a workbench left open all day must not lock the
CLI out. :class:`SharedStore` opens the store on the first lease, lends the same instance to
every thread that asks while it is open, and closes it once nobody has used it for
``idle_seconds`` — so a ``workbench run`` in another terminal can get in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.store.store import TraceStore


class SharedStore:
    """Leases of one :class:`TraceStore` (see the module docstring)."""

    def __init__(self, path: str, idle_seconds: float = 2.0) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._store: TraceStore | None = None
        self._users = 0
        self._timer: threading.Timer | None = None

    @contextmanager
    def lease(self) -> Iterator[TraceStore]:
        """Use the store; raises StoreError when another process holds the file."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._store is None:
                self._store = TraceStore(self.path)
            self._users += 1
            store = self._store
        try:
            yield store
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._timer = threading.Timer(self.idle_seconds, self._close_if_idle)
                    self._timer.daemon = True
                    self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._users == 0 and self._store is not None:
                store, self._store = self._store, None
                store.close()

    def close(self) -> None:
        """Close now (waits for nothing: call when no lease is active)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._store is not None:
                store, self._store = self._store, None
                store.close()

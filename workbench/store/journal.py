"""The append-only journal that makes every recorded step durable before the next one starts.

Each record is one JSON line written with a single ``os.write`` on an ``O_APPEND`` descriptor:
once the call returns, the bytes are in the kernel, so a ``kill -9`` of the process cannot lose
them (``fsync=True`` also survives power loss, at about 10x the cost). A background writer moves
records into DuckDB in batches; when the store is next opened, records DuckDB does not have yet
(sequence number above the one DuckDB stored with its last batch) are loaded from here.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any


class Journal:
    """A JSON-lines file of ``{"s": seq, "t": kind, ...}`` records beside the database."""

    def __init__(self, path: str, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, lines: list[str]) -> None:
        """Write already-encoded records (each one JSON text, no newline) in one system call."""
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, data)
            if self.fsync:
                os.fsync(self._fd)

    def truncate(self) -> None:
        """Empty the journal (every record in it is in DuckDB)."""
        with self._lock:
            os.ftruncate(self._fd, 0)
            if self.fsync:
                os.fsync(self._fd)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    @staticmethod
    def read(path: str) -> Iterator[dict[str, Any]]:
        """Yield the records of a journal file; a torn last line (power loss) is skipped."""
        if not os.path.exists(path):
            return
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # torn final write: the step it belonged to is re-run on resume
                try:
                    yield json.loads(raw)
                except ValueError:
                    break

"""Attached lake instances kept by a process after their store closed, for its next store.

Opening a lake costs a DuckDB instance, two extension loads (each checks the signature of a
~40 MB file) and an ATTACH that reads the catalog from PostgreSQL: about 0.4 CPU-seconds. A
process that opens the same lake again and again (a project's regression suite calling
``workbench.testing.assert_replays`` once per recorded run, a script looping over runs) pays it
once: a closed store hands its instances back here, and the next store of the same lake, with
the same configuration and the same PostgreSQL credentials, takes one.

An instance taken from here is checked against PostgreSQL first (one query); one that fails is
closed and the store attaches afresh, so that an unreachable server, a wrong password or a
dropped lake is reported exactly as a first open reports it. Instances never cross a fork.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from typing import Any

# A store uses one instance per mode at most; a few lakes' worth are kept, the oldest closed
# first, so that an idle process never holds many PostgreSQL connections.
_KEEP = 4

_lock = threading.Lock()
_idle: list[tuple[str, Any]] = []  # (key, instance), oldest first
_pid = os.getpid()


def instance_key(catalog: str, data_path: str | None, read_only: bool) -> str:
    """What an instance is only reusable for: the lake, its data path, the mode, and libpq's
    view of the credentials (``PG*`` variables, ``~/.pgpass`` under ``HOME``) — hashed, so no
    password is kept in it."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("PG") or k == "HOME")
    return hashlib.sha256(repr((catalog, data_path, read_only, env)).encode()).hexdigest()


def take(key: str) -> Any | None:
    """The newest idle instance for ``key`` (unchecked), or None."""
    global _pid
    with _lock:
        if os.getpid() != _pid:  # a forked child: the parent's instances and sockets are not ours
            _idle.clear()
            _pid = os.getpid()
            return None
        for i in range(len(_idle) - 1, -1, -1):
            if _idle[i][0] == key:
                return _idle.pop(i)[1]
    return None


def give_back(key: str, instance: Any) -> None:
    """Keep ``instance`` for the next store of ``key`` (closing the oldest kept beyond a few)."""
    evicted = []
    with _lock:
        if os.getpid() != _pid:
            evicted.append(instance)
        else:
            _idle.append((key, instance))
            while len(_idle) > _KEEP:
                evicted.append(_idle.pop(0)[1])
    for old in evicted:
        discard(old)


def discard(instance: Any) -> None:
    try:
        instance.close()
    except Exception:  # an outage: nothing more to lose here
        pass


@atexit.register
def close_all() -> None:
    """Close every idle instance (at exit: their PostgreSQL connections end cleanly)."""
    with _lock:
        instances = [instance for _, instance in _idle]
        _idle.clear()
    for instance in instances:
        discard(instance)

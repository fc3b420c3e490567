"""The spool: a store's local directory of journals and the files processes coordinate through.

For a DuckDB file ``traces/workbench.duckdb`` it is ``traces/workbench.duckdb.spool/``::

    journals/   one journal per recording process (journal.py); orphans are loaded by others
    damaged/    journals or frames that could not be loaded, kept for a person to look at
    waiters     processes waiting for the database file hold a shared lock on it (database.py)
    readers     of those, the ones waiting to read: writers let them go first
    holders     processes that have the database file open hold a shared lock on it: a file
                held by a process that is not on this list is held by something else
    signal      a counter bumped after every commit: readers poll it to see new data cheaply

Nothing in here is needed to read the store; all of it is safe to delete when no workbench
process is running (unloaded records in journals are lost then).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.store.journal import SUFFIX, is_held


def host_name() -> str:
    """This machine's name, reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname() or "host")[:64]


def new_owner_id() -> str:
    """An id for one recording process: ``host-pid-random``."""
    return f"{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"


def journal_owner(journal: str) -> str:
    """The process a journal belongs to (journal ids are ``owner.generation``)."""
    return journal.rsplit(".", 1)[0]


def owner_host(owner: str) -> str:
    return owner.rsplit("-", 2)[0]


def owner_pid(owner: str) -> int | None:
    parts = owner.rsplit("-", 2)
    try:
        return int(parts[1]) if len(parts) == 3 else None
    except ValueError:
        return None


class Spool:
    """One store's spool directory (see the module docstring)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.journals = os.path.join(root, "journals")
        self.damaged = os.path.join(root, "damaged")
        self._signal = os.path.join(root, "signal")
        self._waiters = os.path.join(root, "waiters")
        self._waiters_fd = -1
        self._holders = os.path.join(root, "holders")
        self._readers = os.path.join(root, "readers")
        self._readers_fd = -1

    def create(self) -> None:
        """Make the directories (raises OSError when the location is not writable)."""
        os.makedirs(self.journals, exist_ok=True)
        os.makedirs(self.damaged, exist_ok=True)

    def exists(self) -> bool:
        return os.path.isdir(self.journals)

    def discard_if_unused(self) -> None:
        """Take the spool away again when it holds no journal and nothing set aside (what
        opening a file that was then refused made)."""
        try:
            if os.listdir(self.journals) or os.listdir(self.damaged):
                return
        except OSError:
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ journals

    def journal_path(self, journal: str) -> str:
        return os.path.join(self.journals, journal + SUFFIX)

    def journal_ids(self) -> list[str]:
        """Ids of every journal in the spool (live or not), oldest file first."""
        try:
            names = [n for n in os.listdir(self.journals) if n.endswith(SUFFIX)]
        except FileNotFoundError:
            return []

        def mtime(name: str) -> float:
            try:
                return os.path.getmtime(os.path.join(self.journals, name))
            except FileNotFoundError:
                return 0.0

        return [n[: -len(SUFFIX)] for n in sorted(names, key=mtime)]

    def orphans(self) -> list[str]:
        """Ids of journals whose process is gone (nobody holds the file)."""
        return [j for j in self.journal_ids() if not is_held(self.journal_path(j))]

    def is_alive(self, owner: str, *, besides: str | None = None) -> bool:
        """Whether the process ``owner`` (on this host) still holds one of its journals
        (``besides``: one that does not count, because the caller holds it to load it)."""
        for _ in range(5):
            mine = [j for j in self.journal_ids() if journal_owner(j) == owner and j != besides]
            if any(is_held(self.journal_path(j)) for j in mine):
                return True
            # A journal that vanished since the listing may have been rolled over (the new one
            # is locked before the old one goes): look again before calling the process dead.
            if all(os.path.exists(self.journal_path(j)) for j in mine):
                return False
        return False

    def has_journal_of(self, owner: str) -> bool:
        """Whether a journal of the process ``owner`` is in this spool."""
        return any(journal_owner(j) == owner for j in self.journal_ids())

    def remove_stale_new_files(self, older_than_s: float = 60.0) -> None:
        """Remove journals that a killed process was still creating (``*.new``: made, not yet
        locked and renamed), once nobody holds them and they are old enough not to be in the
        middle of being made."""
        try:
            names = [n for n in os.listdir(self.journals) if n.endswith(SUFFIX + ".new")]
        except OSError:
            return
        now = time.time()
        for name in names:
            path = os.path.join(self.journals, name)
            try:
                if now - os.path.getmtime(path) >= older_than_s and not is_held(path):
                    os.unlink(path)
            except OSError:
                pass

    def keep_damaged(self, name: str, data: bytes) -> str:
        """Save bytes that could not be loaded under ``damaged/`` and return the path."""
        os.makedirs(self.damaged, exist_ok=True)
        path = os.path.join(self.damaged, f"{time.strftime('%Y%m%dT%H%M%S')}-{name}")
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    # ------------------------------------------------------------------ change signal

    def bump(self) -> None:
        """Tell readers the database changed (called after a commit, under the write lock)."""
        try:
            fd = os.open(self._signal, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            raw = os.pread(fd, 8, 0)
            count = struct.unpack("<Q", raw)[0] + 1 if len(raw) == 8 else 1
            os.pwrite(fd, struct.pack("<Q", count), 0)
        except OSError:
            pass
        finally:
            os.close(fd)

    def change_token(self) -> tuple[int, int]:
        """Changes whenever a commit happened since the last call (a stat and an 8-byte read)."""
        try:
            fd = os.open(self._signal, os.O_RDONLY)
        except OSError:
            return (0, 0)
        try:
            raw = os.pread(fd, 8, 0)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return (struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0, st.st_mtime_ns)

    # ------------------------------------------------------------------ waiting for the file

    @contextmanager
    def waiting(self, *, reader: bool = False) -> Iterator[None]:
        """Announce that this process waits for the database file (to read, with ``reader``)
        while the block runs."""
        fds = [fd for fd in (_shared_lock(self._waiters), _shared_lock(self._readers) if reader else -1) if fd >= 0]
        try:
            yield  # with a read-only spool nothing is announced: plain retrying still works
        finally:
            for fd in fds:
                os.close(fd)

    def has_waiters(self) -> bool:
        """True when another process waits for the database file (see :meth:`waiting`)."""
        if self._waiters_fd < 0:
            self._waiters_fd = _open_lock_file(self._waiters)
        return _is_locked(self._waiters_fd)

    def readers_waiting(self) -> bool:
        """True when another process waits for the database file to read from it."""
        if self._readers_fd < 0:
            self._readers_fd = _open_lock_file(self._readers)
        return _is_locked(self._readers_fd)

    def hold(self) -> int:
        """Announce that this process has the database file open; returns the fd to pass to
        :meth:`unhold` (-1 when the spool is not writable)."""
        try:
            fd = os.open(self._holders, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            return -1
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd

    @staticmethod
    def unhold(fd: int) -> None:
        if fd >= 0:
            os.close(fd)

    def held_by_workbench(self) -> bool:
        """True when some workbench process says it has the database file open."""
        try:
            fd = os.open(self._holders, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False

    def close(self) -> None:
        for name in ("_waiters_fd", "_readers_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def _open_lock_file(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return -1


def _shared_lock(path: str) -> int:
    """Hold a shared lock on ``path``; returns the fd to close (-1 when the file cannot be made)."""
    fd = _open_lock_file(path)
    if fd >= 0:
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _is_locked(fd: int) -> bool:
    """Whether some process holds a shared lock on the file behind ``fd``."""
    if fd < 0:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False

"""Per-process journals: what makes every recorded step durable before the next one starts.

Each process that records owns one journal file in the store's spool directory and holds an
exclusive ``flock`` on it for as long as it lives; a journal nobody holds belongs to a process
that died, and any other process may load what it left into the database.

A journal is a sequence of *frames*, one line each::

    {"f": 7, "r": [["task", {...}], ["change", {...}], ["plan", {...}]]}<TAB>1c291ca3<LF>

``f`` numbers the frames of the journal from 1; ``r`` holds the records of one ``record_many``
call (a step's task row, state changes and next plan travel together); the last field is the
CRC-32 of the JSON text. A frame is written with one ``write`` on an ``O_APPEND`` descriptor:
once the call returns the bytes are in the kernel, so a ``kill -9`` cannot lose them
(``fsync=True`` also survives power loss). A frame counts whole or not at all: a short write
(disk full, a signal) is cut back off before the error is raised, and a reader stops at a line
without its newline (a torn tail) or whose checksum does not match (damage), so a step's changes
can never be loaded without the plan that follows them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from workbench.errors import StoreError

SUFFIX = ".wbj"
_TAB = 0x09


@dataclass
class Frame:
    """One frame read back from a journal."""

    number: int
    records: list[tuple[str, dict[str, Any]]]
    start: int  # byte offset of the frame's line
    end: int  # byte offset just after it


@dataclass
class ReadResult:
    """The frames of a journal from some offset on, and why reading stopped."""

    frames: list[Frame]
    end: int  # offset after the last good frame
    stop: str  # "eof" | "torn" (an unfinished last line) | "damaged" (bad checksum or JSON)
    size: int  # the file's size when read


def encode_frame(number: int, records: list[tuple[str, dict[str, Any]]]) -> bytes:
    """The bytes of one frame. Raises ValueError for text that is not valid Unicode (a lone
    surrogate) before anything is written."""
    # The text is dropped as soon as it is encoded: for a frame holding a big value, the text, its
    # bytes and the finished frame would otherwise all be alive at once (three copies, not two).
    # strict: a lone surrogate raises UnicodeEncodeError here
    body = json.dumps({"f": number, "r": records}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return body + b"\t" + f"{zlib.crc32(body):08x}".encode() + b"\n"


def decode_line(line: bytes) -> tuple[int, list[tuple[str, dict[str, Any]]]] | None:
    """A frame's number and records, or None when the line is damaged."""
    cut = line.rfind(b"\t")
    if cut < 0 or len(line) - cut != 9:
        return None
    body, crc = line[:cut], line[cut + 1:]
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("f"), int) or not isinstance(data.get("r"), list):
        return None
    records: list[tuple[str, dict[str, Any]]] = []
    for item in data["r"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict)):
            return None
        records.append((item[0], item[1]))
    return data["f"], records


def read_frames(path: str, offset: int = 0) -> ReadResult:
    """Read the frames of a journal file from ``offset`` (the start of a frame) to the end."""
    frames: list[Frame] = []
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return ReadResult([], offset, "eof", 0)
    pos = 0
    stop = "eof"
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            stop = "torn"
            break
        decoded = decode_line(data[pos:nl])
        if decoded is None:
            stop = "damaged"
            break
        frames.append(Frame(decoded[0], decoded[1], offset + pos, offset + nl + 1))
        pos = nl + 1
    return ReadResult(frames, offset + pos, stop, offset + len(data))


def is_held(path: str) -> bool:
    """True while the process that owns a journal is alive (it holds the file's lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we got it
    return False


def lock_for_loading(path: str) -> int | None:
    """Take a dead process's journal for loading: an fd holding its lock, or None when its
    process is alive, another process (or thread) is loading it, or it is gone already.

    The lock is what makes loading an orphan exactly-once: whoever holds it loads, then
    removes the file before letting go. A file removed between our open and our lock is
    detected by its inode no longer being linked at ``path``.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if st.st_nlink == 0 or now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            return None  # loaded and removed by someone else while we were opening it
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class Journal:
    """The journal this process writes (see the module docstring)."""

    def __init__(self, directory: str, journal_id: str, fsync: bool = False) -> None:
        self.id = journal_id
        self.path = os.path.join(directory, journal_id + SUFFIX)
        self.fsync = fsync
        self._lock = threading.Lock()
        # Created under a temporary name and locked before it gets its real name, so that no
        # other process ever sees the journal of a live process unlocked.
        tmp = self.path + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = 0
        self._frames = 0

    @property
    def frames(self) -> int:
        """How many frames this journal holds."""
        return self._frames

    @property
    def size(self) -> int:
        return self._size

    def append(self, records: list[tuple[str, dict[str, Any]]]) -> tuple[int, int]:
        """Write one frame; return its number and the offset after it.

        Raises StoreError when the bytes cannot all be written (the partial frame is removed
        first, so the journal stays a sequence of whole frames), and ValueError for records
        that cannot be encoded (nothing is written).
        """
        with self._lock:
            if self._fd < 0:
                raise StoreError("the trace store is closed")
            number = self._frames + 1
            data = encode_frame(number, records)
            written = 0
            try:
                while written < len(data):
                    n = os.write(self._fd, data[written:])
                    if n <= 0:
                        raise OSError(errno.EIO, "short write")
                    written += n
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._cut_back()
                reason = exc.strerror or str(exc)
                # A frame that starts a run (a run, a fork, a continuation) leaves nothing to resume.
                then = ("nothing of the run was recorded — make room, then start it again"
                        if any(kind == "run" for kind, _ in records) else
                        "every step recorded before this one is kept — make room, then continue the run with "
                        "'workbench resume'")
                raise StoreError(f"cannot write the trace store's journal {self.path}: {reason}; {then}") from None
            self._frames = number
            self._size += len(data)
            return number, self._size

    def _cut_back(self) -> None:
        """Remove a partly written frame (best effort: a reader ignores a torn tail anyway)."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass

    def close(self, remove: bool = False) -> None:
        """Close the journal (dropping its lock); ``remove`` deletes the file first."""
        with self._lock:
            if self._fd < 0:
                return
            if remove:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            os.close(self._fd)
            self._fd = -1


def frame_records(frames: list[Frame]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of a list of frames, in order."""
    for frame in frames:
        yield from frame.records

"""Standard output that never loses the end of what a command printed.

With ``python -u`` or ``PYTHONUNBUFFERED=1`` (common in containers and CI), ``sys.stdout`` writes
straight to the file descriptor, and a write the kernel completes only in part — a pipe whose
reader is slow when a signal arrives, a descriptor another process made non-blocking — loses the
rest without an error: ``workbench run --json`` printed 128 KiB of a 1.6 MB result, then a
newline, and exited 0. A buffered writer writes what is left until it is all out, or raises.
"""

from __future__ import annotations

import io
import sys
from typing import Any

_kept: list[Any] = []
"""Streams replaced here: closing one (as the collector would) would close what it wrote to."""


def complete_writes() -> None:
    """Make ``sys.stdout`` write everything it is given (line by line, as unbuffered output
    appears), if it is an unbuffered text stream over a file descriptor; otherwise leave it."""
    out = sys.stdout
    raw = getattr(out, "buffer", None)
    if not isinstance(out, io.TextIOWrapper) or raw is None or isinstance(raw, io.BufferedIOBase):
        return  # buffered already (a BufferedWriter goes on after a partial write), or not ours
    if isinstance(raw, io.FileIO):
        # A second handle on the descriptor: the original stream (sys.__stdout__) stays usable.
        raw = io.FileIO(raw.fileno(), "wb", closefd=False)
    _kept.append(out)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors,
                                  line_buffering=True)

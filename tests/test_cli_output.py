"""Unbuffered standard output (``python -u``, ``PYTHONUNBUFFERED=1``) loses the rest of a write
the kernel completes in part; the CLI's output must arrive whole (workbench/cli/output.py)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.cli.output import complete_writes


class ShortWrites(io.RawIOBase):
    """A descriptor whose every write takes at most 1,000 bytes, like a pipe interrupted by a
    signal while its reader is slow."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        n = min(len(b), 1000)
        self.data += bytes(b[:n])
        return n


def unbuffered_stdout(monkeypatch: pytest.MonkeyPatch) -> ShortWrites:
    """sys.stdout as Python builds it for -u: text straight onto the raw stream, no buffered layer
    between. (Set in the test itself: pytest puts its own capture back between fixtures and test.)"""
    raw = ShortWrites()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    return raw


def test_the_plain_unbuffered_stream_loses_the_end_of_a_long_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure being guarded against (if Python fixes it, this test says so)."""
    raw = unbuffered_stdout(monkeypatch)
    print("x" * 50_000)
    sys.stdout.flush()
    assert len(raw.data) < 50_001


def test_a_long_write_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = unbuffered_stdout(monkeypatch)
    complete_writes()
    print("x" * 50_000)
    print("end")
    sys.stdout.flush()
    assert bytes(raw.data) == b"x" * 50_000 + b"\nend\n"


def test_lines_still_appear_as_they_are_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = unbuffered_stdout(monkeypatch)
    complete_writes()
    print("step 1: classify")
    assert bytes(raw.data) == b"step 1: classify\n"  # no flush needed


def test_buffered_output_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    complete_writes()
    assert sys.stdout is out


def test_a_command_output_larger_than_a_pipe_arrives_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = unbuffered_stdout(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_PREWARM", "0")
    big = "y" * 300_000
    code = main(["sql", f"SELECT '{big}' AS v", "--db", str(tmp_path / "t.duckdb"), "--format", "json"])
    assert code == 0
    rows = json.loads(bytes(raw.data).decode())
    assert rows == [{"v": big}]

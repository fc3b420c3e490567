"""Checks of an imported trace file's numbers and timestamps beyond their SQL types.

:func:`workbench.transfer.read_trace_file` runs :func:`check_row` on every row before anything
is written. A value of the right type could still break the commands that read it later: an
``llm_calls`` row claiming 2**63-1 prompt tokens made ``workbench runs`` fail for the whole store
(an INT64 overflow summing tokens), and a run started in the year 9999 became ``last`` for every
``resume last`` and ``--continue last`` and showed a negative duration. Each is refused in one
line naming the file and line, the run and the column.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from workbench.errors import InputError

# Clocks of the machines that share traces (a fleet, a laptop importing a production run)
# disagree by seconds or minutes, never by a day: a timestamp further ahead than this, or an end
# further before its start, is a broken or hostile file. An end may precede its start by less:
# a run started by one machine can be finished, and a question answered, by another whose clock
# is behind, and the store holding the original keeps those values as they are.
CLOCK_SKEW_US = 24 * 3600 * 1_000_000

MAX_TOKENS = 10**12  # far above any call, and a store's sums of them stay within 64 bits
MAX_COST_USD = 10**9
MAX_MS = 10**12  # about 31 years
MAX_ATTEMPTS = 10**6

# Column -> (least, most) allowed, in every record kind that has the column (bounds inclusive,
# None: no bound beyond the SQL type's). Every numeric column of every kind is listed here
# (tests/test_transfer.py checks it against workbench.store.tables.INSERTS).
RANGES: dict[str, tuple[int, int | None]] = {
    "step": (0, None), "task": (0, None), "seq": (0, None), "idx": (0, None),
    "fork_step": (0, None), "last_step": (0, None), "caller_step": (0, None), "caller_task": (0, None),
    "attempt": (1, MAX_ATTEMPTS), "attempts": (1, MAX_ATTEMPTS),
    "prompt_tokens": (0, MAX_TOKENS), "completion_tokens": (0, MAX_TOKENS),
    "cost_usd": (0, MAX_COST_USD), "duration_ms": (0, MAX_MS), "latency_ms": (0, MAX_MS),
}

# Record kind -> (start column, end column) of the rows that have a span.
SPANS: dict[str, tuple[str, str]] = {
    "run": ("started_at", "ended_at"), "task": ("started_at", "ended_at"),
    "interrupt": ("created_at", "resumed_at"),
}


def check_row(where: str, table: str, kind: str, row: dict[str, Any], types: dict[str, str],
              now_us: int) -> None:
    """Refuse a row (already checked for its SQL types) whose numbers are out of range, whose
    timestamps are more than a day after ``now_us``, or whose end is before its start.

    ``where`` names the file and line, ``kind`` is the row's record kind and ``types`` maps each
    of its columns to its SQL type."""
    _check_values(where, table, row, types, now_us)
    _check_span(where, table, kind, row)


def _check_values(where: str, table: str, row: dict[str, Any], types: dict[str, str], now_us: int) -> None:
    prefix = f"{where}: run {row.get('run_id')!r}: {table} column"
    for name, sql_type in types.items():
        value = row.get(name)
        if value is None:
            continue
        if sql_type == "TS" and value > now_us + CLOCK_SKEW_US:
            raise InputError(f"{prefix} {name!r} is {_when(value)}, more than a day after this machine's clock "
                             f"({_when(now_us)}); check the clock where it was recorded; nothing was imported")
        bounds = RANGES.get(name)
        if bounds is not None and sql_type in ("INTEGER", "BIGINT", "DOUBLE"):
            least, most = bounds
            if value < least or (most is not None and value > most):
                allowed = f"from {least} to {most}" if most is not None else f"{least} or more"
                raise InputError(f"{prefix} {name!r} is {value!r}, outside the range workbench records "
                                 f"({allowed}); nothing was imported")


def _check_span(where: str, table: str, kind: str, row: dict[str, Any]) -> None:
    """Refuse a row that ends (``ended_at``, an answer's ``resumed_at``) more than the clock skew
    allowed before it starts: ``workbench runs`` would show a negative duration."""
    span = SPANS.get(kind)
    if span is None:
        return
    start, end = (row.get(c) for c in span)
    if start is not None and end is not None and end < start - CLOCK_SKEW_US:
        raise InputError(f"{where}: run {row.get('run_id')!r}: {table} column {span[1]!r} ({_when(end)}) is before "
                         f"{span[0]!r} ({_when(start)}); nothing was imported")


def _when(us: int) -> str:
    """Epoch microseconds as a UTC time a reader recognises (the file holds only the number)."""
    return dt.datetime.fromtimestamp(us // 1_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

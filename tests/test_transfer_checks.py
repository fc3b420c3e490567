"""Imported trace files whose values have the right types but not values workbench records
(transfer_checks.py, transfer._check_call_shape): numbers out of range, timestamps in the future
or ends before starts, model calls whose answer is not a message. Each broke a later command for
the whole store (``runs``, ``show``, ``resume last``); each is refused in one line naming the file,
the run and the column, and nothing is imported.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_transfer import _set, counts, first, one_error_line, small_export, wb, write

from workbench.errors import InputError
from workbench.store import TraceStore
from workbench.store.tables import INSERTS, TS_COLUMNS
from workbench.transfer import TABLE_KINDS, import_files
from workbench.transfer_checks import RANGES

__all__ = ["small_export"]  # the fixture, imported for the tests below


def _model_call(**changes: Any) -> Any:
    """The export's (tool) call made a model call, with ``changes``."""
    def f(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
        first(rows, "llm_calls")["row"].update({"kind": "llm", "model": "m", "params": {},
                                                "messages": [{"role": "user", "content": "hi"}],
                                                "response": {"role": "assistant", "content": "ok"}, **changes})
        return header, rows
    return f


# Shapes show, diff, replay and resuming read: a model call's response of 5 imported, then
# crashed ``show`` ('int' object has no attribute 'get') and made replay report a divergence
# that never happened.
SHAPES: dict[str, Any] = {
    "model call response a number": (_model_call(response=5), "'response' of a model call must be an object"),
    "model call response a list": (_model_call(response=["a"]), "'response' of a model call must be an object"),
    "model call messages as text": (_model_call(messages="hi"), "'messages' of a model call must be a list"),
    "model call message not an object": (_model_call(messages=[1]), "'messages' of a model call must be a list"),
    "call params a list": (_set("llm_calls", "params", [1]), "'params' must be an object or null"),
    "goto destination a number": (_set("steps", "goto", [5]), "'goto' must be a list of node names"),
    "goto send without a node": (_set("steps", "goto", [{"arg": 1}]), "'goto' must be a list of node names"),
    "joins entry not a list": (_set("supersteps", "joins", {"join": 5}), "'joins' must be an object of lists"),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_shapes_later_commands_read_are_refused(case: str, small_export: Any, tmp_path: Path) -> None:
    corrupt, needle = SHAPES[case]
    message = _refused(*corrupt(*copy.deepcopy(small_export)), tmp_path)
    assert needle in message, message


def test_model_call_shapes_workbench_records_import(small_export: Any, tmp_path: Path, store: TraceStore) -> None:
    """What SHAPES refuses is only what workbench never writes: a model call answered with a
    message or failed (null), a Send in ``goto``, a deferred join list all import."""
    header, rows = _model_call(response=None)(*copy.deepcopy(small_export))
    first(rows, "steps")["row"]["goto"] = ["confirm", {"node": "price", "arg": {"item": "pear"}}, "__end__"]
    first(rows, "supersteps")["row"]["joins"] = {"deferred": [{"node": "confirm"}]}
    assert import_files(store, [str(write(tmp_path / "ok.jsonl", header, rows))])["imported"] == header["runs"]
    assert [c["response"] for c in store.llm_calls(header["runs"][0]) if c["kind"] == "llm"] == [None]


# --------------------------------------------------------------------------- numbers and timestamps


DAY_US = 24 * 3600 * 1_000_000


@pytest.fixture
def every_table_export(small_export: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The small export with an answered question and an event added: a row of every table."""
    header, rows = copy.deepcopy(small_export)
    rid, at = header["runs"][0], first(rows, "runs")["row"]["started_at"]
    rows.append({"table": "interrupts", "row": {
        "run_id": rid, "step": 1, "task": 0, "node": "price", "attempt": 1, "idx": 0, "payload": {"q": 1},
        "response": "yes", "created_at": at, "resumed_at": at + 1000, "closed": False}})
    rows.append({"table": "events", "row": {"run_id": rid, "step": 1, "kind": "note", "node": None, "detail": {},
                                            "created_at": at}})
    return header, rows


def _columns(*types: str) -> list[tuple[str, str]]:
    """(file table, column) of every column of one of ``types``, in every table."""
    return [(table, name) for table, kind in TABLE_KINDS.items() for name, t in INSERTS[kind][1] if t in types]


def test_every_numeric_column_has_a_range() -> None:
    numeric = {name for _, name in _columns("INTEGER", "BIGINT", "DOUBLE")}
    assert numeric <= set(RANGES), numeric - set(RANGES)


def _refused(header: dict[str, Any], rows: list[dict[str, Any]], tmp_path: Path) -> str:
    """The one-line reason an import of the file is refused; the store stays empty."""
    path = write(tmp_path / "bad.jsonl", header, rows)
    with TraceStore(str(tmp_path / "target.duckdb")) as target:
        before = counts(target)
        with pytest.raises(InputError) as err:
            import_files(target, [str(path)])
        assert counts(target) == before
    message = str(err.value)
    assert "\n" not in message and message.startswith("bad.jsonl:") and header["runs"][0] in message, message
    return message


OUT_OF_RANGE = [(table, name, value) for table, name in _columns("INTEGER", "BIGINT", "DOUBLE")
                for value in (RANGES[name][0] - 1, *([RANGES[name][1] + 1] if RANGES[name][1] is not None else []))]


@pytest.mark.parametrize(("table", "column", "value"), OUT_OF_RANGE)
def test_numbers_out_of_range_are_refused(table: str, column: str, value: int, every_table_export: Any,
                                          tmp_path: Path) -> None:
    """2**63-1 prompt tokens imported made ``workbench runs`` fail for the whole store (an INT64
    overflow); negative tokens, costs, durations and attempts imported too."""
    header, rows = copy.deepcopy(every_table_export)
    first(rows, table)["row"][column] = value
    message = _refused(header, rows, tmp_path)
    assert f"{table} column {column!r} is {value!r}" in message and "outside the range" in message, message


def test_huge_token_count_is_refused_by_the_cli(small_export: Any, project: Path, tmp_path: Path) -> None:
    header, rows = _model_call(prompt_tokens=2**63 - 1)(*copy.deepcopy(small_export))
    path = write(tmp_path / "tokens.jsonl", header, rows)
    db = str(tmp_path / "laptop.duckdb")
    line = one_error_line(wb("import", str(path), "--db", db, cwd=project))
    assert "tokens.jsonl:" in line and header["runs"][0] in line and "'prompt_tokens'" in line, line
    runs = wb("runs", "--db", db, "--json", cwd=project)
    assert runs.returncode == 0 and json.loads(runs.stdout) == [], runs.stderr


@pytest.mark.parametrize(("table", "column"), _columns("TS"))
def test_timestamps_in_the_future_are_refused(table: str, column: str, every_table_export: Any,
                                              tmp_path: Path) -> None:
    """A run started in the year 9999 imported, then was ``last`` for ``resume last`` and
    ``--continue last``, with a negative duration in ``workbench runs``."""
    header, rows = copy.deepcopy(every_table_export)
    first(rows, table)["row"][column] = 253_402_300_799_000_000  # 9999-12-31 23:59:59
    message = _refused(header, rows, tmp_path)
    assert f"{table} column {column!r} is 9999-12-31 23:59:59 UTC, more than a day after" in message, message


@pytest.mark.parametrize(("table", "start", "end"), [
    ("runs", "started_at", "ended_at"), ("steps", "started_at", "ended_at"),
    ("interrupts", "created_at", "resumed_at"),
])
def test_an_end_before_its_start_is_refused(table: str, start: str, end: str, every_table_export: Any,
                                            tmp_path: Path) -> None:
    header, rows = copy.deepcopy(every_table_export)
    row = first(rows, table)["row"]
    row[end] = row[start] - 2 * DAY_US
    message = _refused(header, rows, tmp_path)
    assert f"{table} column {end!r} (" in message and f") is before {start!r} (" in message, message


def test_clock_skew_between_machines_is_accepted(every_table_export: Any, tmp_path: Path,
                                                 store: TraceStore) -> None:
    """Machines sharing traces disagree about the time by less than a day: a trace an hour
    ahead of this clock, a run finished and a question answered on a machine a minute behind,
    all import."""
    header, rows = copy.deepcopy(every_table_export)
    ahead = time.time_ns() // 1000 + 3600 * 1_000_000
    for item in rows:
        for name, value in item["row"].items():
            if name in TS_COLUMNS and value is not None:
                item["row"][name] = ahead
    for table, end in (("runs", "ended_at"), ("interrupts", "resumed_at")):
        first(rows, table)["row"][end] = ahead - 60 * 1_000_000
    path = write(tmp_path / "skewed.jsonl", header, rows)
    assert import_files(store, [str(path)])["imported"] == header["runs"]
    assert store.get_run(header["runs"][0])["run_id"] == header["runs"][0]

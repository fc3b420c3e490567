"""The SQL console's core: a row limit pushed into the query (the database produces at most
N+1 rows), and the schema browser's views and columns read from information_schema."""

from __future__ import annotations

import pytest

from workbench.errors import InputError
from workbench.sqlquery import DOCUMENTED_VIEWS, limited_query, run_read_only, schema
from workbench.store import TraceStore


def test_the_limit_is_pushed_into_the_query(store: TraceStore) -> None:
    result = run_read_only(store, "SELECT i FROM range(10000) t(i) ORDER BY i DESC", limit=100)
    assert result.fetched == 101  # the database stopped after N+1 rows
    assert len(result.rows) == 100 and result.truncated
    assert result.rows[0] == (9999,) and result.rows[-1] == (9900,)  # the query's own order is kept
    # A query the limit cannot cut would never finish: ten billion rows, N+1 produced.
    huge = run_read_only(store, "SELECT * FROM range(10000000000) t(i)", limit=10)
    assert huge.fetched == 11 and huge.truncated
    whole = run_read_only(store, "SELECT i FROM range(50) t(i)", limit=100)
    assert len(whole.rows) == 50 and whole.fetched == 50 and not whole.truncated
    assert len(run_read_only(store, "SELECT i FROM range(10000) t(i)").rows) == 10000  # no limit asked


def test_the_wrapping_is_checked_and_harmless(store: TraceStore) -> None:
    import duckdb

    [st] = duckdb.extract_statements("SELECT 1 AS x -- a trailing comment")
    assert limited_query(st, 5) == "SELECT * FROM (\nSELECT 1 AS x -- a trailing comment\n) AS wb_limited LIMIT 6"
    assert run_read_only(store, "SELECT 1 AS x -- a trailing comment;", limit=5).rows == [(1,)]
    [explain] = duckdb.extract_statements("EXPLAIN SELECT 1")
    assert limited_query(explain, 5) is None  # not a SELECT: run as it is
    # Text that tries to close the subquery early is not one statement: refused before wrapping.
    with pytest.raises(InputError, match="SQL error"):
        run_read_only(store, "SELECT 1) UNION ALL (SELECT 2", limit=5)
    # Reads that cannot be a subquery still run (with the limit applied when fetching).
    assert run_read_only(store, "DESCRIBE runs", limit=3).truncated
    assert run_read_only(store, "SELECT 1 AS a; SELECT 2 AS b", limit=3).rows == [(2,)]
    # Writes are refused whatever the limit.
    with pytest.raises(InputError, match="read-only"):
        run_read_only(store, "DELETE FROM wb_runs", limit=3)


def test_schema_lists_the_documented_views_and_their_columns(store: TraceStore) -> None:
    views = schema(store)
    assert list(views)[: len(DOCUMENTED_VIEWS)] == list(DOCUMENTED_VIEWS)
    assert not any(name.startswith("wb_") for name in views)
    runs = dict(views["runs"])
    assert runs["run_id"] == "VARCHAR" and runs["input"] == "JSON" and "relation" in runs
    assert [c for c, _ in views["steps"]][:3] == ["run_id", "step", "node"]

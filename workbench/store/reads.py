"""Reading a store's rows for a caller's SQL: in a read-only transaction, whatever the text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from workbench.errors import InputError
from workbench.store.database import first_line, storage_error
from workbench.store.ingest import rollback

_T = TypeVar("_T")


def as_dicts(con: Any) -> list[dict[str, Any]]:
    """The rows of the cursor's last query, as dicts by column name."""
    names = [d[0] for d in con.description or []]
    return [dict(zip(names, row, strict=True)) for row in con.fetchall()]


def read_only(con: Any, sql: str, params: Sequence[Any] | None, fetch: Callable[[], _T]) -> _T:
    """``sql`` run on ``con`` in a read-only transaction, its rows taken by ``fetch``."""
    import duckdb

    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        con.execute(sql, params or [])
        return fetch()
    except duckdb.Error as exc:
        if storage_error(exc) or isinstance(exc, duckdb.InterruptException):
            raise  # the file's condition, or a stop: named by connection()
        raise InputError(f"SQL error: {first_line(exc)}") from None
    finally:
        rollback(con)

"""Reading a store's rows for a caller's SQL: in a read-only transaction, whatever the text."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from workbench.errors import InputError
from workbench.store.database import first_line, storage_error
from workbench.store.ingest import rollback

_T = TypeVar("_T")

READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}
# What EXPLAIN is followed by before the statement it explains: options in parentheses, or
# ANALYZE. Anything this does not take apart leaves a text that does not parse: refused.
_EXPLAIN_PREFIX = re.compile(r"\s*explain\s*(?:\((?P<options>(?:[^)']|'[^']*')*)\)\s*|(?P<analyze>analy[sz]e)\b\s*)?",
                             re.IGNORECASE)


def refuse_writes(sql: str, where: str = "the SQL console") -> list[Any]:
    """Parse ``sql`` and refuse anything but reads (InputError naming ``where``); returns the
    parsed statements. The database enforces read-only on its own (a read-only transaction, no
    file access, a locked configuration); this names a refused statement before it runs, and
    keeps statements the database would run for their effects on the engine (``CALL``, and
    ``EXPLAIN ANALYZE`` of anything, in any spelling) from running at all."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
    if not statements:
        raise InputError("no SQL statement given")
    for st in statements:
        _check_statement(st.type.name, st.query, where)
    return list(statements)


def _check_statement(kind: str, text: str, where: str) -> None:
    import duckdb

    if kind not in READ_ONLY_TYPES:
        # DuckDB parses CHECKPOINT as a CALL: name it, or the refusal reads as a non sequitur.
        kind = "CALL and CHECKPOINT" if kind == "CALL" else kind
        raise InputError(f"{where} is read-only: {kind} statements are refused "
                         "(use SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN)")
    if kind != "EXPLAIN":
        return
    prefix = _EXPLAIN_PREFIX.match(_without_comments(text))
    options = (prefix.group("options") or "") if prefix else ""
    if prefix is None or prefix.group("analyze") or re.search(r"\banaly[sz]e\b", options, re.IGNORECASE):
        # EXPLAIN ANALYZE executes the statement it explains.
        raise InputError(f"{where} is read-only: EXPLAIN ANALYZE runs its statement and is refused "
                         "(plain EXPLAIN is fine)")
    # The statement explained must be a read as well (it is planned, and planning a CALL runs it).
    try:
        inner = duckdb.extract_statements(_without_comments(text)[prefix.end():])
    except duckdb.Error:
        inner = []
    if not inner:
        raise InputError(f"{where} is read-only: cannot tell what this EXPLAIN explains, so it is refused")
    for st in inner:
        _check_statement(st.type.name, st.query, where)


def _without_comments(text: str) -> str:
    """``text`` with SQL comments blanked out (string literals kept as they are)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            out.append(" ")
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            out.append(" ")
        elif text[i] in "'\"":
            end = text.find(text[i], i + 1)
            while end > 0 and text.startswith(text[i], end + 1):  # a doubled quote inside
                end = text.find(text[i], end + 2)
            stop = len(text) if end < 0 else end + 1
            out.append(text[i:stop])
            i = stop
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def as_dicts(con: Any) -> list[dict[str, Any]]:
    """The rows of the cursor's last query, as dicts by column name."""
    names = [d[0] for d in con.description or []]
    return [dict(zip(names, row, strict=True)) for row in con.fetchall()]


def read_only(con: Any, sql: str, params: Sequence[Any] | None, fetch: Callable[[], _T]) -> _T:
    """``sql`` run on ``con`` in a read-only transaction, its rows taken by ``fetch`` (refused
    first, as the SQL console refuses it, unless it is a read: see :func:`refuse_writes`)."""
    import duckdb

    refuse_writes(sql, "TraceStore.query")
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

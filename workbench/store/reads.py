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
# Functions a SELECT may call that change the engine, not the data: the locked configuration
# does not cover them, and enable_logging(storage='file', ...) aborted the process (a file it
# may not write), enable_logging(storage='stdout') printed the engine's log into the output.
ENGINE_FUNCTIONS = {"enable_logging", "disable_logging", "truncate_duckdb_logs", "checkpoint", "force_checkpoint"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def refuse_writes(sql: str, where: str = "the SQL console") -> list[Any]:
    """Parse ``sql`` and refuse anything but reads (InputError naming ``where``); returns the
    parsed statements. The database enforces read-only on its own (a read-only transaction, no
    file access, a locked configuration); this names a refused statement before it runs, and
    keeps out what the engine would run for its effects on itself (``CALL``, the functions in
    :data:`ENGINE_FUNCTIONS`, ``EXPLAIN ANALYZE`` of anything). The text is read with DuckDB's
    own parser and tokenizer, so comments (nested ones too) and quoting read as DuckDB reads them."""
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


def _tokens(text: str) -> list[tuple[int, str, str]]:
    """``(offset, text, kind)`` of each token DuckDB's tokenizer finds (strings and comments
    are not words: a word inside one is never taken for a keyword or a function's name)."""
    import duckdb

    out = []
    for offset, kind in duckdb.tokenize(text):
        name = getattr(kind, "name", str(kind))
        if name == "identifier" and text.startswith('"', offset):  # "Enable_Logging" names it too
            quoted = _QUOTED.match(text, offset)
            out.append((offset, quoted.group(1).replace('""', '"').lower() if quoted else '"', name))
            continue
        word = _WORD.match(text, offset) if name in ("keyword", "identifier") else None
        out.append((offset, word.group().lower() if word else text[offset:offset + 1], name))
    return out


def _check_statement(kind: str, text: str, where: str) -> None:
    import duckdb

    if kind not in READ_ONLY_TYPES:
        # DuckDB parses CHECKPOINT as a CALL: name it, or the refusal reads as a non sequitur.
        kind = "CALL and CHECKPOINT" if kind == "CALL" else kind
        raise InputError(f"{where} is read-only: {kind} statements are refused "
                         "(use SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN)")
    tokens = _tokens(text)
    engine = sorted({t for _, t, k in tokens if k in ("keyword", "identifier")} & ENGINE_FUNCTIONS)
    if engine:
        raise InputError(f"{where} is read-only: {engine[0]}() changes the database engine and is refused")
    if kind != "EXPLAIN":
        return
    if any(t in ("analyze", "analyse") for _, t, k in tokens if k in ("keyword", "identifier")):
        # EXPLAIN ANALYZE executes the statement it explains.
        raise InputError(f"{where} is read-only: EXPLAIN ANALYZE runs its statement and is refused "
                         "(plain EXPLAIN is fine)")
    # The statement explained must be a read as well (it is planned, and planning a CALL runs
    # it): it starts after EXPLAIN and its parenthesised options.
    start, depth = None, 0
    for i, (offset, token, kind_of) in enumerate(tokens[1:], 1):
        if depth == 0 and not (i == 1 and token == "("):
            start = offset
            break
        depth += {"(": 1, ")": -1}.get(token, 0) if kind_of == "operator" else 0
        if depth == 0 and token == ")":
            start = tokens[i + 1][0] if i + 1 < len(tokens) else None
            break
    try:
        inner = duckdb.extract_statements(text[start:]) if start is not None else []
    except duckdb.Error:
        inner = []
    if not inner:
        raise InputError(f"{where} is read-only: cannot tell what this EXPLAIN explains, so it is refused")
    for st in inner:
        _check_statement(st.type.name, st.query, where)


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

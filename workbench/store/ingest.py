"""Loading journal frames into the database: one transaction per batch, exactly once.

A batch's rows and the journal's new load position (``wb_journals``) commit together, so a
frame is never loaded twice and never half: after a crash the position says where to go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.store.journal import Frame
from workbench.store.tables import INSERTS, TS_COLUMNS, UPDATES, clean_row, insert_sql, rows_json


def _coalesce(updates: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Fold successive updates of the same row into one (each UPDATE costs a statement)."""
    merged: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
    for kind, rec in updates:
        key = (kind, *(rec.get(k) for k in UPDATES[kind][1]))
        if key in merged:
            merged[key][1].update(rec)
        else:
            merged[key] = (kind, dict(rec))
    return list(merged.values())


def apply_records(con: Any, records: list[tuple[str, dict[str, Any]]], owner: str | None) -> None:
    """Insert and update ``records`` (inside the caller's transaction).

    ``owner`` is the journal the records come from: a run it starts is marked as recorded by it
    (``wb_runs.owner``), and a run it stops is released.
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    updates: list[tuple[str, dict[str, Any]]] = []
    for kind, rec in records:
        if kind in INSERTS:
            by_kind.setdefault(kind, []).append(clean_row(kind, rec))
        elif kind in UPDATES:
            updates.append((kind, rec))
    # Runs first: other rows refer to them.
    for kind in sorted(by_kind, key=lambda k: k != "run"):
        con.execute(insert_sql(kind), [rows_json(kind, by_kind[kind])])
    if owner is not None and "run" in by_kind:
        ids = [r["run_id"] for r in by_kind["run"] if r.get("status") == "running"]
        if ids:
            con.execute("UPDATE wb_runs SET owner = ? WHERE list_contains(?, run_id)", [owner, ids])
    for kind, rec in _coalesce(updates):
        table, keys, allowed = UPDATES[kind]
        sets = [c for c in rec if c in allowed]
        values = [rec[c] for c in sets]
        if kind == "run_update" and "status" in rec:
            # A run that stops is nobody's any more; one that (re)starts is this journal's.
            sets.append("owner")
            values.append(owner if rec["status"] == "running" else None)
        if not sets:
            continue
        assign = ", ".join(
            f'"{c}" = make_timestamp(?::BIGINT)' if c in TS_COLUMNS else f'"{c}" = ?' for c in sets
        )
        where = " AND ".join(f'"{k}" = ?' for k in keys)
        con.execute(f"UPDATE {table} SET {assign} WHERE {where}", values + [rec[k] for k in keys])


def apply_frames(con: Any, frames: list[Frame], journal: str, owner: str | None,
                 set_position: Callable[[Any, str, int, int], None],
                 position: Callable[[Any, str], tuple[int, int] | None]) -> None:
    """Load ``frames`` of ``journal`` and move its load position past them, in one transaction.

    Frames the position says are loaded already are skipped: a batch retried after a commit
    whose outcome was not known (an error after it, a lost connection) is not loaded twice.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        done = (position(con, journal) or (0, 0))[0]
        frames = [f for f in frames if f.number > done]
        if not frames:
            con.execute("COMMIT")
            return
        apply_records(con, [r for f in frames for r in f.records], owner)
        set_position(con, journal, frames[-1].number, frames[-1].end)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def rollback(con: Any) -> None:
    """Roll back if a transaction is open (a failed COMMIT has already ended it)."""
    try:
        con.execute("ROLLBACK")
    except Exception:  # "no transaction is active": nothing to undo
        pass

"""The read side of a trace store: runs, steps, calls and states, decoded.

A mixin: the class using it provides :meth:`query` and :meth:`query_dicts` (which see everything
this process recorded so far) and ``path``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workbench.errors import InputError, RunNotFoundError
from workbench.state import apply_changes


def shown_status(run: dict[str, Any]) -> str:
    """A run's status as the workbench and the CLI show it: a ``running`` run whose process
    stopped before it ended (its ``error`` says ``interrupted: ...``) shows as ``interrupted``."""
    status = str(run["status"])
    if status == "running" and str(run.get("error") or "").startswith("interrupted"):
        return "interrupted"
    return status

class StoreReader:
    """Read methods shared by every trace store backend."""

    path: str

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    # workbench's own reads (its SQL, never a user's): a store may serve them without the
    # read-only transaction ``query`` puts around a caller's text.
    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._query(sql, params)

    def _query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self._query_dicts(sql, params)

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique prefix of one, or ``last``.

        ``last`` and prefixes name runs a user started; a subgraph's child run is named by its
        whole id (``ROOT/3.0.0``).
        """
        if ref == "last":
            rows = self._query("SELECT run_id FROM wb_runs WHERE caller_run_id IS NULL "
                              "ORDER BY started_at DESC, run_id DESC LIMIT 1")
            if not rows:
                raise RunNotFoundError(f"no runs in {self.path} yet")
            return str(rows[0][0])
        if self._query("SELECT 1 FROM wb_runs WHERE run_id = ?", [ref]):
            return ref
        rows = self._query("SELECT run_id FROM wb_runs WHERE starts_with(run_id, ?) AND caller_run_id IS NULL "
                          "LIMIT 2", [ref])
        if not rows:
            raise RunNotFoundError(f"no run {ref!r} in {self.path} (see 'workbench runs')")
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix {ref!r} is ambiguous in {self.path}; give more characters")
        return str(rows[0][0])

    def check_run(self, run_id: str) -> None:
        """Raise :class:`RunNotFoundError` unless run ``run_id`` is in the store (a cheap
        check: :meth:`get_run` also reads and decodes the run's input and final state)."""
        if not self._query("SELECT 1 FROM wb_runs WHERE run_id = ?", [run_id]):
            raise _not_found(self.path, run_id)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row from ``wb_runs`` with JSON columns decoded."""
        rows = self._query_dicts("SELECT * FROM wb_runs WHERE run_id = ?", [run_id])
        if not rows:
            raise _not_found(self.path, run_id)
        run = rows[0]
        for col in ("input", "output", "config", "node_versions"):
            run[col] = json.loads(run[col]) if run[col] is not None else None
        return run

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent runs with step count, tokens and cost (the newest ``limit``: 1 or more)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InputError(f"limit must be a whole number of 1 or more, got {limit!r}")
        limit = min(limit, 2**62)  # beyond any store, and within what the database's LIMIT takes
        return self._query_dicts(
            """
            SELECT r.run_id, r.graph, r.status, r.started_at, r.ended_at,
                   date_diff('millisecond', r.started_at, coalesce(r.ended_at, r.started_at)) AS duration_ms,
                   coalesce(CASE WHEN r.status <> 'running' THEN r.last_step END, s.planned - 1, 0) AS steps,
                   r.parent_run_id, r.fork_step,
                   coalesce(l.tokens, 0) AS tokens, coalesce(l.cost, 0) AS cost_usd, r.error, r.relation
            FROM wb_runs r
            LEFT JOIN (SELECT run_id, max(step) AS planned FROM wb_supersteps GROUP BY run_id) s USING (run_id)
            LEFT JOIN (SELECT coalesce(cr.root_run_id, c.run_id) AS run_id,
                              sum(coalesce(c.prompt_tokens, 0) + coalesce(c.completion_tokens, 0)) AS tokens,
                              sum(coalesce(c.cost_usd, 0)) AS cost
                       FROM wb_llm_calls c LEFT JOIN wb_runs cr ON cr.run_id = c.run_id
                       GROUP BY ALL) l USING (run_id)
            WHERE r.caller_run_id IS NULL
            ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?
            """,
            [limit],
        )

    def tasks(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """Every recorded node execution (one row per attempt) of a run, in order."""
        sql = "SELECT * FROM wb_tasks WHERE run_id = ?"
        params: list[Any] = [run_id]
        if step is not None:
            sql += " AND step = ?"
            params.append(step)
        rows = self._query_dicts(sql + " ORDER BY step, task, attempt, started_at", params)
        for r in rows:
            r["update"] = json.loads(r["update"]) if r["update"] is not None else None
            r["arg"] = json.loads(r["arg"]) if r["arg"] is not None else None
            r["goto"] = json.loads(r["goto"]) if r.get("goto") is not None else None
        return rows

    def lineage(self, run_id: str) -> list[tuple[str, int]]:
        """``[(run_id, last step taken from it), ...]`` from the run itself up to its root.

        A fork shares its parent's history up to its fork step; the run itself owns every step
        after that (its own entry has no limit).
        """
        rows = self._query(_LINEAGE_OF + " SELECT ancestor_id, upto_step FROM lin ORDER BY depth", [run_id])
        return [(str(a), int(u)) for a, u in rows]

    def step_owner(self, run_id: str, step: int) -> str:
        """Which run of a fork's lineage recorded ``step`` (the fork itself after its fork step)."""
        owner = run_id
        for ancestor, upto in self.lineage(run_id):
            if step <= upto:
                owner = ancestor
        return owner

    def changes(self, run_id: str, upto: int | None = None) -> list[tuple[int, str, str, Any]]:
        """Stored state changes ``(step, key, op, value)`` of a run and the history it shares
        with its ancestors, in the order they apply."""
        limit = 2**31 - 1 if upto is None else upto
        rows = self._query(
            """
            SELECT c.step, c.key, c.op, c.value
            FROM run_lineage l JOIN wb_changes c ON c.run_id = l.ancestor_id
            WHERE l.run_id = ? AND c.step <= least(l.upto_step, ?)
            ORDER BY c.step, l.depth DESC, c.rowid
            """,
            [run_id, limit],
        )
        return [(int(s), k, op, json.loads(v)) for s, k, op, v in rows]

    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        """The run's full state after ``step`` (0 = the input), rebuilt from stored changes.

        The database does the folding (as the ``state_at`` SQL macro does): for each key, the
        last whole value written at or before the step and the items appended since, joined
        into one JSON array — one row and one ``json.loads`` per key rather than one per step,
        so any step of a 10,000-step run is as quick to rebuild as the first.
        """
        state: dict[str, Any] = {}
        for key, set_value, appended in self._query(_STATE_AT_SQL, [run_id, step]):
            if set_value is not None:
                state[key] = json.loads(set_value)
            if appended is not None:
                state[key] = [*(state.get(key) or []), *json.loads(appended)]
        if not state:  # an empty input, or no such run (which get_run refuses too)
            self.check_run(run_id)
        return state

    def states(self, run_id: str) -> dict[int, dict[str, Any]]:
        """The state after every committed step of a run (0 = the input), in one pass over its
        changes. A step that changed nothing is there too, with the state it left as it was."""
        by_step: dict[int, list[tuple[str, str, Any]]] = {}
        for s, k, op, v in self.changes(run_id):
            by_step.setdefault(s, []).append((k, op, v))
        # Up to the last committed step (the one the last recorded plan follows): a step's
        # changes are written with the next plan, so none lie beyond it.
        last = max([self.last_committed_step(run_id), *by_step])
        out: dict[int, dict[str, Any]] = {}
        state: dict[str, Any] = {}
        for step in range(last + 1):
            out[step] = dict(apply_changes(state, by_step.get(step, ())))
        return out

    def plan(self, run_id: str, step: int) -> dict[str, Any] | None:
        """The tasks planned for ``step`` and the join bookkeeping at that point (a fork's
        plans before its fork step are its parent's)."""
        rows = self._query(
            """
            SELECT p.tasks, p.joins
            FROM run_lineage l JOIN wb_supersteps p ON p.run_id = l.ancestor_id
            WHERE l.run_id = ? AND p.step = ? AND p.step - 1 <= l.upto_step
            ORDER BY l.depth, p.created_at DESC LIMIT 1
            """,
            [run_id, step],
        )
        if not rows:
            return None
        return {"tasks": json.loads(rows[0][0]), "joins": json.loads(rows[0][1]) if rows[0][1] else {}}

    def last_committed_step(self, run_id: str) -> int:
        """The highest step whose state changes are recorded (0 once the run has started)."""
        rows = self._query("SELECT max(step) FROM wb_supersteps WHERE run_id = ?", [run_id])
        planned = rows[0][0]
        return -1 if planned is None else int(planned) - 1

    def last_step(self, run_id: str) -> int:
        """The highest step that ran, or was in flight when the run stopped (steps are 1..this).

        A finished run's last plan is empty: its last step is the last committed one.
        """
        committed = self.last_committed_step(run_id)
        plan = self.plan(run_id, committed + 1)
        return committed if plan is not None and not plan["tasks"] else committed + 1

    def llm_calls(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """Recorded model (and tool) calls of a run, decoded, in call order."""
        sql = "SELECT * FROM wb_llm_calls WHERE run_id = ?"
        params: list[Any] = [run_id]
        if step is not None:
            sql += " AND step = ?"
            params.append(step)
        rows = self._query_dicts(sql + " ORDER BY step, task, seq", params)
        for r in rows:
            for col in ("messages", "params", "response"):
                r[col] = json.loads(r[col]) if r[col] is not None else None
        return rows

    def interrupts(self, run_id: str) -> list[dict[str, Any]]:
        """Interrupts of a run, decoded, oldest first, each with its ``interrupt_id`` and
        ``status`` (open, answered or closed), as the ``interrupts`` view has them."""
        rows = self._query_dicts(
            "SELECT * FROM wb_interrupts WHERE run_id = ? ORDER BY step, task, attempt, idx", [run_id]
        )
        for r in rows:
            # Closed unanswered: no response at all (an answer of null is the JSON text 'null');
            # older stores left ``closed`` unset on a superseded run's questions.
            r["closed"] = bool(r.get("closed")) or (r["resumed_at"] is not None and r["response"] is None)
            for col in ("payload", "response"):
                r[col] = json.loads(r[col]) if r[col] is not None else None
            r["interrupt_id"] = interrupt_id(r)
            r["status"] = "open" if r["resumed_at"] is None else "closed" if r["closed"] else "answered"
        return rows

    def tree_interrupts(self, run_id: str) -> list[dict[str, Any]]:
        """Interrupts of a run and of the subgraph runs under it, decoded, each with ``path``
        (the asking node's path from the run's graph, e.g. ``review/approve``)."""
        rows = self._query_dicts(
            """
            SELECT i.*, CASE WHEN r.path IS NULL THEN i.node ELSE r.path || '/' || i.node END AS path
            FROM wb_interrupts i JOIN wb_runs r ON r.run_id = i.run_id
            WHERE i.run_id = ? OR starts_with(i.run_id, ? || '/')
            ORDER BY i.run_id, i.step, i.task, i.attempt, i.idx
            """,
            [run_id, run_id],
        )
        for r in rows:
            # Closed unanswered: no response at all (an answer of null is the JSON text 'null');
            # older stores left ``closed`` unset on a superseded run's questions.
            r["closed"] = bool(r.get("closed")) or (r["resumed_at"] is not None and r["response"] is None)
            for col in ("payload", "response"):
                r[col] = json.loads(r[col]) if r[col] is not None else None
            # Unique in the tree: a subgraph run's id says where it hangs (2.0.0/1.0.1.0).
            r["interrupt_id"] = (f"{r['run_id'][len(run_id) + 1:]}/" if r["run_id"] != run_id else "") + interrupt_id(r)
            r["status"] = "open" if r["resumed_at"] is None else "closed" if r["closed"] else "answered"
        return rows

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """The subgraph runs a run's tasks called (one level down), in step and task order."""
        return self._query_dicts(
            "SELECT run_id, graph, status, caller_step, caller_task, path, last_step, parent_run_id, fork_step "
            "FROM wb_runs WHERE caller_run_id = ? ORDER BY caller_step, caller_task, run_id", [run_id])

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._query_dicts("SELECT * FROM wb_events WHERE run_id = ? ORDER BY created_at", [run_id])
        for r in rows:
            r["detail"] = json.loads(r["detail"]) if r["detail"] is not None else None
        return rows


def _not_found(path: str, run_id: str) -> RunNotFoundError:
    return RunNotFoundError(f"no run {run_id!r} in {path} (see 'workbench runs')")


def interrupt_id(row: dict[str, Any]) -> str:
    """An interrupt's id, unique within its run and stable across resumes: step, task, attempt
    and the call's order within the node (as the ``interrupts`` view computes it)."""
    return f"{row['step']}.{row['task']}.{row['attempt']}.{row['idx']}"


# The lineage of run $1 alone, as the run_lineage view has it (ancestor_id, upto_step, depth):
# walked up from that run rather than built for every run in the store and then filtered.
_LINEAGE_OF = """
WITH RECURSIVE lin(ancestor_id, upto_step, depth) AS (
    SELECT run_id, 2147483647, 0 FROM wb_runs WHERE run_id = $1
    UNION ALL
    SELECT r.parent_run_id, least(lin.upto_step, r.fork_step), lin.depth + 1
    FROM lin JOIN wb_runs r ON r.run_id = lin.ancestor_id
    WHERE r.parent_run_id IS NOT NULL AND lin.depth < 1000
)"""

# For each key: its last whole value at or before the step (``set``) and the items of every
# ``extend`` after it, in the order they apply (step, an ancestor's change before the fork's,
# then recording order), joined into one JSON array text; keys in the order they first
# appeared, as a state rebuilt change by change has them. An ``extend`` value is always a JSON
# array: its text between the brackets is its items.
_STATE_AT_SQL = _LINEAGE_OF + """, ordered AS (
    SELECT c.key, c.op, c.value::VARCHAR AS value,
           row_number() OVER (ORDER BY c.step, l.depth DESC, c.rowid) AS pos
    FROM lin l JOIN wb_changes c ON c.run_id = l.ancestor_id
    WHERE c.step <= least(l.upto_step, $2)
), keys AS (
    SELECT key, min(pos) AS first_pos, max(pos) FILTER (WHERE op = 'set') AS set_pos
    FROM ordered GROUP BY key
), items AS (
    SELECT o.key, o.op, o.value, o.pos, k.first_pos,
           CASE WHEN o.op = 'extend' THEN trim(substr(trim(o.value), 2, length(trim(o.value)) - 2)) END AS part
    FROM keys k JOIN ordered o ON o.key = k.key AND o.pos >= coalesce(k.set_pos, 0)
)
SELECT key,
       any_value(value) FILTER (WHERE op = 'set') AS set_value,
       CASE WHEN count(*) FILTER (WHERE op = 'extend') > 0
            THEN '[' || coalesce(string_agg(part, ',' ORDER BY pos) FILTER (WHERE part <> ''), '') || ']'
       END AS appended
FROM items GROUP BY key, first_pos ORDER BY first_pos
"""

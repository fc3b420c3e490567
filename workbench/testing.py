"""Recorded runs as regression tests.

A recorded run is a test case: replaying it against today's code (recorded model and tool
answers, no live calls) must reproduce it step for step. Use from pytest::

    from workbench.testing import assert_replays, recorded_runs

    @pytest.mark.parametrize("run_id", recorded_runs("traces/regressions.duckdb", graph="support"))
    def test_support_regressions(run_id):
        assert_replays(run_id, db="traces/regressions.duckdb")

or with the ``workbench_replay`` fixture the pytest plugin provides. The workflow for a failed
production run: import its trace, fix the code, fork the run from the failing step so the fork
records the correct behaviour, and keep the fork's id as a test: it fails on the old code and
passes on the fixed code.
"""

from __future__ import annotations

import os

from workbench.errors import InputError, RunNotFoundError, StoreError
from workbench.graph import Graph
from workbench.loader import load_for_run
from workbench.replay import ReplayReport, replay_run
from workbench.store.store import TraceStore

# The statuses a finished run may have (recorded_runs leaves out runs still running).
FINISHED = ("completed", "failed", "paused", "superseded", "waiting")


class ReplayMismatch(AssertionError):
    """A recorded run no longer replays identically."""


def replay(run_id: str, db: str | None = None, graph: Graph | str | None = None) -> ReplayReport:
    """Replay one recorded run (by id, unique prefix or 'last') against the current code.

    ``graph`` is the graph to replay against: a Graph, or a graph file outside the graphs
    directory as ``"path/to/file.py[:variable]"`` (it must define the graph the run recorded).
    By default the run's graph is found by its recorded name in ``$WORKBENCH_GRAPHS`` or
    ./graphs — never through the file path stored in the trace.
    """
    with _existing_store(db) as store:
        rid = store.resolve_run_id(run_id)
        if not isinstance(graph, Graph):
            rec = store.get_run(rid)
            graph = load_for_run(rec["graph"], rec["graph_file"], graph, how="graph='path/to/file.py'")
        return replay_run(store, rid, graph)


def assert_replays(run_id: str, db: str | None = None, graph: Graph | str | None = None) -> ReplayReport:
    """Fail (AssertionError with the first difference) unless the run replays identically."""
    report = replay(run_id, db, graph)
    if not report.identical:
        changed = f" (code changed in: {', '.join(report.changed_nodes)})" if report.changed_nodes else ""
        raise ReplayMismatch(f"run {report.run_id} diverged{changed}:\n{report.divergence}")
    return report


def recorded_runs(db: str | None = None, graph: str | None = None, status: str | None = None) -> list[str]:
    """Run ids in a store (newest first), optionally of one graph and/or status — for parametrize.

    A mistake is an error, not an empty list that pytest reports as a skipped test in a green
    run: a store path with no store there (:class:`StoreError`; nothing is created), a graph
    with no finished run in the store (:class:`RunNotFoundError`), an unknown ``status``
    (:class:`InputError`). A graph whose finished runs have none of ``status`` gives [].
    """
    if status is not None and status not in FINISHED:
        raise InputError(f"status {status!r} is not a finished run's status; use one of {', '.join(FINISHED)}")
    sql = "SELECT run_id FROM runs WHERE status <> 'running'"
    params: list[str] = []
    if graph:
        sql += " AND graph = ?"
        params.append(graph)
    with _existing_store(db) as store:
        if graph and not store._query(sql + " LIMIT 1", params):
            known = [r[0] for r in store._query("SELECT DISTINCT graph FROM runs WHERE status <> 'running' "
                                                "ORDER BY graph")]
            has = f"it has finished runs of {', '.join(map(repr, known))}" if known else "it has no finished run"
            raise RunNotFoundError(f"no finished run of graph {graph!r} in {store.path} ({has})")
        if status:
            sql += " AND status = ?"
            params.append(status)
        return [r[0] for r in store._query(sql + " ORDER BY started_at DESC", params)]


def _existing_store(db: str | None) -> TraceStore:
    """The store at ``db`` (default: ``$WORKBENCH_DB``, else ``[store] location`` in
    workbench.toml, else traces/workbench.duckdb). A local path with no store there is refused
    before anything is created: a mistyped path would otherwise leave a new empty store and its
    spool behind, and its tests find no runs."""
    from workbench.project_config import db_origin
    from workbench.store.lake import is_lake_location
    from workbench.store.store import default_db_path

    path = db or default_db_path()
    if path != ":memory:" and not is_lake_location(path) and not any(
            os.path.lexists(path + suffix) for suffix in ("", ".wal")):
        where = "check the db argument" if db else f"check {db_origin() or 'WORKBENCH_DB'}, or pass db="
        raise StoreError(f"no trace store at {path}: nothing is recorded there ({where})")
    return TraceStore(path)

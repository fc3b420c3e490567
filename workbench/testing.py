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

from workbench.graph import Graph
from workbench.loader import load_for_run
from workbench.replay import ReplayReport, replay_run
from workbench.store.store import TraceStore


class ReplayMismatch(AssertionError):
    """A recorded run no longer replays identically."""


def replay(run_id: str, db: str | None = None, graph: Graph | str | None = None) -> ReplayReport:
    """Replay one recorded run (by id, unique prefix or 'last') against the current code.

    ``graph`` is the graph to replay against: a Graph, or a graph file outside the graphs
    directory as ``"path/to/file.py[:variable]"`` (it must define the graph the run recorded).
    By default the run's graph is found by its recorded name in ``$WORKBENCH_GRAPHS`` or
    ./graphs — never through the file path stored in the trace.
    """
    with TraceStore(db) as store:
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
    """Run ids in a store (newest first), optionally of one graph and/or status — for parametrize."""
    sql = "SELECT run_id FROM runs WHERE status <> 'running'"
    params: list[str] = []
    if graph:
        sql += " AND graph = ?"
        params.append(graph)
    if status:
        sql += " AND status = ?"
        params.append(status)
    with TraceStore(db) as store:
        return [r[0] for r in store._query(sql + " ORDER BY started_at DESC", params)]

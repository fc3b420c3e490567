"""The timeline read a tail at a time (workbench/timeline_feed.py): the same rows as reading the
whole timeline, and the same amount read for every new step however long the run is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypedDict

from workbench import END, START, Graph, Runner, add, append, interrupt
from workbench.history import TimelineRow, timeline
from workbench.store import TraceStore
from workbench.timeline_feed import TimelineFeed


class Count(TypedDict):
    limit: int
    count: Annotated[int, add]


def counter() -> Graph:
    g = Graph("count_feed", Count, max_steps=500)
    g.add_node("tick", lambda s: {"count": 1})
    g.edge(START, "tick")
    g.route("tick", lambda s: "tick" if s["count"] < s["limit"] else END, targets=["tick", END])
    return g


def apply(shown: list[TimelineRow], feed: TimelineFeed, store: TraceStore) -> tuple[list[TimelineRow], int]:
    """Refresh the feed and apply it as the workbench does; also count the rows it read."""
    read = 0
    real_query, real_dicts = store._query, store._query_dicts  # (workbench's own reads)

    def counting(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        nonlocal read
        rows = real_query(sql, params)
        read += len(rows)
        return rows

    def counting_dicts(sql: str, params: Any = None) -> list[dict[str, Any]]:
        nonlocal read
        rows = real_dicts(sql, params)
        read += len(rows)
        return rows

    store._query, store._query_dicts = counting, counting_dicts  # type: ignore[method-assign]
    try:
        update = feed.refresh(store)
    finally:
        del store._query, store._query_dicts
    return shown[: update.keep] + update.rows, read


def test_refreshes_read_only_the_tail_and_match_the_whole_timeline(tmp_path: Path) -> None:
    with TraceStore(str(tmp_path / "t.duckdb")) as store:
        runner = Runner(counter(), store)
        result = runner.run({"limit": 60}, break_after=["tick"])
        feed = TimelineFeed(result.run_id)
        shown: list[TimelineRow] = []
        reads: list[int] = []
        while result.status == "paused":
            shown, read = apply(shown, feed, store)
            reads.append(read)
            assert shown == timeline(store, result.run_id)
            result = runner.resume(result.run_id, break_after=["tick"])
        shown, _ = apply(shown, feed, store)
        assert shown == timeline(store, result.run_id)
        assert len(shown) == 60 and shown[-1].label == "tick ↺60"
    # Constant work: the rows read at step 50 are as many as at step 5.
    assert max(reads[3:]) == min(reads[3:]) and max(reads[3:]) < 10


class Outer(TypedDict):
    amount: int
    log: Annotated[list[str], append]


def with_subgraph() -> Graph:
    sub = Graph("inner_feed", Outer)
    sub.add_node("check", lambda s: {"log": ["checked"]})
    sub.add_node("ask", lambda s: {"log": [str(interrupt("ok?"))]})
    sub.sequence(START, "check", "ask", END)
    g = Graph("outer_feed", Outer)
    g.add_node("intake", lambda s: {"log": ["in"]})
    g.add_node("review", sub)
    g.add_node("reply", lambda s: {"log": ["out"]})
    g.sequence(START, "intake", "review", "reply", END)
    return g


def test_inner_steps_follow_the_step_that_called_them(tmp_path: Path) -> None:
    with TraceStore(str(tmp_path / "t.duckdb")) as store:
        runner = Runner(with_subgraph(), store)
        waiting = runner.run({"amount": 1})
        assert waiting.status == "waiting"
        feed = TimelineFeed(waiting.run_id)
        shown, _ = apply([], feed, store)
        child = f"{waiting.run_id}/2.0.0"
        assert [(r.depth, r.step, r.label, r.run_id, r.inner) for r in shown] == [
            (0, 1, "intake", "", 0), (0, 2, "review", "", 2), (1, 1, "check", child, 0), (1, 2, "ask", child, 0)]
        done = runner.resume(waiting.run_id, "yes")
        assert done.status == "completed"
        shown, _ = apply(shown, feed, store)
        assert shown == timeline(store, done.run_id)
        assert [(r.depth, r.label, r.status) for r in shown] == [
            (0, "intake", "completed"), (0, "review", "completed"), (1, "check", "completed"),
            (1, "ask", "completed"), (0, "reply", "completed")]


def test_steps_committed_while_a_refresh_reads_are_never_skipped(tmp_path: Path) -> None:
    """A refresh reads the tasks, then the step after the last committed one (shown pending).
    Steps committed between the two made that pending step lie beyond the tasks read, and the
    feed, following from it, never read the steps between (a live research run showed steps 1,
    4, 5, 6). Here the refresh's first query sees the run at step 1 and the rest at step 3 (a
    copy of the store taken at step 1 answers it). The committed step is read first now."""
    import shutil

    db, early_db = str(tmp_path / "t.duckdb"), str(tmp_path / "early.duckdb")
    with TraceStore(db) as store:
        runner = Runner(counter(), store)
        first = runner.run({"limit": 6}, break_after=["tick"])
        assert first.status == "paused" and first.step == 1
    shutil.copyfile(db, early_db)
    with TraceStore(db) as store:
        moved = Runner(counter(), store).resume(first.run_id, break_after=[],
                                                break_when=lambda s: s["count"] >= 3)
        assert moved.status == "paused" and moved.step == 3
    with TraceStore(db) as late, TraceStore(early_db) as early:
        queries = 0
        real_query = late._query

        def first_query_early(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
            nonlocal queries
            queries += 1
            return early._query(sql, params) if queries == 1 else real_query(sql, params)

        feed: TimelineFeed = TimelineFeed(first.run_id)
        late._query = first_query_early  # type: ignore[method-assign]
        try:
            update = feed.refresh(late)
        finally:
            del late._query
        shown = update.rows
        update = feed.refresh(late)
        shown = shown[: update.keep] + update.rows
        assert [(r.step, r.status) for r in shown] == [(1, "completed"), (2, "completed"), (3, "completed"),
                                                       (4, "pending")]
        assert shown == timeline(late, first.run_id)

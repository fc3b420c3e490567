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
    real_query = store.query

    def counting(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        nonlocal read
        rows = real_query(sql, params)
        read += len(rows)
        return rows

    store.query = counting  # type: ignore[method-assign]
    try:
        update = feed.refresh(store)
    finally:
        del store.query
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

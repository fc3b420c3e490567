"""Following a run's timeline as it grows, with the same work for every new step.

A run in progress gains a step at a time; reading its whole timeline again on every commit makes
a long live run cost quadratic work (and stutter). A :class:`TimelineFeed` remembers where the
rows it has handed out stand and, on each refresh, reads only the steps that may have changed
since: the last step it showed (a step in flight gains tasks, a pending step starts, a waiting
step is answered) and everything after it. What it returns says which rows to keep and which to
append, so a view applies it without rebuilding anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.history import TimelineBase, TimelineRow, timeline_since
from workbench.store.store import TraceStore


@dataclass
class TimelineUpdate:
    """One refresh: keep the first ``keep`` rows shown, then append ``rows``."""

    run: dict[str, Any]
    keep: int
    rows: list[TimelineRow]
    total: int  # the number of rows after applying it
    since: int  # the first step read (0: the whole timeline)


@dataclass
class TimelineFeed:
    """The timeline of one run, read a tail at a time (see the module docstring).

    Not thread-safe: one refresh at a time (the workbench runs them in one worker).
    """

    run_id: str
    base: TimelineBase = field(default_factory=TimelineBase)
    total: int = 0
    # Where the last top-level row starts in the rows handed out, its step, and the visit
    # counts before it: what the next refresh starts from.
    _tail_index: int = 0
    _tail_step: int = 0
    _visits_before_tail: dict[str, int] = field(default_factory=dict)

    def refresh(self, store: TraceStore) -> TimelineUpdate:
        """Read the run and the steps from the last one shown on (all of them the first time)."""
        since = self._tail_step
        keep = self._tail_index if since else 0
        # The tail is read again: its visits are counted again, from where they stood before it.
        self.base.visits = dict(self._visits_before_tail)
        with store.reading():  # one hold on the store for every query of the refresh
            run = store.get_run(self.run_id)
            rows = timeline_since(store, self.run_id, since, self.base)
        self.total = keep + len(rows)
        last_top = max((i for i, r in enumerate(rows) if r.depth == 0), default=None)
        if last_top is not None:
            self._tail_index = keep + last_top
            self._tail_step = rows[last_top].step
            # The visits before the new tail: every top-level row read but the last one.
            visits = dict(self._visits_before_tail)
            for r in rows[:last_top]:
                if r.depth == 0 and r.nodes and r.status != "pending":
                    visits[r.nodes[0]] = visits.get(r.nodes[0], 0) + 1
            self._visits_before_tail = visits
        return TimelineUpdate(run=run, keep=keep, rows=rows, total=self.total, since=since)

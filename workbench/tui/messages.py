"""App-level messages, named for what happened (past tense). Workers post them; widgets react."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from workbench.context import Event
from workbench.registry import ReloadResult


class GraphsLoaded(Message):
    """The graphs directory was (re)loaded."""

    def __init__(self, results: list[ReloadResult]) -> None:
        super().__init__()
        self.results = results


class GraphReloaded(Message):
    """A graph file changed on disk and was reloaded (or failed to load)."""

    def __init__(self, result: ReloadResult) -> None:
        super().__init__()
        self.result = result


class GraphSelected(Message):
    """The user picked a graph."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class RunsLoaded(Message):
    """The run history was read from the store: the newest ``runs`` of the ``matching`` that
    pass ``query`` (the Runs tab's filter and search, as read); ``error``: the filter's mistake
    (the runs are then unfiltered); ``seq``: the read's number (a later read started after it)."""

    def __init__(self, runs: list[dict[str, Any]], error: str | None = None, *, matching: int | None = None,
                 query: tuple[str, str] = ("", ""), seq: int = 0) -> None:
        super().__init__()
        self.runs = runs
        self.error = error
        self.matching = len(runs) if matching is None else matching
        self.query = query
        self.seq = seq  # the read's number: a later one started after it


class RunGone(Message):
    """A run the workbench shows (the open run, or the marked one) is no longer in the store:
    another process deleted it (``workbench rm``)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class RunChosen(Message):
    """The user opened a run (from the runs table or the lineage tree)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class TimelineLoaded(Message):
    """A run's steps were read from the store: keep the first ``keep`` rows shown and append
    ``rows`` (``keep`` 0: the whole timeline); ``total`` rows after that."""

    def __init__(self, run: dict[str, Any], rows: list[Any], seq: int = 0, *, keep: int = 0,
                 total: int | None = None, since: int = 0) -> None:
        super().__init__()
        self.run = run
        self.rows = rows
        self.seq = seq
        self.keep = keep
        self.total = len(rows) + keep if total is None else total
        self.since = since


class StepHighlighted(Message):
    """The timeline cursor moved to a step."""

    def __init__(self, run_id: str, step: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.step = step


class StepLoaded(Message):
    """One step's details (a history.StepView) were read from the store."""

    def __init__(self, run_id: str, view: Any, schema_keys: list[str], gen: int = 0) -> None:
        super().__init__()
        self.run_id = run_id
        self.view = view
        self.schema_keys = schema_keys
        self.gen = gen


class RunEventReceived(Message):
    """The runtime reported progress of a live run (step, task, token, pause...)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunEnded(Message):
    """A live run (or resume, or fork) returned: completed, failed, waiting or paused; or, with
    ``result`` None, its work failed before it had a result (a WorkFailed message said why).

    ``live`` is the app's record of that run (``WorkbenchApp.live``). Only the app's own thread
    replaces or clears it, on this message: a worker thread that cleared it itself raced with
    the handler, which then lost the run's graph and a continue pressed while the run returned.
    """

    def __init__(self, result: Any, graph: str, live: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.result = result
        self.graph = graph
        self.live = live


class BreakpointToggled(Message):
    """A breakpoint was set or cleared on a node."""

    def __init__(self, node: str, when: str) -> None:
        super().__init__()
        self.node = node
        self.when = when


class WorkFailed(Message):
    """Background work failed; shown to the user, never fatal."""

    def __init__(self, title: str, error: str) -> None:
        super().__init__()
        self.title = title
        self.error = error


class StoreChanged(Message):
    """Another process (or this one) committed to the trace store: runs may have new steps."""

    def __init__(self, token: Any) -> None:
        super().__init__()
        self.token = token

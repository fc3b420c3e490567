"""Column priorities (workbench/tui/columns.py) and the footer that fits (keys.py): pure choices."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workbench.errors import InputError
from workbench.tui.columns import RUNS_COLUMNS, Column, cell_text, fit_columns, timeline_widths
from workbench.tui.keys import fit_keys
from workbench.tui.runs_filter import check_filter, runs_query


def test_low_priority_columns_go_first_and_order_is_kept() -> None:
    cols = [Column("a", "a", 10, 1), Column("b", "b", 10, 3), Column("c", "c", 10, 2), Column("d", "d", 10, 3)]
    assert [c.key for c in fit_columns(cols, 100)] == ["a", "b", "c", "d"]
    assert [c.key for c in fit_columns(cols, 36)] == ["a", "b", "c"]  # the rightmost of equals first
    assert [c.key for c in fit_columns(cols, 24)] == ["a", "c"]
    assert [c.key for c in fit_columns(cols, 5)] == ["a"]  # priority 1 always stays


def test_the_runs_table_keeps_id_status_and_steps_at_80_columns() -> None:
    keys = [c.key for c in fit_columns(RUNS_COLUMNS, 76)]
    assert keys[:1] == ["run_id"] and {"status", "steps", "graph"} <= set(keys)
    assert "cost" not in keys and "ms" not in keys


def test_the_timeline_shrinks_its_bar_before_its_labels() -> None:
    assert timeline_widths(200) == timeline_widths(71) and timeline_widths(71).bar == 16
    assert 0 < timeline_widths(64).bar < 16 and timeline_widths(64).label == 22
    narrow = timeline_widths(40)
    assert narrow.bar == 0 and narrow.label >= 10


def _key(action: str, key: str, description: str) -> SimpleNamespace:
    return SimpleNamespace(action=action, key_display=key, description=description)


def test_a_narrow_footer_keeps_the_important_keys_in_order() -> None:
    keys = [_key("run_graph", "r", "Run"), _key("mark", "m", "Mark"), _key("replay", "p", "Replay"),
            _key("help", "?", "Help"), _key("quit", "q", "Quit")]
    assert list(fit_keys(keys, 200)) == keys
    kept = [k.key_display for k in fit_keys(keys, 24)]
    assert kept == ["r", "?", "q"]


def test_the_runs_filter_names_the_header_columns() -> None:
    sql = runs_query("steps > 3 AND ms < 10")
    assert "WHERE (\nsteps > 3 AND ms < 10\n)\nORDER BY started_at DESC" in sql
    assert "AS steps" in sql and "AS tokens" in sql and "duration_ms AS ms" in sql
    # The search is a quoted literal, matched as plain text (a quote in it is one quote).
    assert "contains(" in runs_query(search="O'Brien") and "'o''brien'" in runs_query(search="O'Brien")
    check_filter("steps > 3 -- a comment")
    with pytest.raises(InputError, match="read-only"):
        check_filter("true; DELETE FROM wb_runs")
    with pytest.raises(InputError, match="one SQL condition"):
        check_filter("true; SELECT 1")  # (the rows would not be runs)


def test_a_cell_cut_to_its_column_ends_in_an_ellipsis() -> None:
    """The Compare tab's step, nodes and what cells (capped at 20 or 12 cells) mark a cut."""
    assert cell_text("classify_and_route_the_ticket", 12, "bold").plain == "classify_an…"
    assert cell_text("draft", 12).plain == "draft"
    assert cell_text("exactly_12ch", 12).plain == "exactly_12ch"
    assert cell_text("2 › review 3", 12, "dim").style == "dim"


def test_a_step_of_a_run_still_going_is_running_not_failed() -> None:
    """The inspector said "did not commit (the run failed, waited or stopped here)" for the
    step a live run was running."""
    from workbench.history import StepView
    from workbench.tui.widgets.inspector import render_step

    from .conftest import plain

    view = StepView(3, "r-1", [{"node": "draft"}], [], [], [], {"n": 1}, None)
    assert "This step is running: it has not committed yet." in plain(render_step(view, "r-1", ["n"], going=True))
    stopped = plain(render_step(view, "r-1", ["n"]))
    assert "This step did not commit (the run failed, waited or stopped here)." in stopped


def test_forgetting_a_runs_steps_forgets_its_subgraph_runs_steps_too() -> None:
    """After a resume, the refresh forgot the run's steps but not its subgraph runs' (``RUN/2.0.0``):
    an inner step read while it was in flight kept saying "did not commit" once it had."""
    from workbench.tui.loaders import StepLoader

    loader = StepLoader(app=None)  # type: ignore[arg-type]
    for key in [("r-1", 1), ("r-1", 2), ("r-1/2.0.0", 1), ("r-1/2.0.0", 2), ("r-10", 2), ("r-2/1.0.0", 1)]:
        loader.views[key] = object()  # type: ignore[assignment]
    loader.histories.update({"r-1": object(), "r-1/2.0.0": object(), "r-10": object()})  # type: ignore[dict-item]
    loader.forget("r-1", 2)
    assert sorted(loader.views) == [("r-1", 1), ("r-10", 2), ("r-2/1.0.0", 1)]
    assert sorted(loader.histories) == ["r-10"]

"""TraceStore.state_at folds in the database (one row per key): it must give exactly the
state that applying every recorded change in order gives, for every step, forks included."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest

from workbench import END, START, Graph, Overwrite, Runner, append
from workbench.errors import RunNotFoundError
from workbench.history import RunHistory
from workbench.state import apply_changes
from workbench.store.store import TraceStore


class S(TypedDict):
    items: Annotated[list[Any], append]
    note: Any
    n: int


@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = TraceStore(str(tmp_path / "t.duckdb"))
    yield s
    s.close()


def _graph() -> Graph:
    g = Graph("state_at_mix", S)

    def step(s: S) -> dict[str, Any]:
        n = s["n"] + 1
        update: dict[str, Any] = {"n": n}
        if n % 5 == 0:
            update["items"] = Overwrite([f"reset{n}"])  # a whole value between appends
        elif n % 3 == 0:
            update["items"] = []  # an empty append
        else:
            update["items"] = [n, {"k": [n, "a,b]"]}, "x, y", None]
        if n % 4 == 0:
            update["note"] = {"n": n} if n % 8 else None
        return update

    g.add_node("step", step)
    g.edge(START, "step")
    g.route("step", lambda s: "step" if s["n"] < 12 else END, targets=["step", END])
    return g


def _folded(store: TraceStore, run_id: str, step: int) -> dict[str, Any]:
    state: dict[str, Any] = {}
    return apply_changes(state, ((k, op, v) for s, k, op, v in store.changes(run_id, step)))


def test_state_at_is_the_fold_of_every_change_at_every_step(store: Any) -> None:
    result = Runner(_graph(), store).run({"items": ["s"]})
    assert result.status == "completed"
    for step in range(result.step + 1):
        assert store.state_at(result.run_id, step) == _folded(store, result.run_id, step), step
    assert store.state_at(result.run_id, result.step) == result.state
    fork = Runner(_graph(), store).fork(result.run_id, 7, set_state={"items": ["edited"], "note": "f"})
    assert fork.status == "completed"
    history = RunHistory(store, fork.run_id)
    for step in range(fork.step + 1):
        expected = _folded(store, fork.run_id, step)
        assert store.state_at(fork.run_id, step) == expected, step
        assert list(store.state_at(fork.run_id, step)) == list(expected)  # key order too
        assert history.state_after(step) == expected
    assert store.state_at(fork.run_id, fork.step) == fork.state


def test_the_lineage_of_one_run_is_the_run_lineage_views(store: Any) -> None:
    """``lineage`` and the state query walk up from one run; the view builds every run's lineage.
    Both say the same for a fork of a fork and for the runs around it."""
    root = Runner(_graph(), store).run({"items": ["s"]})
    fork = Runner(_graph(), store).fork(root.run_id, 7, set_state={"note": "f"})
    fork2 = Runner(_graph(), store).fork(fork.run_id, 9, set_state={"note": "g"})
    for run_id in (root.run_id, fork.run_id, fork2.run_id):
        view = store.query("SELECT ancestor_id, upto_step FROM run_lineage WHERE run_id = ? ORDER BY depth",
                           [run_id])
        assert store.lineage(run_id) == [(str(a), int(u)) for a, u in view]
    assert len(store.lineage(fork2.run_id)) == 3
    for step in range(fork2.step + 1):
        assert store.state_at(fork2.run_id, step) == _folded(store, fork2.run_id, step), step
    assert store.lineage("no-such-run") == []
    with pytest.raises(RunNotFoundError):  # as get_run: not an empty state
        store.state_at("no-such-run", 3)


def test_opening_a_history_checks_the_run_and_reads_the_rest_on_first_use(store: Any) -> None:
    from workbench.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        RunHistory(store, "nope")
    result = Runner(_graph(), store).run({"items": ["s"]})
    history = RunHistory(store, result.run_id)
    assert history.state_after(result.step) == result.state
    assert history.run["status"] == "completed" and history.run["run_id"] == result.run_id
    assert history.lineage == [(result.run_id, 2**31 - 1)]
    assert history.last_step == result.step == store.last_step(result.run_id)

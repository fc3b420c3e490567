"""Recorded runs as regression tests in a project's own pytest suite (issue 3, §6):
``workbench.testing.assert_replays`` / ``recorded_runs`` and the ``workbench_replay`` fixture of
the auto-registered pytest plugin, driven through a pytest session of its own (in this process:
tests/inner_pytest.py) on a generated test file.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import cli_env
from inner_pytest import run_pytest as inner_pytest

from workbench import Runner
from workbench.errors import InputError, RunNotFoundError, StoreError
from workbench.loader import load_graph
from workbench.store import TraceStore
from workbench.testing import ReplayMismatch, assert_replays, recorded_runs, replay

HERE = Path(__file__).resolve().parent
ORDERS = HERE / "graphs_replay" / "orders.py"
BUG = 'average = state["total"] / len(state["items"])  # BUG: an order without items'
FIX = 'average = state["total"] / len(state["items"]) if state["items"] else 0.0'

TEST_FILE = textwrap.dedent('''
    """A project's regression tests: every recorded run must still replay."""
    import pytest

    from workbench.testing import assert_replays, recorded_runs

    DB = "traces/regressions.duckdb"


    @pytest.mark.parametrize("run_id", recorded_runs(DB, graph="orders"))
    def test_recorded_orders_run(run_id):
        assert_replays(run_id, db=DB)


    def test_with_the_fixture(workbench_replay):
        # --workbench-db sets the fixture's default database.
        for run_id in recorded_runs(DB):
            report = workbench_replay(run_id)
            assert report.identical
''')


@pytest.fixture
def recorded(project: Path) -> dict[str, str]:
    """Orders runs (completed, waiting, failed) in the project's traces/regressions.duckdb."""
    shutil.copy(ORDERS, project / "graphs" / "orders.py")
    graph = load_graph("orders")
    with TraceStore(str(project / "traces" / "regressions.duckdb")) as store:
        runner = Runner(graph, store)
        ids = {
            "completed": runner.run({"items": ["apple"]}).run_id,
            "waiting": runner.run({"items": ["melon"]}).run_id,
            "failed": runner.run({"items": []}).run_id,
        }
    (project / "test_regressions.py").write_text(TEST_FILE)
    return ids


def _auto_registered() -> bool:
    """Whether the installed package metadata registers the plugin (pyproject's pytest11 entry
    point); an editable install made before the entry point was added does not."""
    from importlib.metadata import entry_points

    return any(ep.value == "workbench.pytest_plugin" for ep in entry_points(group="pytest11"))


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    load = [] if _auto_registered() else ["-p", "workbench.pytest_plugin"]
    return inner_pytest("-q", *load, "test_regressions.py", "--workbench-db", "traces/regressions.duckdb",
                        "-W", "ignore", cwd=project, env=cli_env())


def test_recorded_runs_pass_then_fail_after_a_code_change(project: Path, recorded: dict[str, str]) -> None:
    res = run_pytest(project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 passed" in res.stdout

    # The fix changes what the failed run does: its regression test now fails, with the reason.
    path = project / "graphs" / "orders.py"
    path.write_text(path.read_text().replace(BUG, FIX))
    res = run_pytest(project)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 failed, 2 passed" in res.stdout
    assert recorded["failed"] in res.stdout
    assert "diverged" in res.stdout and "stats" in res.stdout


def test_library_helpers(project: Path, recorded: dict[str, str]) -> None:
    db = "traces/regressions.duckdb"
    assert set(recorded_runs(db)) == set(recorded.values())
    assert recorded_runs(db, graph="orders", status="failed") == [recorded["failed"]]
    assert recorded_runs(db, graph="orders", status="paused") == []  # a known graph, none paused
    report = assert_replays(recorded["completed"], db=db)
    assert report.identical and report.status == "completed"
    assert replay(recorded["waiting"][:14], db=db).identical

    path = project / "graphs" / "orders.py"
    path.write_text(path.read_text().replace(BUG, FIX))
    with pytest.raises(ReplayMismatch) as err:
        assert_replays(recorded["failed"], db=db)
    assert isinstance(err.value, AssertionError)
    message = str(err.value)
    assert recorded["failed"] in message and "stats" in message and "step 2" in message
    assert assert_replays(recorded["completed"], db=db).changed_nodes == ["stats"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


def test_a_mistyped_store_path_fails_the_suite_and_creates_nothing(project: Path, recorded: dict[str, str]) -> None:
    """The documented test file with a typo in DB was a green CI with no tests (one skipped), and
    left a new empty store and its spool at the typo."""
    (project / "test_regressions.py").write_text(TEST_FILE.replace("traces/regressions.duckdb",
                                                                    "traces/regression.duckdb"))
    before = _files(project)
    res = run_pytest(project)
    assert res.returncode != 0, res.stdout
    assert "no trace store at traces/regression.duckdb: nothing is recorded there (check the db argument)" \
        in res.stdout
    assert _files(project) == before


def test_library_helpers_refuse_mistakes_creating_nothing(project: Path, recorded: dict[str, str]) -> None:
    db = "traces/regressions.duckdb"
    before = _files(project)
    typo = "traces/regression.duckdb"
    message = f"no trace store at {typo}: nothing is recorded there (check the db argument)"
    for call in (lambda: recorded_runs(typo), lambda: replay(recorded["completed"], db=typo),
                 lambda: assert_replays(recorded["completed"], db=typo)):
        with pytest.raises(StoreError) as err:
            call()
        assert str(err.value) == message
    with pytest.raises(StoreError, match=r"no trace store at traces/workbench.duckdb: .* \(check WORKBENCH_DB"):
        recorded_runs()  # the default store, which nothing recorded into
    assert _files(project) == before

    with pytest.raises(RunNotFoundError) as graph_err:
        recorded_runs(db, graph="helpdes")
    assert str(graph_err.value) == (f"no finished run of graph 'helpdes' in {db} (it has finished runs of "
                                    "'orders')")
    with pytest.raises(InputError, match="status 'bogus' is not a finished run's status; use one of completed, "
                                         "failed, paused, superseded, waiting"):
        recorded_runs(db, status="bogus")


def test_the_plugin_is_declared_for_auto_registration() -> None:
    import tomllib

    with open(HERE.parent / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert project["entry-points"]["pytest11"] == {"workbench": "workbench.pytest_plugin"}


@pytest.mark.skipif(not _auto_registered(), reason="the installed package metadata predates the pytest11 entry "
                    "point: reinstall with 'pip install -e .'")
def test_the_plugin_is_registered(tmp_path: Path) -> None:
    # A new session loads the entry points itself: the option is there only if ours is one.
    res = inner_pytest("--help", cwd=tmp_path, env=cli_env())
    assert res.returncode == 0 and "--workbench-db" in res.stdout


def test_a_run_that_now_ends_earlier_fails(project: Path, recorded: dict[str, str]) -> None:
    """The completed run went price → stats → confirm; a router that ends after stats must fail it."""
    db = "traces/regressions.duckdb"
    path = project / "graphs" / "orders.py"
    path.write_text(path.read_text().replace('graph.route("stats", after_stats, targets=["approve", "confirm"])',
                                             'graph.route("stats", lambda s: END, targets=["approve", "confirm"])'))
    with pytest.raises(ReplayMismatch) as err:
        assert_replays(recorded["completed"], db=db)
    assert "the run now ends completed after step 2; the recording went on to step 3 (confirm)" in str(err.value)

"""Where a recorded run's graph code comes from (issue 7, item 2): the project's graphs directory,
looked up by the graph *name* the run recorded, or a file the user names (``--graph FILE[:VAR]``,
``graph="file.py"``) — never the file path stored in the trace.

A trace file is data from elsewhere: if its ``runs.graph_file`` could choose which local Python
file ``replay``, ``test``, ``resume`` or ``fork`` imports, importing a trace would be enough to run
any file on the machine. The hostile file below creates a marker file when it is imported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from workbench import Runner
from workbench.cli import main
from workbench.errors import GraphLoadError
from workbench.loader import load_for_run, load_graph
from workbench.store import TraceStore
from workbench.testing import assert_replays, replay
from workbench.transfer import export_runs

HERE = Path(__file__).resolve().parent
ORDERS = HERE / "graphs_replay" / "orders.py"

HOSTILE = '''\
"""Imported only if a trace can choose which file runs."""
import pathlib

pathlib.Path({marker!r}).write_text("imported")

from workbench import END, START, Graph

graph = Graph({name!r})


@graph.node
def a(state):
    return None


graph.sequence(START, "a", END)
'''


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def record_orders(db: str, graph_ref: str) -> dict[str, str]:
    """A completed and a waiting run of the orders graph (no model calls)."""
    graph = load_graph(graph_ref)
    with TraceStore(db) as store:
        runner = Runner(graph, store)
        done = runner.run({"items": ["apple"]})
        waiting = runner.run({"items": ["melon"]})
    assert (done.status, waiting.status) == ("completed", "waiting")
    return {"done": done.run_id, "waiting": waiting.run_id}


def rewrite_runs(src: Path, dst: Path, **changes: Any) -> None:
    """Copy an export file, changing columns of every ``runs`` row (what a hostile sender does)."""
    lines = src.read_text(encoding="utf-8").splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        item = json.loads(line)
        if item["table"] == "runs":
            item["row"].update(changes)
        out.append(json.dumps(item))
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    """A downloaded 'helper' that creates ``marker`` when imported, defining a graph 'orders'."""
    dl = tmp_path / "dl"
    dl.mkdir()
    marker = tmp_path / "MARKER"
    helper = dl / "helper.py"
    helper.write_text(HOSTILE.format(marker=str(marker), name="orders"))
    return {"helper": helper, "marker": marker}


@pytest.fixture
def imported(project: Path, tmp_path: Path, hostile: dict[str, Path]) -> dict[str, Any]:
    """Orders runs recorded elsewhere, exported, pointed at the hostile file, imported here."""
    shutil.copy(ORDERS, project / "graphs" / "orders.py")
    src_db = str(tmp_path / "prod.duckdb")
    ids = record_orders(src_db, "orders")
    export = tmp_path / "runs.jsonl"
    with TraceStore(src_db) as store:
        export_runs(store, list(ids.values()), str(export))
    evil = tmp_path / "evil.jsonl"
    rewrite_runs(export, evil, graph_file=str(hostile["helper"]))
    db = str(project / "traces" / "laptop.duckdb")
    with TraceStore(db) as store:
        from workbench.transfer import import_files

        assert sorted(import_files(store, [str(evil)])["imported"]) == sorted(ids.values())
        assert store.get_run(ids["done"])["graph_file"] == str(hostile["helper"])
    return {"db": db, "ids": ids, "evil": evil}


def test_an_imported_trace_cannot_choose_the_file_that_runs(project: Path, imported: dict[str, Any],
                                                            hostile: dict[str, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db, ids, marker = imported["db"], imported["ids"], hostile["marker"]
    # The project has graphs/orders.py: every command uses it, none imports the trace's file.
    code, out, _ = cli(capsys, "replay", ids["done"], "--db", db)
    assert code == 0 and "replays identically" in out
    assert not marker.exists()
    code, out, _ = cli(capsys, "test", ids["done"], ids["waiting"], "--db", db)
    assert code == 0 and "2 passed, 0 failed" in out
    assert not marker.exists()
    code, out, _ = cli(capsys, "test", "--graph", "orders", "--db", db)
    assert code == 0 and "2 passed, 0 failed" in out
    assert not marker.exists()
    code, out, _ = cli(capsys, "fork", ids["done"], "--at", "2", "--db", db, "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    assert not marker.exists()
    code, out, _ = cli(capsys, "resume", ids["waiting"], "--input", "true", "--db", db, "--json")
    assert code == 0 and json.loads(out)["state"]["status"] == "confirmed"
    assert not marker.exists()
    assert replay(ids["done"], db=db).identical
    assert not marker.exists()


def test_without_the_graph_in_the_project_the_commands_say_what_to_do(
        project: Path, imported: dict[str, Any], hostile: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    db, ids, marker = imported["db"], imported["ids"], hostile["marker"]
    (project / "graphs" / "orders.py").unlink()
    for args in (["replay", ids["done"]], ["fork", ids["done"], "--at", "2"],
                 ["resume", ids["waiting"], "--input", "true"]):
        code, out, err = cli(capsys, *args, "--db", db)
        line = one_line(err)
        assert code == 2, (args, out, err)
        assert "'orders'" in line and "--graph FILE" in line and "graphs/" in line, line
        assert not marker.exists(), args
    code, out, _ = cli(capsys, "test", ids["done"], "--db", db)
    assert code == 1 and "ERROR" in out and "--graph FILE" in out
    assert not marker.exists()
    with pytest.raises(GraphLoadError, match="graph="):
        assert_replays(ids["done"], db=db)
    assert not marker.exists()


def test_a_graph_name_from_a_trace_is_never_used_as_a_path(project: Path, tmp_path: Path,
                                                           imported: dict[str, Any], hostile: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``runs.graph`` is a name: a path there (or a name ending in .py) imports nothing."""
    shutil.copy(hostile["helper"], project / "helper.py")  # a file in the working directory too
    export = imported["evil"]
    for n, name in enumerate([str(hostile["helper"]), "helper.py", "../dl/helper", "helper.py:graph"]):
        db = str(tmp_path / f"names{n}.duckdb")
        renamed = tmp_path / f"renamed{n}.jsonl"
        rewrite_runs(export, renamed, graph=name, graph_file=None)
        assert cli(capsys, "import", str(renamed), "--db", db)[0] == 0
        for args in (["replay", imported["ids"]["done"]], ["fork", imported["ids"]["done"], "--at", "2"],
                     ["resume", imported["ids"]["waiting"], "--input", "true"]):
            code, _, err = cli(capsys, *args, "--db", db)
            assert code == 2 and "is not in graphs/" in one_line(err), (name, args, err)
        with pytest.raises(GraphLoadError):
            load_for_run(name, str(hostile["helper"]))
        assert not hostile["marker"].exists(), name


# --------------------------------------------------------------------------- --graph FILE[:VAR]


@pytest.fixture
def outside(project: Path, tmp_path: Path) -> dict[str, Any]:
    """Orders runs whose graph lives outside graphs/ (elsewhere/shop.py)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shop = elsewhere / "shop.py"
    shutil.copy(ORDERS, shop)
    db = str(project / "traces" / "outside.duckdb")
    return {"db": db, "file": str(shop), "ids": record_orders(db, str(shop))}


def test_graph_option_names_a_graph_file_outside_graphs(project: Path, outside: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db, ids, shop = outside["db"], outside["ids"], outside["file"]
    # Without --graph: not found, and the error says how to name the file.
    code, _, err = cli(capsys, "replay", ids["done"], "--db", db)
    assert code == 2 and "--graph FILE" in one_line(err)

    code, out, _ = cli(capsys, "replay", ids["done"], "--graph", shop, "--db", db)
    assert code == 0 and "replays identically" in out
    code, out, _ = cli(capsys, "replay", ids["waiting"], "--graph", f"{shop}:graph", "--db", db, "--json")
    assert code == 0 and json.loads(out)["identical"] is True

    # test: the named runs, or with none named every finished run of the file's graph.
    code, out, _ = cli(capsys, "test", ids["done"], "--graph", shop, "--db", db)
    assert code == 0 and "1 passed, 0 failed" in out
    code, out, _ = cli(capsys, "test", "--graph", shop, "--db", db, "--json")
    assert code == 0 and {r["run_id"] for r in json.loads(out)} == set(ids.values())

    code, out, _ = cli(capsys, "fork", ids["done"], "--at", "2", "--graph", shop, "--db", db, "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out, _ = cli(capsys, "resume", ids["waiting"], "--graph", shop, "--input", "true", "--db", db, "--json")
    assert code == 0 and json.loads(out)["state"]["status"] == "confirmed"

    # From Python: graph= takes the file too.
    assert replay(ids["done"], db=db, graph=shop).identical
    assert assert_replays(ids["done"], db=db, graph=f"{shop}:graph").identical


def test_graph_option_must_define_the_recorded_graph(project: Path, tmp_path: Path, outside: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db, ids, shop = outside["db"], outside["ids"], outside["file"]
    other = tmp_path / "other.py"
    other.write_text(HOSTILE.format(marker=str(tmp_path / "other-imported"), name="billing"))
    for args in (["replay", ids["done"]], ["fork", ids["done"], "--at", "2"],
                 ["resume", ids["waiting"], "--input", "true"]):
        code, _, err = cli(capsys, *args, "--graph", str(other), "--db", db)
        line = one_line(err)
        assert code == 2 and "'billing'" in line and "not the run's graph 'orders'" in line, line
    code, _, err = cli(capsys, "test", ids["done"], "--graph", str(other), "--db", db)
    assert code == 2 and "graph 'orders'" in one_line(err) and "'billing'" in one_line(err)
    code, _, err = cli(capsys, "replay", ids["done"], "--graph", f"{shop}:nope", "--db", db)
    assert code == 2 and "no Graph named 'nope'" in one_line(err)
    code, _, err = cli(capsys, "replay", ids["done"], "--graph", str(tmp_path / "missing.py"), "--db", db)
    assert code == 2 and "does not exist" in one_line(err)
    with TraceStore(db) as store:  # nothing was recorded by the refused resume and fork
        assert store.query("SELECT count(*) FROM runs") == [(2,)]
        assert store.get_run(ids["waiting"])["status"] == "waiting"


def test_run_of_a_file_graph_prints_a_resume_hint_with_the_file(project: Path, outside: dict[str, Any],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    db, shop = outside["db"], outside["file"]
    code, out, _ = cli(capsys, "run", shop, "--input", '{"items": ["melon"]}', "--db", db)
    assert code == 3
    rid = json.loads(cli(capsys, "runs", "--db", db, "--json")[1])[0]["run_id"]
    assert f"workbench resume {rid} --graph {shop} --input" in out
    # A graph found by name needs no --graph later.
    shutil.copy(ORDERS, project / "graphs" / "orders.py")
    code, out, _ = cli(capsys, "run", "orders", "--input", '{"items": ["apple"]}', "--break-after", "price",
                       "--db", db)
    assert code == 3 and "continue with: workbench resume" in out and "--graph" not in out

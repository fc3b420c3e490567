"""Production traces in and out (issue 3, §7): export runs to a portable JSON-lines file, import
them into another store (idempotent, validated, never executed), through the library and the CLI.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import copy_store, demo_project, run_cli

from workbench import Runner, append
from workbench.errors import InputError
from workbench.history import RunHistory
from workbench.loader import load_graph
from workbench.replay import replay_run
from workbench.store import TraceStore
from workbench.store.schema import SCHEMA_VERSION
from workbench.transfer import export_runs, import_files

TABLES = ("wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_llm_calls", "wb_interrupts", "wb_events")
TECHNICAL = {"message": "My login page shows an error 500 since this morning", "customer_id": "C-1001"}
REFUND_BIG = {"message": "Please refund the $500 you took from me", "customer_id": "C-1003"}


def counts(store: TraceStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def playback(store: TraceStore, run_id: str) -> dict[str, Any]:
    """Everything playback shows of a run, as plain data."""
    h = RunHistory(store, run_id)
    return {
        "run": h.run,
        "lineage": h.lineage,
        "last_step": h.last_step,
        "steps": [
            {"step": v.step, "owner": v.owner, "planned": v.planned, "tasks": v.tasks, "calls": v.calls,
             "interrupts": v.interrupts, "before": v.state_before, "after": v.state_after,
             "edits": v.edits_after}
            for v in h.steps()
        ],
        "final": store.state_at(run_id, h.last_step),
    }


@pytest.fixture(scope="module")
def recorded_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Support runs recorded once (see ``recorded``)."""
    proj = demo_project(tmp_path_factory.mktemp("recorded"))
    db = str(proj / "src.duckdb")
    graph = load_graph(str(proj / "graphs" / "support.py"))
    with TraceStore(db) as store:
        runner = Runner(graph, store)
        done = runner.run(TECHNICAL)
        waited = runner.run(REFUND_BIG)
        runner.resume(waited.run_id, {"reply": "Billing will call you."})
        fork = runner.fork(done.run_id, 4, llm_responses={1: "We guarantee a fix."})
        assert fork.status == "completed"
        grand = runner.fork(fork.run_id, 6, set_state={"draft": "A safe draft."})
        ids = {"done": done.run_id, "waited": waited.run_id, "fork": fork.run_id, "grand": grand.run_id}
        pb = {k: playback(store, v) for k, v in ids.items()}
    return {"db": db, "ids": ids, "playback": pb}


@pytest.fixture
def recorded(project: Path, tmp_path: Path, recorded_template: dict[str, Any]) -> dict[str, Any]:
    """A closed store with support runs: completed, waited-and-resumed, and a fork with an edited answer
    (a private copy of one recording), and the support graph of the test's project."""
    db = copy_store(recorded_template["db"], tmp_path / "src.duckdb")
    return {"db": db, "ids": dict(recorded_template["ids"]), "playback": copy.deepcopy(recorded_template["playback"]),
            "graph": load_graph("support")}


# --------------------------------------------------------------------------- export and import (library)


def test_export_file_format(recorded: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "one.jsonl"
    with TraceStore(recorded["db"]) as store:
        written = export_runs(store, [recorded["ids"]["done"]], str(out))
    assert written == [recorded["ids"]["done"]]
    lines = out.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "workbench-trace" and header["version"] == 1
    assert header["runs"] == written
    tables = set()
    for line in lines[1:]:
        item = json.loads(line)
        assert set(item) == {"table", "row"}
        assert item["row"]["run_id"] == written[0]
        tables.add(item["table"])
    assert {"runs", "steps", "state_changes", "supersteps", "llm_calls"} <= tables
    run = next(json.loads(ln)["row"] for ln in lines[1:] if json.loads(ln)["table"] == "runs")
    assert isinstance(run["started_at"], int) and run["input"] == TECHNICAL  # epoch µs, JSON as JSON
    assert not (tmp_path / "one.jsonl.tmp").exists()


def test_fork_export_includes_its_ancestors(recorded: dict[str, Any], tmp_path: Path) -> None:
    ids = recorded["ids"]
    out = tmp_path / "grand.jsonl"
    with TraceStore(recorded["db"]) as store:
        written = export_runs(store, [ids["grand"]], str(out))
    assert written == [ids["done"], ids["fork"], ids["grand"]]
    with TraceStore(str(tmp_path / "fresh.duckdb")) as fresh:
        assert import_files(fresh, [str(out)]) == {"imported": written, "skipped": []}
        assert playback(fresh, ids["grand"]) == recorded["playback"]["grand"]


def test_import_into_a_fresh_store_gives_identical_playback_and_replay(
        recorded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = recorded["ids"]
    out = tmp_path / "all.jsonl"
    with TraceStore(recorded["db"]) as store:
        src_counts = counts(store)
        export_runs(store, list(ids.values()), str(out))
    fresh_db = str(tmp_path / "fresh.duckdb")
    with TraceStore(fresh_db) as fresh:
        result = import_files(fresh, [str(out)])
        assert sorted(result["imported"]) == sorted(ids.values()) and result["skipped"] == []
        for name, rid in ids.items():
            assert playback(fresh, rid) == recorded["playback"][name], name
        assert counts(fresh) == src_counts
        # Replay in the new store: identical, no model reached, no tool run.
        import workbench.llm.client as client

        def refuse(*a: Any, **k: Any) -> Any:
            raise AssertionError("live model call")

        monkeypatch.setattr(client, "litellm_module", refuse)
        monkeypatch.setattr(client, "_litellm", None)
        for rid in ids.values():
            assert replay_run(fresh, rid, recorded["graph"]).identical, rid


def test_import_is_idempotent(recorded: dict[str, Any], tmp_path: Path) -> None:
    ids = recorded["ids"]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with TraceStore(recorded["db"]) as store:
        export_runs(store, [ids["done"]], str(first))
        export_runs(store, [ids["fork"], ids["waited"]], str(second))
    with TraceStore(str(tmp_path / "fresh.duckdb")) as fresh:
        assert import_files(fresh, [str(first)]) == {"imported": [ids["done"]], "skipped": []}
        after_first = counts(fresh)
        assert import_files(fresh, [str(first)]) == {"imported": [], "skipped": [ids["done"]]}
        assert counts(fresh) == after_first
        # A file holding a known run and new ones: the known one is skipped, not duplicated.
        result = import_files(fresh, [str(second)])
        assert result["skipped"] == [ids["done"]]
        assert sorted(result["imported"]) == sorted([ids["fork"], ids["waited"]])
        assert fresh.query("SELECT count(*) FROM runs WHERE run_id = ?", [ids["done"]]) == [(1,)]
        assert playback(fresh, ids["fork"]) == recorded["playback"]["fork"]
        # The same file twice in one call.
        again = import_files(fresh, [str(second), str(second)])
        assert again["imported"] == []


def test_export_never_writes_over_the_store_or_a_file_that_is_not_an_export(recorded: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    """A mistyped ``--to`` naming the store replaced it with a JSON-lines file: every trace lost.
    The store's file, write-ahead log and spool, and any file that is not an export (a graph
    file, another store), are refused in one line and left as they were; an earlier export is
    replaced."""
    db, run_id = recorded["db"], recorded["ids"]["done"]
    graph_file = tmp_path / "graph.py"
    graph_file.write_text("print('a graph')\n")
    (tmp_path / "link.duckdb").symlink_to(db)
    before = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (db, graph_file)}
    for target, needle in [(db, "the trace store's own file"), (f"{db}.wal", "the trace store's own file"),
                           (str(tmp_path / "link.duckdb"), "the trace store's own file"),
                           (f"{db}.spool/runs.jsonl", "inside the trace store's spool"),
                           (str(graph_file), "is not a workbench export, so it is not replaced")]:
        res = run_cli("export", run_id, "--to", target, "--db", db, cwd=tmp_path)
        assert res.returncode == 2 and needle in res.stderr and len(res.stderr.splitlines()) == 1, (target, res)
    assert before == {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (db, graph_file)}
    assert not Path(f"{db}.wal").exists() and not Path(f"{db}.spool/runs.jsonl").exists()
    out = tmp_path / "runs.jsonl"
    for _ in range(2):  # an export is replaced by the next one
        assert run_cli("export", run_id, "--to", str(out), "--db", db, cwd=tmp_path).returncode == 0
    assert json.loads(out.read_text().splitlines()[0])["runs"] == [run_id]
    piped = run_cli("export", run_id, "--to", "-", "--db", db, cwd=tmp_path)  # stdout (it made a file "-")
    assert piped.returncode == 0 and piped.stdout == out.read_text(encoding="utf-8"), piped.stderr
    assert piped.stderr == f"exported 1 run(s) to stdout: {run_id}\n" and not (tmp_path / "-").exists()
    with TraceStore(db) as store, pytest.raises(InputError, match=f"subgraph run of run {run_id}: export {run_id}"):
        export_runs(store, [f"{run_id}/2.0.0"], str(tmp_path / "sub.jsonl"))  # import takes it only with its root


# --------------------------------------------------------------------------- hostile and malformed files


@pytest.fixture
def small_export(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A real export (of a run of the orders graph) as header + rows, to corrupt."""
    from pathlib import Path as P

    src = P(__file__).resolve().parent / "graphs_replay" / "orders.py"
    graph = load_graph(str(src))
    out = tmp_path / "small.jsonl"
    with TraceStore(str(tmp_path / "small.duckdb")) as store:
        run = Runner(graph, store).run({"items": ["apple"]})
        export_runs(store, [run.run_id], str(out))
    lines = out.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(ln) for ln in lines[1:]]


def write(path: Path, header: Any, rows: list[Any]) -> Path:
    path.write_text("\n".join([json.dumps(header)] + [json.dumps(r) for r in rows]) + "\n", encoding="utf-8")
    return path


def first(rows: list[dict[str, Any]], table: str) -> dict[str, Any]:
    return next(r for r in rows if r["table"] == table)


def _set(table: str, column: str, value: Any) -> Any:
    def f(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
        first(rows, table)["row"][column] = value
        return header, rows
    return f


def _drop(table: str, column: str) -> Any:
    def f(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
        del first(rows, table)["row"][column]
        return header, rows
    return f


def _header(**changes: Any) -> Any:
    def f(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
        return {**header, **changes}, rows
    return f


def _rows_append(item: Any) -> Any:
    def f(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
        return header, [*rows, item]
    return f


def _unlisted(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    row = copy.deepcopy(first(rows, "steps"))
    row["row"]["run_id"] = "someone-else"
    return header, [*rows, row]


def _listed_but_missing(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    return {**header, "runs": [*header["runs"], "ghost"]}, rows


def _self_parent(header: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    run = first(rows, "runs")["row"]
    run["parent_run_id"] = run["run_id"]
    run["fork_step"] = 1
    return header, rows


MALFORMED: dict[str, Any] = {
    "header wrong format": (_header(format="langgraph-checkpoint"), "not a workbench trace file"),
    "header wrong version": (_header(version=2), "version"),
    "header runs not a list": (_header(runs="abc"), "runs"),
    "unknown table": (_rows_append({"table": "wb_meta", "row": {"key": "schema_version", "value": "9"}}),
                      "unknown table"),
    "sqlite_master table": (_rows_append({"table": "sqlite_master", "row": {}}), "unknown table"),
    "extra key in item": (_rows_append({"table": "runs", "row": {}, "sql": "DROP TABLE wb_runs"}), "expected"),
    "row not an object": (_rows_append({"table": "runs", "row": [1, 2]}), "object"),
    "unknown column": (_set("runs", "is_admin", True), "is_admin"),
    "injected column name": (_set("steps", 'node" VARCHAR); DROP TABLE wb_runs; --', "x"), "has no column"),
    "step as string": (_set("steps", "step", "1"), "step"),
    "attempt as bool": (_set("steps", "attempt", True), "attempt"),
    "timestamp as text": (_set("runs", "started_at", "2024-01-01"), "started_at"),
    "duration as text": (_set("steps", "duration_ms", "fast"), "duration_ms"),
    "status as number": (_set("runs", "status", 7), "status"),
    "integer out of range": (_set("steps", "step", 2**40), "step"),
    "null run id": (_set("steps", "run_id", None), "run_id"),
    "row for a run not in the header": (_unlisted, "header"),
    "run listed without a runs row": (_listed_but_missing, "ghost"),
    "missing required column": (_drop("steps", "node"), "node"),
    "timestamp out of range": (_set("runs", "started_at", 2**63 - 1), "started_at"),
    "run is its own parent": (_self_parent, "parent"),
    # Shapes the commands read (each imported and then crashed fork, replay, show or diff).
    "config max_steps as text": (_set("runs", "config", {"max_steps": "lots"}), "max_steps 'lots'"),
    "config breakpoints not a list": (_set("runs", "config", {"break_before": 5}), "break_before 5"),
    "config not an object": (_set("runs", "config", [1]), "'config' must be an object"),
    "node_versions as text": (_set("runs", "node_versions", "x"), "node_versions"),
    "relation unknown": (_set("runs", "relation", "weird"), "'fork', 'continuation' or null"),
    "plan tasks not a list": (_set("supersteps", "tasks", {"not": "list"}), "'tasks' must be a list"),
    "plan task without a node": (_set("supersteps", "tasks", [{"arg": 1}]), "'tasks' must be a list"),
    "change op unknown": (_set("state_changes", "op", "explode"), "'set' or 'extend'"),
    "call kind unknown": (_set("llm_calls", "kind", "shell"), "'llm' or 'tool'"),
    "header from a newer schema": (_header(schema_version=9), "schema 9"),
}


BUGS: dict[str, str] = {}


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BUGS[name])) if name in BUGS else name
    for name in MALFORMED
])
def test_malformed_file_is_refused_and_changes_nothing(case: str, small_export: Any, tmp_path: Path) -> None:
    corrupt, needle = MALFORMED[case]
    header, rows = corrupt(*copy.deepcopy(small_export))
    path = write(tmp_path / "bad.jsonl", header, rows)
    with TraceStore(str(tmp_path / "target.duckdb")) as target:
        before = counts(target)
        with pytest.raises(InputError) as err:
            import_files(target, [str(path)])
        assert needle in str(err.value)
        assert "\n" not in str(err.value)
        assert counts(target) == before
        version = target.query("SELECT value FROM wb_meta WHERE key = 'schema_version'")
        assert version == [(str(SCHEMA_VERSION),)]


@pytest.mark.parametrize(("content", "needle"), [
    (b"hello, not json\n", "not a workbench trace file"),
    (b"", "not a workbench trace file"),
    (b"[1, 2, 3]\n", "not a workbench trace file"),
    (b"\xff\xfe\x00garbage\n", "not a workbench trace file"),
    (b"PAR1\x00\x00binary", "not a workbench trace file"),
    (b'{"format": "workbench-trace", "version": 1, "runs": []}\n{not json\n', "not valid JSON"),
])
def test_not_a_trace_file(content: bytes, needle: str, tmp_path: Path, store: TraceStore) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    before = counts(store)
    with pytest.raises(InputError, match=needle):
        import_files(store, [str(path)])
    assert counts(store) == before
    with pytest.raises(InputError, match="cannot read"):
        import_files(store, [str(tmp_path / "missing.jsonl")])


def test_bad_line_after_good_ones_writes_nothing(small_export: Any, tmp_path: Path, store: TraceStore) -> None:
    header, rows = copy.deepcopy(small_export)
    good = write(tmp_path / "good.jsonl", header, rows)
    bad = write(tmp_path / "bad.jsonl", header, [*rows, {"table": "nope", "row": {}}])
    before = counts(store)
    with pytest.raises(InputError):
        import_files(store, [str(bad)])
    # Several files: one bad one and nothing is imported from any.
    with pytest.raises(InputError):
        import_files(store, [str(good), str(bad)])
    assert counts(store) == before
    assert import_files(store, [str(good)])["imported"] == header["runs"]


def test_injection_and_pickle_payloads_are_stored_as_plain_data(small_export: Any, tmp_path: Path,
                                                                store: TraceStore) -> None:
    header, rows = copy.deepcopy(small_export)
    marker = tmp_path / "pwned"
    injection = f"x'); DROP TABLE wb_runs; COPY (SELECT 1) TO '{marker}'; --"
    pickle_like = {"py/object": "os.system", "__reduce__": ["os.system", [f"touch {marker}"]],
                   "b64": "gASVIAAAAAAAAACMAm9zlIwGc3lzdGVtlJOUjAVlY2hvIJSFlFKULg=="}
    first(rows, "runs")["row"]["graph"] = injection
    first(rows, "runs")["row"]["error"] = "'; DELETE FROM wb_tasks; --"
    first(rows, "steps")["row"]["node"] = injection
    first(rows, "steps")["row"]["update"] = pickle_like
    first(rows, "state_changes")["row"]["value"] = pickle_like
    first(rows, "runs")["row"]["input"] = {"__class__": "subprocess.Popen", "args": ["rm", "-rf", "/"]}
    path = write(tmp_path / "evil.jsonl", header, rows)
    rid = header["runs"][0]
    assert import_files(store, [str(path)]) == {"imported": [rid], "skipped": []}
    run = store.get_run(rid)
    assert run["graph"] == injection
    assert run["error"] == "'; DELETE FROM wb_tasks; --"
    assert run["input"] == {"__class__": "subprocess.Popen", "args": ["rm", "-rf", "/"]}
    tasks = store.tasks(rid)
    assert any(t["node"] == injection and t["update"] == pickle_like for t in tasks)
    assert len(tasks) == sum(1 for r in rows if r["table"] == "steps")
    changed = store.query("SELECT value FROM state_changes WHERE run_id = ?", [rid])
    assert any(json.loads(v) == pickle_like for (v,) in changed)
    assert store.query("SELECT count(*) FROM wb_runs") == [(1,)]
    assert not marker.exists()


# --------------------------------------------------------------------------- one run, several files (issue 7)


def _reference(small_export: Any, tmp_path: Path) -> tuple[str, dict[str, int], dict[str, Any]]:
    """The run id, the row counts and the final state of the small export imported alone."""
    header, rows = copy.deepcopy(small_export)
    path = write(tmp_path / "reference.jsonl", header, rows)
    rid = header["runs"][0]
    with TraceStore(str(tmp_path / "reference.duckdb")) as ref:
        import_files(ref, [str(path)])
        return rid, counts(ref), ref.state_at(rid, ref.last_step(rid))


def test_a_run_in_two_files_is_imported_once(small_export: Any, tmp_path: Path, store: TraceStore) -> None:
    rid, ref_counts, ref_state = _reference(small_export, tmp_path)
    assert ref_state["log"] == ["priced", "stats", "confirmed"]
    header, rows = copy.deepcopy(small_export)
    a = write(tmp_path / "a.jsonl", header, rows)
    b = write(tmp_path / "b.jsonl", header, list(reversed(rows)))  # the same rows, in another order
    assert import_files(store, [str(a), str(b)]) == {"imported": [rid], "skipped": []}
    assert counts(store) == ref_counts
    assert store.state_at(rid, store.last_step(rid)) == ref_state
    # Again: skipped once, not imported.
    assert import_files(store, [str(b), str(a), str(b)]) == {"imported": [], "skipped": [rid]}
    assert counts(store) == ref_counts


def test_a_run_listed_twice_with_duplicate_rows_is_imported_once(small_export: Any, tmp_path: Path,
                                                                 store: TraceStore) -> None:
    rid, ref_counts, ref_state = _reference(small_export, tmp_path)
    header, rows = copy.deepcopy(small_export)
    twice = write(tmp_path / "twice.jsonl", {**header, "runs": [rid, rid]}, rows + rows)
    assert import_files(store, [str(twice)]) == {"imported": [rid], "skipped": []}
    assert counts(store) == ref_counts
    assert store.state_at(rid, store.last_step(rid)) == ref_state


def test_two_versions_of_a_run_are_refused(small_export: Any, tmp_path: Path, store: TraceStore) -> None:
    header, rows = copy.deepcopy(small_export)
    rid = header["runs"][0]
    old = write(tmp_path / "old.jsonl", header, rows)
    changed = copy.deepcopy(rows)
    first(changed, "steps")["row"]["duration_ms"] = 12345.0
    new = write(tmp_path / "new.jsonl", header, changed)
    longer = write(tmp_path / "longer.jsonl", header, [*rows, {"table": "events", "row": {
        "run_id": rid, "step": 9, "kind": "note", "node": None, "detail": {"x": 1}, "created_at": 1}}])
    before = counts(store)
    for files in ([old, new], [old, longer], [longer, old]):
        with pytest.raises(InputError) as err:
            import_files(store, [str(f) for f in files])
        message = str(err.value)
        assert rid in message and str(files[0]) in message and str(files[1]) in message, message
        assert "\n" not in message
        assert counts(store) == before
    # Two different 'runs' rows for one run in a single file.
    head = copy.deepcopy(first(rows, "runs"))
    head["row"]["status"] = "failed"
    with pytest.raises(InputError, match="different 'runs' rows"):
        import_files(store, [str(write(tmp_path / "heads.jsonl", header, [*rows, head]))])
    assert counts(store) == before


# --------------------------------------------------------------------------- the CLI


TIMEOUT = 120


def wb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli; a real process where the environment needs one)."""
    return run_cli(*args, cwd=cwd, env=env, timeout=TIMEOUT)


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_error_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_cli_export_import_replay_in_a_fresh_store(recorded: dict[str, Any], project: Path,
                                                   tmp_path: Path) -> None:
    ids = recorded["ids"]
    out = tmp_path / "prod.jsonl"
    res = wb("export", ids["grand"], ids["waited"], "--to", str(out), "--db", recorded["db"], cwd=project)
    assert res.returncode == 0, res.stderr
    assert ids["done"] in res.stdout and "4 run(s)" in res.stdout
    laptop = str(tmp_path / "laptop.duckdb")
    res = wb("import", str(out), "--db", laptop, "--json", cwd=project)
    assert res.returncode == 0, res.stderr
    assert sorted(json.loads(res.stdout)["imported"]) == sorted(ids.values())
    with TraceStore(laptop) as store:
        for name, rid in ids.items():
            assert playback(store, rid) == recorded["playback"][name]
    res = wb("replay", ids["grand"], "--db", laptop, "--json", cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["identical"] is True
    # Again: skipped, nothing changes.
    before = sha(laptop)
    res = wb("import", str(out), "--db", laptop, cwd=project)
    assert res.returncode == 0 and "imported 0 run(s)" in res.stdout and "4 already present" in res.stdout
    assert sha(laptop) == before


def test_cli_import_of_one_run_in_two_files(small_export: Any, project: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    header, rows = copy.deepcopy(small_export)
    rid = header["runs"][0]
    a, b = write(tmp_path / "a.jsonl", header, rows), write(tmp_path / "b.jsonl", header, rows)
    db = str(tmp_path / "laptop.duckdb")
    assert main(["import", str(a), str(b), "--db", db]) == 0
    assert capsys.readouterr().out.strip() == f"imported 1 run(s): {rid}"
    assert main(["import", str(a), str(b), "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"imported": [], "skipped": [rid]}


@pytest.mark.parametrize(("content", "needle"), [
    ("this is not json\n", "not a workbench trace file"),
    ('{"format": "workbench-trace", "version": 99, "runs": []}\n', "version 99"),
    ('{"format": "workbench-trace", "version": 1, "runs": ["r1"]}\n{"table": "users", "row": {"run_id": "r1"}}\n',
     "unknown table 'users'"),
])
def test_cli_import_refuses_hostile_files(content: str, needle: str, recorded: dict[str, Any], project: Path,
                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    before = sha(recorded["db"])
    line = one_error_line(wb("import", str(bad), "--db", recorded["db"], cwd=project))
    assert needle in line and "bad.jsonl" in line
    assert sha(recorded["db"]) == before


def test_cli_export_unknown_run(recorded: dict[str, Any], project: Path, tmp_path: Path) -> None:
    line = one_error_line(wb("export", "nope", "--to", str(tmp_path / "x.jsonl"), "--db", recorded["db"],
                             cwd=project))
    assert "nope" in line
    assert not (tmp_path / "x.jsonl").exists()


def test_an_imported_run_can_be_forked_and_resumed(recorded: dict[str, Any], tmp_path: Path) -> None:
    ids = recorded["ids"]
    out = tmp_path / "tech.jsonl"
    with TraceStore(recorded["db"]) as store:
        export_runs(store, [ids["done"]], str(out))
    with TraceStore(str(tmp_path / "laptop.duckdb")) as laptop:
        import_files(laptop, [str(out)])
        runner = Runner(recorded["graph"], laptop)
        fork = runner.fork(ids["done"], 3, set_state={"category": "escalation"})
        assert fork.status == "waiting"
        done = runner.resume(fork.run_id, {"reply": "A human answer."})
        assert done.status == "completed" and done.state["reply"] == "A human answer."
        assert RunHistory(laptop, fork.run_id).step(2).owner == ids["done"]


def test_two_imports_of_one_file_at_once_import_it_once(recorded: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Four ``workbench import`` of one file at once: the losers failed with the database's
    "Duplicate key ... violates primary key constraint". Another import landing between this
    one's look at the store and its insert now makes those runs skipped, as any run already
    in the store is."""
    from workbench import transfer

    ids = recorded["ids"]
    out = tmp_path / "done.jsonl"
    with TraceStore(recorded["db"]) as store:
        export_runs(store, [ids["done"]], str(out))
    real_plan = transfer._plan_import
    other: list[dict[str, list[str]]] = []

    def meanwhile(versions: Any, existing: set[str]) -> Any:
        planned = real_plan(versions, existing)
        if not other:  # the other process's import lands now, once
            other.append({})
            other[0] = import_files(fresh, [str(out)])
        return planned

    monkeypatch.setattr(transfer, "_plan_import", meanwhile)
    with TraceStore(str(tmp_path / "fresh.duckdb")) as fresh:
        mine = import_files(fresh, [str(out)])
        assert other == [{"imported": [ids["done"]], "skipped": []}]
        assert mine == {"imported": [], "skipped": [ids["done"]]}
        assert fresh.query("SELECT count(*) FROM wb_runs") == [(1,)]
        assert playback(fresh, ids["done"]) == recorded["playback"]["done"]


class SlowState(TypedDict):
    log: Annotated[list[str], append]


def test_a_run_exported_while_recorded_imports_as_interrupted(tmp_path: Path) -> None:
    """A run exported while its process was still recording it imported as ``running`` with no
    owner: shown running for ever in the other store. It imports interrupted (resumable from its
    last committed step), and ``export`` says the run was unfinished."""
    import threading

    from workbench import END, START, Graph
    from workbench.store.reader import shown_status

    g = Graph("slowly", SlowState)
    reached, release = threading.Event(), threading.Event()

    @g.node
    def first(state: SlowState) -> dict[str, Any]:
        return {"log": ["first"]}

    @g.node
    def held(state: SlowState) -> dict[str, Any]:
        reached.set()
        release.wait(timeout=60)
        return {"log": ["held"]}

    g.sequence(START, "first", "held", END)
    db, out = str(tmp_path / "src.duckdb"), tmp_path / "live.jsonl"
    with TraceStore(db) as store:
        worker = threading.Thread(target=lambda: Runner(g, store).run({}))
        worker.start()
        try:
            assert reached.wait(timeout=60)
            [run] = store.list_runs()
            res = run_cli("export", run["run_id"], "--to", str(out), "--db", db, cwd=tmp_path)
        finally:
            release.set()
            worker.join(timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"note: {run['run_id']} is still being recorded" in res.stderr
    with TraceStore(str(tmp_path / "other.duckdb")) as other:
        assert import_files(other, [str(out)])["imported"] == [run["run_id"]]
        copy = other.get_run(run["run_id"])
        assert shown_status(copy) == "interrupted" and copy["error"].startswith("interrupted: exported while")
        assert other.last_committed_step(run["run_id"]) == 1

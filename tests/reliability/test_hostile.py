"""The hostile-input matrix (issue 7): what a careless or malicious user can hand the CLI.

Every case asserts the same contract (docs/cli.md): exit 2 for a refusal (0 where the input is
harmless), exactly one clean line on stderr and no traceback, nothing created where it should
not be, and the trace store's bytes unchanged. Most cases call ``workbench.cli.main`` in-process
(fast); graph files that call ``sys.exit`` or recurse at import run in real subprocesses, since
what the process does is the point there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import cli_env, make_project, one_clean_line, sha, stderr_lines, wb

from workbench.cli import main

SINK_GRAPH = textwrap.dedent('''
    """Takes anything: a typed state with an untyped key, and an optional question."""

    from __future__ import annotations

    from typing import Annotated, Any, TypedDict

    from workbench import END, START, Graph, append, interrupt


    class Sink(TypedDict):
        name: str
        n: int
        data: Any
        items: Annotated[list, append]
        answer: Any


    graph = Graph("sink", Sink)


    @graph.node
    def take(state: Sink) -> dict[str, Any]:
        return {"n": state["n"] + 1}


    @graph.node
    def ask(state: Sink) -> dict[str, Any] | None:
        if state["name"] == "ask":
            return {"answer": interrupt({"question": "anything?"})}
        return None


    graph.sequence(START, "take", "ask", END)
''')


@pytest.fixture(autouse=True)
def _no_litellm_prewarm(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` imports litellm in a background thread; in-process, that is only a slowdown."""
    import workbench.cli as cli

    monkeypatch.setattr(cli, "_prewarm_litellm", lambda: None)


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the working directory) with the ``sink`` and ``ledger`` graphs."""
    p = make_project(tmp_path / "proj")
    (p / "graphs" / "sink.py").write_text(SINK_GRAPH)
    monkeypatch.chdir(p)
    return p


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The command exits 2 with one clean stderr line; returns the line."""
    code, out, err = cli(capsys, *argv)
    assert code == 2, (argv[:3], code, out[-500:], err[-500:])
    line = one_clean_line(err, out)
    assert line.startswith("workbench: error:"), line
    return line


def clean_success(code: int, out: str, err: str) -> None:
    assert code == 0, (code, err[-500:])
    assert "Traceback" not in out + err
    assert not stderr_lines(err), err


# =========================================================================== --input and friends

DEEP = 600


def _nest(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


BAD_INPUTS: dict[str, tuple[str, str]] = {
    "malformed": ("{bad", "not valid JSON"),
    "truncated": ('{"name": "x"', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "bom": ("\ufeff{}", "not valid JSON"),
    "surrogate-escape": ('{"name": "a\\ud800b"}', "surrogate"),
    "surrogate-raw": ('{"name": "a\ud800b"}', "surrogate"),
    "surrogate-in-key": ('{"data": {"k\\udfffk": 1}}', "surrogate"),
    "nested-600": ('{"data": ' + _nest(DEEP) + "}", "nested"),
    "nested-600-items": ('{"items": ' + _nest(DEEP) + "}", "nested"),
    "nested-100000": ('{"data": ' + _nest(100_000) + "}", "nested"),
    "nan": ('{"data": NaN}', "nan"),
    "infinity": ('{"data": [1, Infinity]}', "inf"),
    "nan-for-int": ('{"n": NaN}', "'n' expects int"),
    "array": ("[1, 2]", "JSON object"),
    "string": ('"hello"', "JSON object"),
    "null": ("null", "JSON object"),
    "number": ("42", "JSON object"),
    "str-for-int": ('{"n": "x"}', "'n' expects int"),
    "bool-for-int": ('{"n": true}', "'n' expects int"),
    "float-for-int": ('{"n": 1.5}', "'n' expects int"),
    "int-for-str": ('{"name": 5}', "'name' expects str"),
    "unknown-key": ('{"nope": 1}', "unknown state key 'nope'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_run_refuses_bad_input_before_creating_a_store(proj: Path, capsys: pytest.CaptureFixture[str],
                                                        case: str) -> None:
    text, needle = BAD_INPUTS[case]
    db = proj / "store" / "t.duckdb"
    line = refused(capsys, "run", "sink", "--input", text, "--db", str(db))
    assert needle.lower() in line.lower(), line
    assert not db.exists() and not db.parent.exists(), "a refused input created the store"


def test_run_input_file_that_is_not_utf8(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = proj / "store" / "t.duckdb"
    bad = proj / "bad.json"
    bad.write_bytes(b'{"name": "caf\xe9"}')  # Latin-1, not UTF-8
    assert "utf-8" in refused(capsys, "run", "sink", "--input", f"@{bad}", "--db", str(db)).lower()
    assert not db.exists()


def test_run_input_from_missing_files_and_stdin(proj: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = proj / "store" / "t.duckdb"
    assert "cannot read" in refused(capsys, "run", "sink", "--input", f"@{proj}/missing.json", "--db", str(db))
    assert "cannot read" in refused(capsys, "run", "sink", "--input", f"@{proj}", "--db", str(db))
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"data": ' + _nest(DEEP) + "}"))
    assert "nested" in refused(capsys, "run", "sink", "--input", "-", "--db", str(db))
    assert not db.exists()


def test_run_huge_input_from_a_file(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """40 MB of input (under the 64 MB a value may take): recorded and read back whole."""
    db = proj / "store" / "t.duckdb"
    big = proj / "big.json"
    payload = "x" * (40 * 1024 * 1024)
    big.write_text(json.dumps({"data": payload, "name": "big"}))
    code, out, err = cli(capsys, "run", "sink", "--input", f"@{big}", "--db", str(db), "--json")
    clean_success(code, out, err)
    result = json.loads(out)
    assert result["status"] == "completed" and len(result["state"]["data"]) == len(payload)
    code, out, err = cli(capsys, "sql", "SELECT length(state ->> 'data') AS n FROM runs r, state_at(r.run_id, 2)",
                         "--db", str(db), "--format", "json")
    clean_success(code, out, err)
    assert json.loads(out) == [{"n": len(payload)}]


def test_input_over_the_value_limit_is_refused_in_one_line(proj: Path) -> None:
    """A value over WORKBENCH_MAX_VALUE_MB: refused before anything is recorded."""
    db = proj / "store" / "t.duckdb"
    big = proj / "big.json"
    big.write_text(json.dumps({"data": "y" * (3 * 1024 * 1024)}))
    res = wb("run", "sink", "--input", f"@{big}", "--db", str(db), cwd=proj, env=cli_env(WORKBENCH_MAX_VALUE_MB="2"))
    assert res.returncode == 2, res.stderr
    line = one_clean_line(res.stderr, res.stdout)
    assert "MB" in line and "data" in line, line
    assert not db.exists()


@contextlib.contextmanager
def _module_cli_in(path: Path) -> Iterator[Any]:
    """Run ``main`` from a module fixture (no capsys or monkeypatch there): in ``path``, without
    the litellm pre-warm, yielding a function that returns a command's exit code and stdout."""
    import workbench.cli as cli_module

    def run(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        assert "Traceback" not in out.getvalue() + err.getvalue(), err.getvalue()
        return code, out.getvalue()

    cwd, prewarm = os.getcwd(), cli_module._prewarm_litellm
    os.chdir(path)
    cli_module._prewarm_litellm = lambda: None  # type: ignore[assignment]
    try:
        yield run
    finally:
        cli_module._prewarm_litellm = prewarm  # type: ignore[assignment]
        os.chdir(cwd)


def _copy_store_dir(template: Path, dest: Path) -> Path:
    """A private copy of a template's store directory (the store, its WAL and spool, lock files
    included): each test gets the bytes the commands left, without running them again."""
    shutil.copytree(template, dest)
    return dest


def _ledger_template(tmp_path_factory: pytest.TempPathFactory, label: str, *then: str) -> Path:
    """The directory of a store holding one ledger run (for a module fixture to build once);
    ``then``: commands run on the store after it, each of which must succeed."""
    root = tmp_path_factory.mktemp(label)
    proj = make_project(root / "proj")
    db = root / "store" / "t.duckdb"
    with _module_cli_in(proj) as run:
        assert run("run", "ledger", "--db", str(db), "--json")[0] == 0
        for command in then:
            assert run(command, "--db", str(db))[0] == 0
    return db.parent


@pytest.fixture(scope="module")
def _waiting_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Built once per module: a store holding a completed ``sink`` run and one waiting."""
    proj = make_project(tmp_path_factory.mktemp("waiting") / "proj")
    (proj / "graphs" / "sink.py").write_text(SINK_GRAPH)
    db = proj / "store" / "t.duckdb"
    with _module_cli_in(proj) as run:
        assert run("run", "sink", "--input", '{"name": "done"}', "--db", str(db), "--json")[0] == 0
        code, out = run("run", "sink", "--input", '{"name": "ask"}', "--db", str(db), "--json")
        assert code == 3
        run_id = json.loads(out)["run_id"]
    from workbench.store import TraceStore

    with TraceStore(str(db)) as store:  # the waiting run is the one "resume last" answers
        assert store.resolve_run_id("last") == run_id and store.get_run(run_id)["status"] == "waiting"
    return db.parent, run_id


@pytest.fixture
def waiting(proj: Path, _waiting_template: tuple[Path, str]) -> tuple[Path, str]:
    """A store holding a run waiting for an answer (and a completed one to fork): a copy of the
    module's template, in this test's project directory."""
    template, run_id = _waiting_template
    return _copy_store_dir(template, proj / "store") / "t.duckdb", run_id


BAD_ANSWERS = {
    "malformed": "{nope",
    "surrogate": '"a\\ud800"',
    "nested-600": _nest(DEEP),
    "nested-100000": _nest(100_000),
    "nan": "NaN",
    "infinity": '{"x": -Infinity}',
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_resume_refuses_a_bad_answer_and_the_run_still_waits(waiting: tuple[Path, str],
                                                             capsys: pytest.CaptureFixture[str], case: str) -> None:
    db, run_id = waiting
    before = sha(db)
    refused(capsys, "resume", run_id, "--input", BAD_ANSWERS[case], "--db", str(db))
    assert sha(db) == before
    code, out, err = cli(capsys, "runs", "--db", str(db), "--json")
    clean_success(code, out, err)
    assert {r["run_id"]: r["status"] for r in json.loads(out)}[run_id] == "waiting"


BAD_SETS = {
    "nan": ["--set", "data=NaN"],
    "surrogate": ["--set", 'name="\\udc80"'],
    "nested-600": ["--set", "data=" + _nest(DEEP)],
    "wrong-type": ["--set", 'n="x"'],
    "unknown-key": ["--set", "nope=1"],
    "no-equals": ["--set", "data"],
    "malformed": ["--set", "data={"],
}


@pytest.mark.parametrize("case", BAD_SETS)
def test_fork_refuses_bad_edits(waiting: tuple[Path, str], capsys: pytest.CaptureFixture[str], case: str) -> None:
    db, _ = waiting
    out = cli(capsys, "runs", "--db", str(db), "--json")[1]
    done = next(r["run_id"] for r in json.loads(out) if r["status"] == "completed")
    before = sha(db)
    refused(capsys, "fork", done, "--at", "1", *BAD_SETS[case], "--db", str(db))
    assert sha(db) == before
    out = cli(capsys, "runs", "--db", str(db), "--json")[1]
    assert len(json.loads(out)) == 2, "a refused fork recorded a run"


# =========================================================================== graph files

GRAPH_FILES = {
    "syntax-error": ("def broken(:\n    pass\n", "syntax error"),
    "import-error": ("import workbench_no_such_module_xyz\n", "workbench_no_such_module_xyz"),
    "sys-exit-3": ("import sys\nsys.exit(3)\n", "exit"),
    "sys-exit-0": ("import sys\nsys.exit(0)\n", "exit"),
    "raise-systemexit-text": ("raise SystemExit('bye from the graph')\n", "exit"),
    "infinite-recursion": ("def f():\n    return f()\n\n\nf()\n", "RecursionError"),
    "no-graph": ("x = 1\n", "defines no workbench Graph"),
    "not-a-graph-named-graph": ("graph = 'not a graph'\n", "Graph"),
}


@pytest.mark.parametrize("case", list(GRAPH_FILES))
@pytest.mark.parametrize("command", ["run", "graph"])
def test_hostile_graph_files(tmp_path: Path, case: str, command: str) -> None:
    """Real subprocesses: a graph file's sys.exit must not become the CLI's exit code (3 means
    "waiting", 0 "completed")."""
    text, needle = GRAPH_FILES[case]
    path = tmp_path / f"{case.replace('-', '_')}.py"
    path.write_text(text)
    db = tmp_path / "store" / "t.duckdb"
    args = [command, str(path)] + (["--db", str(db)] if command == "run" else [])
    res = wb(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stdout[-300:], res.stderr[-300:])
    line = one_clean_line(res.stderr, res.stdout)
    assert needle.lower() in line.lower(), line
    assert path.name in line, line
    assert not db.exists()


def test_hostile_graph_files_in_the_graphs_directory_are_listed_not_fatal(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj")
    for case, (text, _) in GRAPH_FILES.items():
        (proj / "graphs" / f"{case.replace('-', '_')}.py").write_text(text)
    res = wb("graphs", "--json", cwd=proj)
    assert res.returncode == 0, (res.returncode, res.stderr[-500:])
    assert "Traceback" not in res.stderr
    rows = json.loads(res.stdout)
    assert any(r.get("graph") == "ledger" for r in rows)
    broken = {Path(r["file"]).stem for r in rows if r.get("error")}
    # Files that define no graph are not graphs to list; every other one is listed with its error.
    expected = {c.replace("-", "_") for c in GRAPH_FILES} - {"no_graph", "not_a_graph_named_graph"}
    assert broken == expected, rows


@pytest.mark.parametrize("case", ["syntax-error", "infinite-recursion", "import-error",
                                  "sys-exit-3"])
def test_resume_when_the_graph_file_broke_since(tmp_path: Path, _waiting_template: tuple[Path, str],
                                                case: str) -> None:
    """The run waits; its graph file breaks; answering it is refused and the run still waits.
    (The waiting run is the module's template; the resume, whose process is the point, is real.)"""
    proj = make_project(tmp_path / "proj")
    (proj / "graphs" / "sink.py").write_text(SINK_GRAPH)
    db = _copy_store_dir(_waiting_template[0], tmp_path / "store") / "t.duckdb"  # its last run waits
    before = sha(db)
    (proj / "graphs" / "sink.py").write_text(GRAPH_FILES[case][0])
    res = wb("resume", "last", "--input", '"x"', "--db", str(db), cwd=proj)
    assert res.returncode == 2, (case, res.returncode, res.stderr[-300:])
    one_clean_line(res.stderr, res.stdout)
    assert sha(db) == before


# =========================================================================== import files


@pytest.fixture(scope="module")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], str]:
    """The lines of an exported ledger run (with a fan-out), as JSON objects, and its run id."""
    root = tmp_path_factory.mktemp("export")
    proj = make_project(root / "proj", steps=6)
    db = root / "src.duckdb"
    res = wb("run", "ledger", "--db", str(db), "--json", cwd=proj)
    run_id = json.loads(res.stdout)["run_id"]
    out = root / "good.jsonl"
    assert wb("export", run_id, "--to", str(out), "--db", str(db), cwd=proj).returncode == 0
    return [json.loads(line) for line in out.read_text().splitlines()], run_id


@pytest.fixture(scope="module")
def _target_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module: the directory of a store holding one ledger run."""
    return _ledger_template(tmp_path_factory, "target")


@pytest.fixture
def target(tmp_path: Path, _target_template: Path) -> Path:
    """An existing store (one run of its own) to import into: this test's copy of the template."""
    return _copy_store_dir(_target_template, tmp_path / "target") / "t.duckdb"


def _write(path: Path, lines: list[Any], raw: bytes | None = None) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            # ensure_ascii: a lone surrogate travels as its JSON escape, as any JSON writer sends it
            fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    if raw is not None:
        with open(path, "ab") as fh:
            fh.write(raw)
    return path


def _mutate(lines: list[dict[str, Any]], table: str, change: Any, index: int = 0) -> list[Any]:
    out = json.loads(json.dumps(lines))
    hits = [item for item in out[1:] if item["table"] == table]
    change(hits[index])
    return out


def _header(lines: list[Any], **fields: Any) -> list[Any]:
    out = json.loads(json.dumps(lines))
    out[0].update(fields)
    return out


def _fork_cycle(lines: list[dict[str, Any]]) -> list[Any]:
    """Two runs, each the other's parent."""
    rid = lines[0]["runs"][0]
    a, b = rid, rid[:-1] + ("0" if rid[-1] != "0" else "1")
    out = json.loads(json.dumps(lines))
    copy = [json.loads(json.dumps(item)) for item in out[1:]]
    for item in copy:
        item["row"]["run_id"] = b
    out[0]["runs"] = [a, b]
    out += copy
    for item in out[1:]:
        if item["table"] == "runs":
            item["row"]["parent_run_id"] = b if item["row"]["run_id"] == a else a
            item["row"]["fork_step"] = 1
    return out


def _self_parent(lines: list[dict[str, Any]]) -> list[Any]:
    rid = lines[0]["runs"][0]
    return _mutate(lines, "runs", lambda it: it["row"].update(parent_run_id=rid, fork_step=1))


def _renamed(new_id: str, **run_fields: Any) -> Any:
    """The file with its run's id changed everywhere (and its runs row's ``run_fields`` set)."""
    def build(lines: list[dict[str, Any]]) -> list[Any]:
        out = json.loads(json.dumps(lines))
        out[0]["runs"] = [new_id]
        for item in out[1:]:
            item["row"]["run_id"] = new_id
            if item["table"] == "runs":
                item["row"].update(run_fields)
        return out
    return build


def _set(table: str, **values: Any) -> Any:
    return lambda lines: _mutate(lines, table, lambda it: it["row"].update(values))


def _also(table: str, **values: Any) -> Any:
    """The file plus a second, different copy of the table's first row."""

    def build(lines: list[dict[str, Any]]) -> list[Any]:
        extra = json.loads(json.dumps(next(item for item in lines[1:] if item["table"] == table)))
        extra["row"].update(values)
        return [*lines, extra]

    return build


INJECTION = "x'); DROP TABLE wb_runs; --"

BAD_IMPORTS: dict[str, Any] = {
    # the header
    "header-not-json": lambda lines: ["this is not json", *lines[1:]],
    "header-not-object": lambda lines: [[1, 2], *lines[1:]],
    "header-wrong-format": lambda lines: _header(lines, format="sqlite"),
    "header-wrong-version": lambda lines: _header(lines, version=99),
    "header-version-as-string": lambda lines: _header(lines, version="1"),
    "header-runs-not-list": lambda lines: _header(lines, runs="all"),
    "header-runs-not-strings": lambda lines: _header(lines, runs=[1, 2]),
    "header-lists-unknown-run": lambda lines: _header(lines, runs=[*lines[0]["runs"], "nosuchrun"]),
    "empty-file": lambda lines: [],
    # lines
    "line-not-json": lambda lines: [*lines, "{not json"],
    "line-not-object": lambda lines: [*lines, [1, 2, 3]],
    "line-extra-key": lambda lines: [*lines, {"table": "runs", "row": {}, "sql": "DROP TABLE wb_runs"}],
    "row-not-object": lambda lines: [*lines, {"table": "steps", "row": "DROP TABLE wb_runs"}],
    "unknown-table": lambda lines: [*lines, {"table": "wb_meta", "row": {"key": "schema_version", "value": "9"}}],
    "injected-table-name": lambda lines: [*lines, {"table": "runs; DROP TABLE wb_runs; --", "row": {}}],
    "injected-column-name": lambda lines: _mutate(
        lines, "steps", lambda it: it["row"].update({'"update") VALUES (1); DROP TABLE wb_runs; --': 1})),
    "row-of-unlisted-run": lambda lines: _mutate(lines, "steps", lambda it: it["row"].update(run_id="other")),
    "invalid-utf8": lambda lines: lines,  # raw bytes appended below
    # types
    "step-as-string": _set("steps", step="1"),
    "step-as-bool": _set("steps", step=True),
    "step-as-float": _set("steps", step=1.5),
    "step-out-of-range": _set("steps", step=2**40),
    "timestamp-as-string": _set("runs", started_at="2026-01-01"),
    "timestamp-negative": _set("runs", started_at=-1),
    "timestamp-year-10000": _set("runs", started_at=253_402_300_800_000_000),
    "run-id-as-number": _set("runs", run_id=12345),
    "duration-as-string": _set("steps", duration_ms="fast"),
    "null-in-not-null": _set("steps", node=None),
    "attempt-huge": _set("steps", attempt=2**31),
    "nan-in-json-column": _set("steps", update=float("nan")),
    "surrogate-in-varchar": _set("runs", graph="a\ud800b"),
    "surrogate-in-json": _set("steps", update={"k": "\udc00"}),
    "nested-100000-json": lambda lines: [*lines[:-1], '{"table": "steps", "row": {"update": ' + _nest(100_000) + "}}"],
    # identity
    "two-runs-rows-differ": _also("runs", status="failed"),
    "fork-cycle": _fork_cycle,
    "self-parent": _self_parent,
    "parent-missing": _set("runs", parent_run_id="nosuchparent", fork_step=1),
    "duplicate-key-rows-differ": _also("state_changes", value=["changed"]),
    # statuses workbench never writes, and a file that contradicts itself
    "run-status-unknown": _set("runs", status="pwned"),
    "task-status-unknown": _set("steps", status="pwned"),
    "two-rows-for-one-attempt": _also("steps", status="failed"),
    # run ids a user's run cannot have (printed everywhere; '/' names subgraph runs; 'last')
    "run-id-last": _renamed("last"),
    "run-id-blank": _renamed(" "),
    "run-id-terminal-codes": _renamed("x\x1b]0;PWNED\x07\x1b[2J"),
    "run-id-with-slash": _renamed("abc/3.0.0"),
    "subgraph-run-without-its-root": _renamed("abc/3.0.0", root_run_id="abc", caller_run_id="abc", caller_step=3,
                                              caller_task=0, path="review"),
}
RAW_TAILS = {"invalid-utf8": b'{"table": "steps", "row": {"node": "\xff\xfe"}}\n'}


@pytest.mark.parametrize("case", BAD_IMPORTS)
def test_import_refuses_malformed_files_and_changes_nothing(export_file: tuple[list[dict[str, Any]], str],
                                                             target: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str], case: str) -> None:
    lines, _ = export_file
    path = _write(tmp_path / f"{case}.jsonl", BAD_IMPORTS[case](lines), RAW_TAILS.get(case))
    before, listing = sha(target), _dir_listing(target.parent)
    refused(capsys, "import", str(path), "--db", str(target))
    assert sha(target) == before
    assert _dir_listing(target.parent) == listing


def test_import_never_adds_history_to_a_run_already_in_the_store(export_file: tuple[list[dict[str, Any]], str],
                                                                  target: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A file holding a 'subgraph run' of a run the store already has (with a question of its
    own) is refused: it would show as that run's history and take the answer meant for it."""
    code, out, _ = cli(capsys, "runs", "--db", str(target), "--json")
    assert code == 0
    victim = json.loads(out)[0]["run_id"]
    lines, _ = export_file
    forged = _renamed(f"{victim}/3.0.0", root_run_id=victim, caller_run_id=victim, caller_step=3, caller_task=0,
                      path="handoff")(lines)
    path = _write(tmp_path / "forged.jsonl", forged)
    before = sha(target)
    message = refused(capsys, "import", str(path), "--db", str(target))
    assert f"subgraph run of {victim!r}" in message and "nothing was imported" in message
    assert sha(target) == before


def test_import_refuses_an_oversized_line(export_file: tuple[list[dict[str, Any]], str], target: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.transfer import MAX_LINE_BYTES

    lines, _ = export_file
    path = _write(tmp_path / "huge.jsonl", lines)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"table": "steps", "row": {"error": "')
        chunk = "z" * (1024 * 1024)
        for _ in range(MAX_LINE_BYTES // len(chunk) + 1):
            fh.write(chunk)
        fh.write('"}}\n')
    before = sha(target)
    assert "longer than" in refused(capsys, "import", str(path), "--db", str(target))
    assert sha(target) == before


def test_import_harmless_injection_text_is_stored_as_data(export_file: tuple[list[dict[str, Any]], str],
                                                          target: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """SQL in values is just text: imported verbatim, every table still there."""
    lines, run_id = export_file
    path = _write(tmp_path / "inj.jsonl", _set("runs", graph=INJECTION, error=INJECTION)(lines))
    code, out, err = cli(capsys, "import", str(path), "--db", str(target), "--json")
    clean_success(code, out, err)
    assert json.loads(out) == {"imported": [run_id], "skipped": []}
    code, out, err = cli(capsys, "sql", f"SELECT graph, error FROM runs WHERE run_id = '{run_id}'", "--db",
                         str(target), "--format", "json")
    clean_success(code, out, err)
    assert json.loads(out) == [{"graph": INJECTION, "error": INJECTION}]
    code, out, err = cli(capsys, "runs", "--db", str(target), "--json")
    assert len(json.loads(out)) == 2


def test_import_duplicate_runs_across_and_within_files(export_file: tuple[list[dict[str, Any]], str],
                                                       target: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A run in two files, listed twice in one header, its rows repeated: imported exactly once."""
    lines, run_id = export_file
    a = _write(tmp_path / "a.jsonl", lines)
    b = _write(tmp_path / "b.jsonl", lines)
    doubled = json.loads(json.dumps(lines))
    doubled[0]["runs"] = [run_id, run_id]
    c = _write(tmp_path / "c.jsonl", doubled + lines[1:])
    code, out, err = cli(capsys, "import", str(a), str(b), str(c), "--db", str(target), "--json")
    clean_success(code, out, err)
    assert json.loads(out) == {"imported": [run_id], "skipped": []}
    code, out, err = cli(capsys, "sql", f"SELECT count(*) AS n FROM steps WHERE run_id = '{run_id}'",
                         "--db", str(target), "--format", "json")
    tasks = sum(1 for x in lines[1:] if x["table"] == "steps")
    assert json.loads(out) == [{"n": tasks}]
    before = sha(target)
    code, out, err = cli(capsys, "import", str(c), "--db", str(target), "--json")
    clean_success(code, out, err)
    assert json.loads(out) == {"imported": [], "skipped": [run_id]}
    assert sha(target) == before


# =========================================================================== SQL that tries to write or execute


@pytest.fixture(scope="module")
def _sql_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module: the directory of a filled store that has been opened again (the
    spool's lock files exist from then on)."""
    return _ledger_template(tmp_path_factory, "sql", "runs")


@pytest.fixture
def sql_store(tmp_path: Path, _sql_template: Path) -> tuple[Path, Path]:
    """A filled store (this test's copy of the template), and an empty directory the
    statements aim their files at."""
    db = _copy_store_dir(_sql_template, tmp_path / "store") / "t.duckdb"
    aim = tmp_path / "aim"
    aim.mkdir()
    return db, aim


PWNED = "/tmp/x.sh"
HOSTILE_SQL: dict[str, str] = {
    "explain-paren-analyze-copy-literal": f"EXPLAIN (ANALYZE) COPY (SELECT 'echo pwned') TO '{PWNED}' (HEADER false)",
    "explain-paren-analyze-copy": "EXPLAIN (ANALYZE) COPY (SELECT 'echo pwned') TO '{aim}/x.sh' (HEADER false)",
    "comment-explain-analyze-copy": "/**/EXPLAIN ANALYZE COPY (SELECT 'echo pwned') TO '{aim}/x2.sh'",
    "explain-comment-analyze-copy": "EXPLAIN /* c */ ANALYZE COPY (SELECT 'echo pwned') TO '{aim}/x3.sh'",
    "explain-newline-analyse-copy": "EXPLAIN\n  analyse\tCOPY wb_runs TO '{aim}/x4.csv'",
    "explain-line-comment-analyze": "EXPLAIN -- hidden\nANALYZE COPY wb_runs TO '{aim}/x5.csv'",
    "explain-format-analyze-copy": "EXPLAIN (FORMAT json, ANALYZE) COPY wb_runs TO '{aim}/x6.csv'",
    "explain-analyze-install": "EXPLAIN (ANALYZE) INSTALL httpfs",
    # CALL enable_logging is not covered by lock_configuration: run, it aborted the process
    # (file storage) or printed DuckDB's log into the output (stdout storage).
    "explain-analyze-call-logging-file":
        "EXPLAIN (ANALYZE) CALL enable_logging(storage='file', storage_path='{aim}/l')",
    "explain-analyze-call-logging-stdout": "EXPLAIN (ANALYZE) CALL enable_logging(level='trace', storage='stdout')",
    "explain-spaced-analyze-select": "EXPLAIN ( FORMAT json , analyze ) SELECT 1",
    "explain-call": "EXPLAIN CALL enable_logging(storage='stdout')",
    "explain-comment-paren-analyze": "EXPLAIN /* x */ (ANALYZE) CALL enable_logging(storage='stdout')",
    # DuckDB nests comments: a check that ended the comment at the first */ ran this.
    "nested-comment-analyze-call": "EXPLAIN /* /* */ SELECT 1 AS \"*/ ANALYZE CALL enable_logging(storage="
                                   "'file', storage_path='{aim}/n') -- \"",
    # The same engine functions called as table functions parse as a SELECT.
    "select-from-enable-logging": "SELECT * FROM enable_logging(storage='file', storage_path='{aim}/s')",
    "from-quoted-enable-logging": "FROM \"Enable_Logging\"(level='trace', storage='stdout')",
    "from-main-enable-logging": "SELECT * FROM main.enable_logging(storage='stdout')",
    "from-truncate-logs": "FROM truncate_duckdb_logs()",
    "explain-analyze-delete": "EXPLAIN ANALYZE DELETE FROM wb_runs",
    "attach": "ATTACH '{aim}/other.duckdb' AS other",
    "attach-then-copy": "ATTACH '{aim}/o.duckdb' AS o; CREATE TABLE o.t AS SELECT * FROM wb_runs",
    "set-external-access": "SET enable_external_access=true",
    "set-lock-configuration": "SET lock_configuration=false; SET enable_external_access=true",
    "read-csv-passwd": "SELECT * FROM read_csv('/etc/passwd')",
    "read-text-passwd": "SELECT * FROM read_text('/etc/passwd')",
    "glob-etc": "SELECT * FROM glob('/etc/*')",
    "create-table": "CREATE TABLE evil (x INTEGER)",
    "create-temp-table": "CREATE TEMP TABLE evil AS SELECT 1",
    "create-macro": "CREATE MACRO state_at(a, b) AS TABLE SELECT 1",
    "delete": "DELETE FROM wb_runs",
    "update": "UPDATE wb_runs SET status = 'failed'",
    "drop": "DROP TABLE wb_tasks",
    "pragma": "PRAGMA force_checkpoint",
    "copy-to": "COPY wb_runs TO '{aim}/runs.csv'",
    "copy-from": "COPY wb_runs FROM '/etc/passwd'",
    "export-database": "EXPORT DATABASE '{aim}/dump'",
    "commit-then-delete": "SELECT 1; COMMIT; DELETE FROM wb_runs",
    "rollback-then-delete": "SELECT 1; ROLLBACK; BEGIN; DELETE FROM wb_runs; COMMIT",
    "load": "LOAD httpfs",
    "install": "INSTALL httpfs",
    "call": "CALL checkpoint()",
    "checkpoint": "CHECKPOINT",
    "vacuum": "VACUUM",
    "detach": "DETACH DATABASE t",
    "use": "USE system",
    "set-variable": "SET VARIABLE x = 1",
    "insert": "INSERT INTO wb_meta VALUES ('x', 'y')",
}
HARMLESS_SQL: dict[str, str] = {
    "select": "SELECT count(*) FROM runs",
    "with-select": "WITH s AS (SELECT * FROM steps) SELECT count(*) FROM s",
    "describe": "DESCRIBE runs",
    "summarize": "SUMMARIZE wb_runs",
    "explain": "EXPLAIN SELECT * FROM runs",
    "settings": "SELECT name, value FROM duckdb_settings() WHERE name = 'enable_external_access'",
    "state-at": "SELECT state FROM runs r, state_at(r.run_id, 1)",
    "pragma-database-list": "PRAGMA database_list",  # a table function in disguise: planned as a SELECT
    "string-looks-like-copy": "SELECT 'COPY wb_runs TO ''/tmp/x.sh''' AS s",
    "explain-dollar-quoted": "EXPLAIN SELECT $$--$$ AS x",
    "explain-format-string": "EXPLAIN (FORMAT 'json') SELECT (1)",
    "string-names-an-engine-function": "SELECT 'enable_logging' AS s",
}


def _dir_listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", list(HOSTILE_SQL))
def test_sql_that_writes_or_executes_is_refused(sql_store: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                                case: str) -> None:
    db, aim = sql_store
    pwned_before = os.path.exists(PWNED)
    before, listing = sha(db), _dir_listing(db.parent)
    code, out, err = cli(capsys, "sql", HOSTILE_SQL[case].format(aim=aim), "--db", str(db))
    assert code == 2, (code, out[-500:], err[-500:])
    one_clean_line(err, out)
    assert "root:" not in out
    assert _dir_listing(aim) == [], "a file was created"
    if not pwned_before:
        assert not os.path.exists(PWNED), f"{PWNED} was created"
    assert sha(db) == before
    assert _dir_listing(db.parent) == listing


@pytest.mark.parametrize("case", list(HARMLESS_SQL))
def test_harmless_sql_reads(sql_store: tuple[Path, Path], capsys: pytest.CaptureFixture[str], case: str) -> None:
    db, aim = sql_store
    before, listing = sha(db), _dir_listing(db.parent)
    code, out, err = cli(capsys, "sql", HARMLESS_SQL[case], "--db", str(db), "--format", "json")
    clean_success(code, out, err)
    json.loads(out)
    assert sha(db) == before
    assert _dir_listing(db.parent) == listing
    assert _dir_listing(aim) == []


def test_no_query_can_write_into_the_databases_spill_folder(sql_store: tuple[Path, Path],
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB lets queries write in its temp directory (``<store>.tmp/``, left behind by a killed
    process that spilled): a file could be written there past every other setting. Instances
    have no temp directory now, so the database refuses it even without the statement check."""
    from workbench.errors import InputError
    from workbench.store import TraceStore, reads

    db, _ = sql_store
    spill = Path(f"{db}.tmp")
    spill.mkdir()
    code, out, err = cli(capsys, "sql", "SELECT name, value FROM duckdb_settings() WHERE name IN "
                         "('temp_directory', 'allowed_directories') ORDER BY name", "--db", str(db), "--format", "json")
    clean_success(code, out, err)
    assert json.loads(out) == [{"name": "allowed_directories", "value": "[]"}, {"name": "temp_directory", "value": ""}]
    sql = f"EXPLAIN (ANALYZE) COPY (SELECT 'echo pwned') TO '{spill}/evil.sh' (HEADER false)"
    refused(capsys, "sql", sql, "--db", str(db))
    monkeypatch.setattr(reads, "refuse_writes", lambda sql, where="": [])
    with TraceStore(str(db)) as store:
        for text in (sql, f"COPY (SELECT 1) TO '{spill}/x.csv'"):
            with pytest.raises(InputError, match="file system operations are disabled"):
                store.query(text)
    assert _dir_listing(spill) == []


def test_sql_console_cannot_see_the_external_access_setting_changed(sql_store: tuple[Path, Path],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = sql_store
    code, out, err = cli(capsys, "sql", "SELECT current_setting('enable_external_access') AS v", "--db", str(db),
                         "--format", "json")
    clean_success(code, out, err)
    assert json.loads(out) == [{"v": False}]


def test_hostile_sql_in_a_real_process_leaves_no_file(sql_store: tuple[Path, Path]) -> None:
    """The same, end to end through the installed script, for the statements that would run a
    shell script if they got through."""
    db, aim = sql_store
    before = sha(db)
    for case in ("explain-paren-analyze-copy", "comment-explain-analyze-copy", "explain-comment-analyze-copy",
                 "explain-analyze-call-logging-file", "nested-comment-analyze-call", "select-from-enable-logging"):
        res = wb("sql", HOSTILE_SQL[case].format(aim=aim), "--db", str(db), cwd=aim.parent)
        assert res.returncode == 2, res.stderr
        one_clean_line(res.stderr, res.stdout)
    assert _dir_listing(aim) == []
    assert sha(db) == before
    shutil.rmtree(aim)

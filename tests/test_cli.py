"""The headless CLI contract (issue §7), driven in-process (damaged stores through real processes).

Exit codes: 0 completed, 3 waiting or paused, 1 failed, 2 bad usage or input. Errors are one
line on stderr, never a traceback, and never touch the database file. Most tests use the small
graphs in tests/graphs/ (no model calls); one test drives the support demo end to end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import cli_env, process_cli, run_cli
from rich.table import Table

HERE = Path(__file__).resolve().parent
GRAPHS = HERE / "graphs"
SIMPLE = str(GRAPHS / "simple.py")
TIMEOUT = 120
RESULT_KEYS = {"run_id", "status", "state", "interrupt", "error"}


def wb(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
       ) -> subprocess.CompletedProcess[str]:
    """The CLI, in-process (tests/conftest.py's run_cli)."""
    return run_cli(*args, cwd=cwd, env=env, stdin=stdin, timeout=TIMEOUT)


def wb_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command in a real process, under its crash guard."""
    return process_cli(*args, cwd=cwd, timeout=TIMEOUT)


def one_json(res: subprocess.CompletedProcess[str]) -> Any:
    """stdout holds exactly one JSON value."""
    assert "Traceback" not in res.stderr, res.stderr
    return json.loads(res.stdout)


def result(res: subprocess.CompletedProcess[str], code: int, status: str) -> dict[str, Any]:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    out = one_json(res)
    assert isinstance(out, dict) and RESULT_KEYS <= set(out), out
    assert out["status"] == status
    return out


def error_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The command failed with ``code`` and exactly one clean line on stderr."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "db" / "trace.duckdb")


@pytest.fixture(scope="module")
def filled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed trace store holding a completed, a waiting and a failed run (made once)."""
    d = tmp_path_factory.mktemp("filled")
    path = str(d / "trace.duckdb")
    result(wb("run", SIMPLE, "--input", '{"name": "ada"}', "--db", path, "--json", cwd=d), 0, "completed")
    result(wb("run", SIMPLE, "--input", '{"ask": true}', "--db", path, "--json", cwd=d), 3, "waiting")
    result(wb("run", f"{SIMPLE}:failing", "--db", path, "--json", cwd=d), 1, "failed")
    assert not Path(path + ".wal").exists()
    return Path(path)


@pytest.fixture
def filled_db(tmp_path: Path, filled_template: Path) -> str:
    """A private copy of the filled store."""
    path = tmp_path / "filled" / "trace.duckdb"
    path.parent.mkdir()
    shutil.copy(filled_template, path)
    return str(path)


# --------------------------------------------------------------------------- run / resume


def test_run_by_path_completes(tmp_path: Path, db: str) -> None:
    out = result(wb("run", SIMPLE, "--input", '{"name": "ada"}', "--db", db, "--json", cwd=tmp_path), 0, "completed")
    assert out["state"]["log"] == ["hello ada", "no question", "done"]
    assert out["interrupt"] is None and out["error"] is None
    assert out["run_id"]


def test_run_input_unicode_and_stdin(tmp_path: Path, db: str) -> None:
    out = result(wb("run", SIMPLE, "--input", '{"name": "Zoë 🚀"}', "--db", db, "--json", cwd=tmp_path),
                 0, "completed")
    assert out["state"]["log"][0] == "hello Zoë 🚀"
    out = result(wb("run", SIMPLE, "--input", "-", "--db", db, "--json", cwd=tmp_path, stdin='{"name": "pipe"}'),
                 0, "completed")
    assert out["state"]["log"][0] == "hello pipe"


def test_run_path_with_variable(tmp_path: Path, db: str) -> None:
    out = result(wb("run", f"{SIMPLE}:other", "--input", '{"x": 41}', "--db", db, "--json", cwd=tmp_path),
                 0, "completed")
    assert out["state"] == {"x": 42}
    line = error_line(wb("run", f"{SIMPLE}:nope", "--db", db, "--json", cwd=tmp_path))
    assert "nope" in line


def test_run_by_name_uses_graphs_dir_and_default_db(project: Path) -> None:
    shutil.copy(SIMPLE, project / "graphs" / "simple.py")
    out = result(wb("run", "simple", "--json", cwd=project), 0, "completed")
    default = project / "traces" / "workbench.duckdb"
    assert default.exists()
    runs = one_json(wb("runs", "--json", cwd=project))
    assert [r["run_id"] for r in runs] == [out["run_id"]]


def test_workbench_db_env_overrides_default(project: Path, tmp_path: Path) -> None:
    shutil.copy(SIMPLE, project / "graphs" / "simple.py")
    env_db = tmp_path / "elsewhere" / "env.duckdb"
    env = cli_env(WORKBENCH_DB=str(env_db))
    out = result(wb("run", "simple", "--json", cwd=project, env=env), 0, "completed")
    assert env_db.exists()
    assert not (project / "traces" / "workbench.duckdb").exists()
    assert [r["run_id"] for r in one_json(wb("runs", "--json", cwd=project, env=env))] == [out["run_id"]]
    # --db beats the environment.
    flag_db = tmp_path / "flag.duckdb"
    result(wb("run", "simple", "--db", str(flag_db), "--json", cwd=project, env=env), 0, "completed")
    assert len(one_json(wb("runs", "--db", str(flag_db), "--json", cwd=project, env=env))) == 1
    assert len(one_json(wb("runs", "--json", cwd=project, env=env))) == 1


def test_failed_run_exits_1(tmp_path: Path, db: str) -> None:
    out = result(wb("run", f"{SIMPLE}:failing", "--db", db, "--json", cwd=tmp_path), 1, "failed")
    assert "boom" in out["error"]
    res = wb("run", f"{SIMPLE}:failing", "--db", db, cwd=tmp_path)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "boom" in res.stderr
    # Resuming a failed run re-runs the failed node: it fails again, same exit code.
    again = result(wb("resume", out["run_id"], "--graph", f"{SIMPLE}:failing", "--db", db, "--json", cwd=tmp_path),
                   1, "failed")
    assert again["run_id"] == out["run_id"] and "boom" in again["error"]


def test_waiting_run_resumes_with_input(tmp_path: Path, db: str) -> None:
    out = result(wb("run", SIMPLE, "--input", '{"ask": true}', "--db", db, "--json", cwd=tmp_path), 3, "waiting")
    assert out["interrupt"] == {"question": "what is the answer?"}
    rid = out["run_id"]
    # Without an answer: refused, the run still waits.
    error_line(wb("resume", rid, "--graph", SIMPLE, "--db", db, "--json", cwd=tmp_path))
    error_line(wb("resume", rid, "--graph", SIMPLE, "--input", "{nope", "--db", db, "--json", cwd=tmp_path))
    done = result(wb("resume", rid, "--graph", SIMPLE, "--input", '"forty-two"', "--db", db, "--json", cwd=tmp_path),
                  0, "completed")
    assert done["run_id"] == rid
    assert done["state"]["answer"] == "forty-two"
    assert done["state"]["log"] == ["hello world", "asked", "done"]
    # A completed run cannot be resumed again.
    error_line(wb("resume", rid, "--graph", SIMPLE, "--db", db, cwd=tmp_path))


def test_waiting_run_human_output(tmp_path: Path, db: str) -> None:
    res = wb("run", SIMPLE, "--input", '{"ask": true}', "--db", db, cwd=tmp_path)
    assert res.returncode == 3
    assert "waiting" in res.stdout and "what is the answer?" in res.stdout
    assert "Traceback" not in res.stderr


def test_breakpoints_pause_and_resume(tmp_path: Path, db: str) -> None:
    out = result(wb("run", SIMPLE, "--break-before", "ask", "--db", db, "--json", cwd=tmp_path), 3, "paused")
    assert out["state"]["log"] == ["hello world"]
    done = result(wb("resume", out["run_id"], "--graph", SIMPLE, "--db", db, "--json", cwd=tmp_path),
                  0, "completed")
    assert done["state"]["log"] == ["hello world", "no question", "done"]

    # Repeated --break-after flags: one pause after each.
    out = result(wb("run", SIMPLE, "--break-after", "greet", "--break-after", "ask", "--db", db, "--json",
                    cwd=tmp_path), 3, "paused")
    rid = out["run_id"]
    assert out["state"]["log"] == ["hello world"]
    out = result(wb("resume", rid, "--graph", SIMPLE, "--db", db, "--json", cwd=tmp_path), 3, "paused")
    assert out["state"]["log"] == ["hello world", "no question"]
    out = result(wb("resume", rid, "--graph", SIMPLE, "--db", db, "--json", cwd=tmp_path), 0, "completed")
    assert out["state"]["log"] == ["hello world", "no question", "done"]

    error_line(wb("run", SIMPLE, "--break-before", "nosuchnode", "--db", db, "--json", cwd=tmp_path))


def test_demo_runs_the_support_graph_and_prints_no_markup(project: Path) -> None:
    """``workbench demo`` (the README's command for a machine without a UI): its rules printed
    ``[bold]support[/]`` as it was."""
    res = wb("demo", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "[bold]" not in res.stdout and "[/]" not in res.stdout
    assert "support ← 'My login page shows an error 500 since this morning'" in res.stdout
    assert res.stdout.count(": completed") + res.stdout.count(": waiting") == 2


def test_support_demo_waits_for_a_human_and_resumes(project: Path) -> None:
    """The seed's scenario, offline: a large refund goes to a human, who answers later."""
    msg = {"message": "I was charged twice, I want a refund of $400", "customer_id": "C-1002"}
    out = result(wb("run", "support", "--input", json.dumps(msg), "--json", cwd=project), 3, "waiting")
    rid = out["run_id"]
    assert out["state"]["category"] == "refund"
    assert out["interrupt"]["message"] == msg["message"]
    done = result(wb("resume", rid, "--input", '{"reply": "Billing will contact you today."}', "--json",
                     cwd=project), 0, "completed")
    assert done["state"]["handled_by"] == "human"
    assert done["state"]["reply"] == "Billing will contact you today."

    runs = one_json(wb("runs", "--json", cwd=project))
    assert [(r["run_id"], r["status"]) for r in runs] == [(rid, "completed")]
    shown = one_json(wb("show", rid, "--json", cwd=project))
    nodes = [s["node"] for s in shown["steps"] if s["status"] == "completed"]
    assert nodes == ["classify", "fetch_account", "retrieve_policy", "handoff"]
    assert shown["state"]["handled_by"] == "human"
    human = wb("show", rid, cwd=project)
    assert human.returncode == 0 and "handoff" in human.stdout
    calls = one_json(wb("sql", f"SELECT node, model FROM llm_calls WHERE run_id = '{rid}'", "--format", "json",
                        cwd=project))
    assert [c["node"] for c in calls] == ["classify"]
    answered = one_json(wb("sql", "SELECT response, resumed_at IS NOT NULL AS done FROM interrupts",
                           "--format", "json", cwd=project))
    assert len(answered) == 1 and answered[0]["done"] is True


# --------------------------------------------------------------------------- reading


def test_runs_and_show(tmp_path: Path, filled_db: str) -> None:
    runs = one_json(wb("runs", "--db", filled_db, "--json", cwd=tmp_path))
    assert sorted(r["status"] for r in runs) == ["completed", "failed", "waiting"]
    table = wb("runs", "--db", filled_db, cwd=tmp_path)
    assert table.returncode == 0
    for r in runs:
        assert r["run_id"] in table.stdout

    done = next(r for r in runs if r["status"] == "completed")
    shown = one_json(wb("show", done["run_id"], "--db", filled_db, "--json", cwd=tmp_path))
    assert [(s["step"], s["node"], s["status"]) for s in shown["steps"]] == [
        (1, "greet", "completed"), (2, "ask", "completed"), (3, "finish", "completed")]
    assert shown["state"]["log"] == ["hello ada", "no question", "done"]
    human = wb("show", done["run_id"], "--db", filled_db, cwd=tmp_path)
    assert human.returncode == 0 and "greet" in human.stdout and "finish" in human.stdout

    failed = next(r for r in runs if r["status"] == "failed")
    shown = one_json(wb("show", failed["run_id"], "--db", filled_db, "--json", cwd=tmp_path))
    assert [s["status"] for s in shown["steps"]] == ["failed"]
    assert "boom" in shown["steps"][0]["error"]


def test_runs_on_empty_store(tmp_path: Path, db: str) -> None:
    assert one_json(wb("runs", "--db", db, "--json", cwd=tmp_path)) == []
    assert wb("runs", "--db", db, cwd=tmp_path).returncode == 0


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path, db: str) -> None:
    """A mistyped --db: listing commands answer for an empty store and say there is none;
    commands that name a run refuse in one line; neither creates a file or folder."""
    listed = wb("runs", "--db", db, "--json", cwd=tmp_path)
    assert one_json(listed) == [] and listed.returncode == 0
    assert listed.stderr.strip() == (f"workbench: note: no trace store at {db} yet, nothing is recorded there "
                                     "(check --db)")
    queried = wb("sql", "SELECT count(*) AS n FROM runs", "--db", db, "--format", "json", cwd=tmp_path)
    assert one_json(queried) == [{"n": 0}] and "no trace store" in queried.stderr
    refusal = f"workbench: error: no trace store at {db}: nothing is recorded there (check --db)"
    for argv in (["show", "r-1"], ["show", "r-1", "--step", "1"], ["diff", "r-1", "r-2"],
                 ["export", "r-1", "--to", str(tmp_path / "out.jsonl")], ["replay", "r-1"],
                 ["test", "r-1"], ["rm", "r-1"], ["maintain"], ["resume", "r-1"],
                 ["fork", "r-1", "--at", "1"], ["run", SIMPLE, "--continue", "r-1"]):
        assert error_line(wb(*argv, "--db", db, cwd=tmp_path)) == refusal, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # The default store (no --db): traces/ is not made by reading it.
    default = wb("runs", cwd=tmp_path, env={**cli_env(), "WORKBENCH_DB": ""})
    assert default.returncode == 0 and "check --db or WORKBENCH_DB" in default.stderr
    assert not (tmp_path / "traces").exists()


def test_a_query_error_quoting_alarming_words_is_a_query_error(tmp_path: Path, filled_db: str) -> None:
    """A query's own error that quotes data ('checksum', 'No space left on device') is reported
    as the query's, not as a damaged or full store."""
    for query in ("SELECT CAST('my checksum failed on the invoice' AS INTEGER)",
                  "SELECT error('No space left on device: corrupt database file')"):
        line = error_line(wb("sql", query, "--db", filled_db, cwd=tmp_path))
        assert line.startswith("workbench: error: SQL error: "), line
        assert "corrupt" not in line.split("SQL error:")[0] and "move it aside" not in line


ENDLESS = "SELECT count(*) FROM range(1000000000000) a, range(1000) b"


def test_a_query_that_runs_too_long_is_stopped_and_lets_go_of_the_store(tmp_path: Path, filled_db: str) -> None:
    """While a query runs it holds the store (recording waits): past --timeout it is stopped,
    in one line, and the store is free again at once."""
    line = error_line(wb("sql", ENDLESS, "--db", filled_db, "--timeout", "0.3", cwd=tmp_path))
    assert line.startswith("workbench: error: the query ran longer than 0.3 s and was stopped"), line
    assert "--timeout SECONDS" in line
    assert one_json(wb("runs", "--db", filled_db, "--json", cwd=tmp_path))  # nothing left holding the file
    bad = wb("sql", "SELECT 1", "--db", filled_db, "--timeout", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "argument --timeout: -1 is not 0 or more seconds" in bad.stderr


def test_ctrl_c_stops_a_running_query_at_once(filled_db: str) -> None:
    """Ctrl-C interrupts the database (it went on for minutes, the rollback waiting for it) and
    the store is usable right after."""
    import signal
    import threading

    from workbench.sqlquery import run_read_only
    from workbench.store import TraceStore

    with TraceStore(filled_db) as store:
        timer = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                run_read_only(store, ENDLESS, timeout=None)
        finally:
            timer.cancel()
        assert run_read_only(store, "SELECT count(*) FROM runs").rows == [(3,)]


def test_sql_formats(tmp_path: Path, filled_db: str) -> None:
    q = "SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY status"
    as_json = one_json(wb("sql", q, "--db", filled_db, "--format", "json", cwd=tmp_path))
    assert as_json == [{"status": "completed", "n": 1}, {"status": "failed", "n": 1}, {"status": "waiting", "n": 1}]
    as_csv = wb("sql", q, "--db", filled_db, "--format", "csv", cwd=tmp_path)
    assert as_csv.returncode == 0
    assert as_csv.stdout.splitlines() == ["status,n", "completed,1", "failed,1", "waiting,1"]
    as_table = wb("sql", q, "--db", filled_db, cwd=tmp_path)
    assert as_table.returncode == 0
    for word in ("status", "completed", "failed", "waiting"):
        assert word in as_table.stdout
    # WITH … SELECT and the steps view's documented columns.
    steps = one_json(wb("sql", "WITH s AS (SELECT * FROM steps) SELECT run_id, step, node, attempt, status, "
                        "started_at, ended_at, duration_ms, \"update\", error FROM s ORDER BY started_at",
                        "--db", filled_db, "--format", "json", cwd=tmp_path))
    assert len(steps) == 6  # 3 completed + greet and interrupted ask + failed boom



def test_sql_csv_and_json_stream_the_rows(tmp_path: Path, filled_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--format csv``/``json`` write the rows a batch at a time as the database produces them,
    never holding the whole result (20 million rows as CSV used to take 2.1 GB); the text is the
    same as the whole result written at once. (The table keeps only the rows it shows.)"""


    from workbench import sqlquery
    from workbench.cli import common
    from workbench.store import TraceStore

    monkeypatch.setattr(sqlquery, "STREAM_BATCH_ROWS", 3)
    writes: list[str] = []
    real_emit = common.emit

    def counting_emit(text: str, end: str = "\n") -> None:
        writes.append(text)
        real_emit(text, end)

    monkeypatch.setattr("workbench.cli.reading.emit", counting_emit)
    monkeypatch.setattr("workbench.cli.common.emit", counting_emit)  # under emit_json
    q = ("SELECT i, CASE WHEN i = 2 THEN NULL ELSE 'a,\"b' END AS s, json_object('k', i) AS j, "
         "CASE WHEN i = 4 THEN 'nan'::DOUBLE ELSE i / 2 END AS f FROM range(8) t(i) ORDER BY i")
    with TraceStore(filled_db) as st:
        whole = sqlquery.run_read_only(st, q)
    as_csv = wb("sql", q, "--db", filled_db, "--format", "csv", cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout == whole.to_csv()
    assert len(writes) == 3  # 8 rows: batches of 3, 3 and 2
    writes.clear()
    as_json = wb("sql", q, "--db", filled_db, "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout == json.dumps(sqlquery.QueryResult(whole.columns, whole.rows, 0, whole.json_columns)
                                         .to_dicts(), ensure_ascii=False).replace("NaN", "null") + "\n"
    assert json.loads(as_json.stdout)[2] == {"i": 2, "s": None, "j": {"k": 2}, "f": 1.0}
    assert len(writes) == 4  # three batches, then the closing bracket
    for fmt, text in (("json", "[]\n"), ("csv", "i\n")):
        none = wb("sql", "SELECT 1 AS i WHERE false", "--db", filled_db, "--format", fmt, cwd=tmp_path)
        assert (none.returncode, none.stdout) == (0, text)
    with TraceStore(filled_db) as st:
        seen: list[int] = []
        result = sqlquery.run_read_only(st, "SELECT * FROM range(7)", sink=lambda c, j, rows: seen.append(len(rows)))
    assert (seen, result.rows, result.fetched) == ([3, 3, 1], [], 7)


def test_sql_table_keeps_only_the_rows_it_shows_and_counts_the_rest(tmp_path: Path, filled_db: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The table format held every row of the result to size its columns (20 million rows:
    gigabytes): it keeps the first --max-rows (default 1,000; 0: all) and counts the others."""
    from workbench import sqlquery

    monkeypatch.setattr(sqlquery, "STREAM_BATCH_ROWS", 7)
    kept: list[int] = []
    real = Table.add_row

    def counting(self: Table, *cells: Any, **kw: Any) -> None:
        kept.append(1)
        real(self, *cells, **kw)

    monkeypatch.setattr(Table, "add_row", counting)
    q = "SELECT i, i * 2 AS double FROM range(2500) t(i) ORDER BY i"
    out = wb("sql", q, "--db", filled_db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == ("(the first 1,000 of 2,500 rows: --max-rows 0 shows every row, --format csv or json "
                         "writes them as they come)")
    body = [line for line in lines if line.startswith("│")]
    assert (len(body), body[-1], len(kept)) == (1000, "│ 999 │ 1998   │", 1000)
    kept.clear()
    three = wb("sql", q, "--db", filled_db, "--max-rows", "3", cwd=tmp_path).stdout
    assert len(kept) == 3 and three.splitlines()[-1].startswith("(the first 3 of 2,500 rows")
    every = wb("sql", q, "--db", filled_db, "--max-rows", "0", cwd=tmp_path).stdout
    assert every.splitlines()[-1] == "(2500 rows)" and "│ 2499 │ 4998   │" in every
    assert wb("sql", "SELECT 1 AS x", "--db", filled_db, cwd=tmp_path).stdout.splitlines()[-1] == "(1 row)"
    bad = wb("sql", q, "--db", filled_db, "--max-rows", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "-1 is not 0 or more" in bad.stderr


def test_sql_output_keeps_repeated_columns_and_writes_blobs_and_intervals_as_duckdb_does(
        tmp_path: Path, filled_db: str) -> None:
    """A repeated column name (a join's ``*``) lost all but its last value in JSON; a BLOB and
    an INTERVAL came out as Python wrote them (``b'abc'``, ``1 day, 2:00:00``)."""
    q = ("SELECT 1 AS a, 2 AS a, 'x' AS a_1, 'ab\\x00\\xFF'::BLOB AS b, INTERVAL '1 day 2 hours' AS i, "
         "INTERVAL 90 MINUTES AS k, INTERVAL 2 DAYS AS d")
    as_json = one_json(wb("sql", q, "--db", filled_db, "--format", "json", cwd=tmp_path))
    assert as_json == [{"a": 1, "a_2": 2, "a_1": "x", "b": "ab\\x00\\xFF", "i": "1 day 02:00:00", "k": "01:30:00",
                        "d": "2 days"}]
    as_csv = wb("sql", q, "--db", filled_db, "--format", "csv", cwd=tmp_path)
    assert as_csv.stdout.splitlines() == ["a,a,a_1,b,i,k,d", "1,2,x,ab\\x00\\xFF,1 day 02:00:00,01:30:00,2 days"]
    table = wb("sql", q, "--db", filled_db, cwd=tmp_path).stdout
    assert "ab\\x00\\xFF" in table and "1 day 02:00:00" in table and "b'" not in table

WRITES = {
    "INSERT": "INSERT INTO wb_meta VALUES ('x', 'y')",
    "UPDATE": "UPDATE wb_runs SET status = 'failed'",
    "DELETE": "DELETE FROM wb_runs",
    "CREATE": "CREATE TABLE evil AS SELECT * FROM wb_runs",
    "DROP": "DROP TABLE wb_tasks",
    "COPY": "COPY wb_runs TO '{out}'",
    "ATTACH": "ATTACH '{out}' AS other",
    "SELECT-then-DELETE": "SELECT 1; DELETE FROM wb_runs",
}


def _snapshot(db: str) -> tuple[str, list[Any]]:
    con = duckdb.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT run_id, status FROM wb_runs ORDER BY run_id").fetchall()
        rows += con.execute("SELECT count(*) FROM wb_tasks").fetchall()
        rows += con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    finally:
        con.close()
    return sha(db), rows


@pytest.mark.parametrize("kind", list(WRITES))
def test_sql_refuses_writes(tmp_path: Path, filled_db: str, kind: str) -> None:
    out = tmp_path / "side-effect.out"
    before = _snapshot(filled_db)
    line = error_line(wb("sql", WRITES[kind].format(out=out), "--db", filled_db, cwd=tmp_path))
    assert "read-only" in line
    assert _snapshot(filled_db) == before
    assert not out.exists()


def test_sql_refuses_explain_analyze_of_a_write(tmp_path: Path, filled_db: str) -> None:
    out = tmp_path / "leak.csv"
    before = _snapshot(filled_db)
    res = wb("sql", f"EXPLAIN ANALYZE COPY (SELECT * FROM wb_runs) TO '{out}'", "--db", filled_db, cwd=tmp_path)
    assert _snapshot(filled_db) == before
    assert not out.exists()
    assert "read-only" in error_line(res)


def test_sql_explain_analyze_delete_leaves_database_unchanged(tmp_path: Path, filled_db: str) -> None:
    before = _snapshot(filled_db)[1]
    wb("sql", "EXPLAIN ANALYZE DELETE FROM wb_runs", "--db", filled_db, cwd=tmp_path)
    assert _snapshot(filled_db)[1] == before


# --------------------------------------------------------------------------- graph


def test_graph_ascii_and_mermaid(project: Path) -> None:
    ascii_ = wb("graph", "support", cwd=project)
    assert ascii_.returncode == 0, ascii_.stderr
    for node in ("classify", "fetch_account", "retrieve_policy", "draft", "check", "send", "handoff"):
        assert node in ascii_.stdout
    mermaid = wb("graph", "support", "--format", "mermaid", cwd=project)
    assert mermaid.returncode == 0
    first = mermaid.stdout.lstrip().splitlines()[0]
    assert first.startswith(("flowchart", "graph"))
    assert "classify" in mermaid.stdout and "-->" in mermaid.stdout
    by_path = wb("graph", f"{SIMPLE}:other", "--format", "mermaid", cwd=project)
    assert by_path.returncode == 0 and "inc" in by_path.stdout


def test_graph_layered_draws_branches_side_by_side(project: Path) -> None:
    out = wb("graph", "support", "--format", "layered", cwd=project)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("graph support")
    assert any("│ send │" in x and "│ handoff │" in x for x in lines)  # the two endings on one row
    assert "┊" in out.stdout  # the loop back to draft, dotted


# --------------------------------------------------------------------------- errors


# Errors found before the trace store is opened: the database file is not even read.
BEFORE_STORE = {
    "malformed-json": (["run", SIMPLE, "--input", "{not json"], "JSON"),
    "input-not-object": (["run", SIMPLE, "--input", "[1, 2]"], "object"),
    "unknown-graph": (["run", "no_such_graph"], "no_such_graph"),
    "missing-file": (["run", "missing/file.py"], "missing/file.py"),
    "syntax-error": (["run", "{tmp}/syntax_error.py"], "syntax_error.py:7: syntax error"),
    "graph-syntax-error": (["graph", "{tmp}/syntax_error.py"], "syntax_error.py:7: syntax error"),
    "invalid-graph": (["run", str(GRAPHS / "invalid.py")], "nowhere"),
    "graph-invalid-graph": (["graph", str(GRAPHS / "invalid.py")], "nowhere"),
    "import-error": (["run", str(GRAPHS / "import_error.py")], "import_error.py"),
    "bad-sql": (["sql", "SELEC oops"], "SQL"),
}
# Errors found with the store open.
WITH_STORE = {
    "input-unknown-key": (["run", SIMPLE, "--input", '{"no_such_key": 1}'], "no_such_key"),
    "unknown-run-resume": (["resume", "no_such_run"], "no_such_run"),
    "unknown-run-show": (["show", "no_such_run"], "no_such_run"),
    "unknown-table": (["sql", "SELECT * FROM no_such_table"], "no_such_table"),
}


def _content(db: str) -> list[Any]:
    """What the store holds, read without opening it through workbench."""
    con = duckdb.connect(db, read_only=True)
    try:
        out: list[Any] = []
        for table in ("wb_meta", "wb_runs", "wb_tasks", "wb_changes", "wb_supersteps", "wb_interrupts"):
            out.append(sorted(map(repr, con.execute(f"SELECT * FROM {table}").fetchall())))
        return out
    finally:
        con.close()


def _with_db(args: list[str], db: str) -> list[str]:
    return [*args, "--db", db] if args[0] != "graph" else args


@pytest.mark.parametrize("case", list(BEFORE_STORE))
def test_input_errors_are_one_line_exit_2_and_leave_db_bytes_alone(tmp_path: Path, filled_db: str,
                                                                   case: str) -> None:
    args, needle = BEFORE_STORE[case]
    # Written here, not kept in tests/graphs: the linter would trip over it.
    (tmp_path / "syntax_error.py").write_text(
        '"""A graph file with a syntax error."""\n\nfrom workbench import Graph\n\ngraph = Graph("broken")\n\n'
        "def oops(state)\n    return {}\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = sha(filled_db)
    line = error_line(wb(*_with_db(args, filled_db), cwd=tmp_path))
    assert needle in line
    assert sha(filled_db) == before


@pytest.mark.parametrize("case", list(WITH_STORE))
def test_errors_with_store_open_are_one_line_exit_2_and_leave_db_intact(tmp_path: Path, filled_db: str,
                                                                        case: str) -> None:
    args, needle = WITH_STORE[case]
    before = _content(filled_db)
    line = error_line(wb(*_with_db(args, filled_db), cwd=tmp_path))
    assert needle in line
    assert _content(filled_db) == before


def test_reading_commands_and_errors_leave_db_bytes_alone(tmp_path: Path, filled_db: str) -> None:
    before = sha(filled_db)
    commands = [["runs"], ["show", "last"], ["sql", "SELECT count(*) FROM steps"],
                *(args for args, _ in WITH_STORE.values())]
    for args in commands:
        wb(*_with_db(args, filled_db), cwd=tmp_path)
        assert sha(filled_db) == before, args


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert wb("run", cwd=tmp_path).returncode == 2
    assert wb("sql", "SELECT 1", "--format", "xml", cwd=tmp_path).returncode == 2
    assert wb("no-such-command", cwd=tmp_path).returncode == 2


HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    con.close()
""")


def test_locked_database(tmp_path: Path, filled_db: str, short_foreign_wait: float) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, filled_db], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        before = sha(filled_db)
        for args in (["runs"], ["run", SIMPLE], ["resume", "last"], ["show", "last"], ["sql", "SELECT 1"]):
            line = error_line(wb(*args, "--db", filled_db, cwd=tmp_path))
            assert "in use" in line, line
            assert str(holder.pid) in line
        assert sha(filled_db) == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=TIMEOUT)
    # Released: usable again, nothing lost.
    assert len(one_json(wb("runs", "--db", filled_db, "--json", cwd=tmp_path))) == 3


def _corrupt(kind: str, tmp_path: Path, filled_db: str) -> Path:
    path = tmp_path / f"{kind}.duckdb"
    if kind == "garbage":
        path.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(300_000)))
    elif kind == "truncated":  # the headers intact, every data block gone
        path.write_bytes(Path(filled_db).read_bytes()[:16384])
    elif kind == "truncated-header":
        path.write_bytes(Path(filled_db).read_bytes()[:5000])
    elif kind == "text":
        path.write_text("this is not a database\n" * 100)
    return path


@pytest.mark.parametrize("kind, cmd", [
    ("garbage", ["runs"]),
    ("garbage", ["run", SIMPLE]),
    ("truncated", ["runs"]),
    ("truncated", ["sql", "SELECT 1"]),
    ("truncated-header", ["show", "last"]),
    ("text", ["resume", "last"]),
], ids=["garbage-runs", "garbage-run", "truncated-runs", "truncated-sql", "header-show", "text-resume"])
def test_corrupt_database(tmp_path: Path, filled_db: str, kind: str, cmd: list[str]) -> None:
    path = _corrupt(kind, tmp_path, filled_db)
    before = sha(path)
    # A real process: a damaged file is what the crash guard is for.
    line = error_line(wb_process(*cmd, "--db", str(path), cwd=tmp_path))
    assert str(path) in line or path.name in line
    assert sha(path) == before
    assert not Path(str(path) + ".wal").exists()


def test_demo_outside_the_repository_says_what_it_needs_and_records_nothing(tmp_path: Path) -> None:
    """Outside the workbench repository ``demo`` said ``unknown graph 'support' (graphs in
    graphs/: …)`` as if the user's project lacked a graph of its own."""
    (tmp_path / "graphs").mkdir()
    res = wb("demo", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == ("workbench: error: workbench demo runs the support demo graph (graphs/support.py "
                                  "of the workbench repository): run it from the repository's root, or copy that "
                                  "file into ./graphs")
    assert not (tmp_path / "traces").exists()

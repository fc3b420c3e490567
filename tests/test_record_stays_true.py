"""The record says what happened, whatever the display does and however the process stops.

* Recorded text is printed as it is: ``[/INST]`` or ``[redacted]`` in an input, an error or a
  SQL result is never read as a style tag, and a tag-like text never fails a command or a run.
* A display (the progress listener) that fails never fails the run it watches.
* A run left going when its process stops cleanly (Ctrl-C, quitting the workbench mid-run) is
  marked interrupted, as a killed process's run is, and resumes from any process.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import cli_env, run_cli

from workbench import END, START, Graph, RetryPolicy, Send, append
from workbench.runtime import Runner
from workbench.store import TraceStore

BRACKETS = '''
from typing import TypedDict
from workbench import END, START, Graph


class S(TypedDict):
    text: str


graph = Graph("brackets", S)


@graph.node
def boom(state: S) -> dict:
    raise ValueError("bad token " + state["text"])


graph.sequence(START, "boom", END)
'''

STOPS = '''
import os
from typing import TypedDict
from workbench import END, START, Graph


class S(TypedDict):
    n: int


graph = Graph("stops", S)


@graph.node
def first(state: S) -> dict:
    return {"n": state["n"] + 1}


@graph.node
def second(state: S) -> dict:
    if os.path.exists("stop-here"):
        raise KeyboardInterrupt  # what Ctrl-C does in the middle of a node
    return {"n": state["n"] + 10}


graph.sequence(START, "first", "second", END)
'''


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "brackets.py").write_text(BRACKETS)
    (tmp_path / "graphs" / "stops.py").write_text(STOPS)
    return tmp_path


def status_of(proj: Path, run_id: str) -> tuple[str, str | None]:
    with TraceStore(str(proj / "traces" / "workbench.duckdb")) as store:
        run = store.get_run(run_id)
    return run["status"], run["error"]


# --------------------------------------------------------------------------- printed as recorded


def test_a_tag_like_error_fails_the_run_and_is_printed_literally(proj: Path) -> None:
    # Style tags, and emoji codes (":smile:", a tool tag like "2:a:b" read as ":a:").
    text = "[/INST] [bold]hidden[/bold] [red] ratio 2:a:b :smile:"
    res = run_cli("run", "brackets", "--input", json.dumps({"text": text}), cwd=proj)
    assert res.returncode == 1, res.stderr  # the node failed: the run failed, nothing else did
    assert "internal error" not in res.stderr and "MarkupError" not in res.stderr + res.stdout
    assert "ValueError: bad token [/INST] [bold]hidden[/bold] [red]" in res.stdout  # the progress line
    listed = json.loads(run_cli("runs", "--json", cwd=proj).stdout)
    assert [r["status"] for r in listed] == ["failed"]

    show = run_cli("show", "last", cwd=proj)
    assert show.returncode == 0, show.stderr
    assert f"bad token {text}" in show.stdout
    assert f'input: {{"text": "{text}"}}' in show.stdout


def test_a_redacted_secret_shows_as_redacted_on_the_progress_line(proj: Path) -> None:
    (proj / "graphs" / "leaky.py").write_text(BRACKETS.replace('"brackets"', '"leaky"').replace(
        'raise ValueError("bad token " + state["text"])',
        'import os\n    raise ValueError("auth failed with key " + os.environ["OPENAI_API_KEY"])'))
    env = cli_env(OPENAI_API_KEY="sk-test-1234567890abcdef")
    res = run_cli("run", "leaky", "--input", '{"text": "x"}', cwd=proj, env=env)
    assert res.returncode == 1
    assert "auth failed with key [redacted]" in res.stdout
    assert "sk-test-1234567890abcdef" not in res.stdout + res.stderr


def test_sql_results_are_printed_as_they_are(proj: Path) -> None:
    res = run_cli("sql", "SELECT '[/x]' AS a, '[bold red]hi[/bold red]' AS b", cwd=proj)
    assert res.returncode == 0, res.stderr
    assert "[/x]" in res.stdout and "[bold red]hi[/bold red]" in res.stdout


# --------------------------------------------------------------------------- a failing display


class Counter(TypedDict):
    n: int


def counter_graph() -> Graph:
    graph = Graph("counter", Counter)

    @graph.node
    def add(state: Counter) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    graph.sequence(START, "add", END)
    return graph


def test_a_listener_that_raises_never_fails_the_run(tmp_path: Path) -> None:
    seen: list[str] = []

    def broken(event: Any) -> None:
        seen.append(event.kind)
        raise RuntimeError("the screen went away")

    with TraceStore(str(tmp_path / "t.duckdb")) as store:
        runner = Runner(counter_graph(), store, listener=broken)
        result = runner.run({"n": 0})
        assert result.status == "completed" and result.state == {"n": 1}
        assert store.get_run(result.run_id)["status"] == "completed"
    assert len(seen) == 1  # not called again once it failed
    assert isinstance(runner.listener_error, RuntimeError)


# --------------------------------------------------------------------------- a process that stops


PIPED = '''
import os
from typing import Annotated, TypedDict
from workbench import END, START, Graph, append

class S(TypedDict):
    log: Annotated[list[str], append]

graph = Graph("piped", S)

@graph.node
def first(state: S) -> dict:
    return {"log": ["first"]}

@graph.node
def wait(state: S) -> dict:
    with open(os.environ["PIPED_FIFO"]) as fh:  # until the test has closed its end of the output
        fh.read()
    return {"log": ["wait"]}

@graph.node
def last(state: S) -> dict:
    return {"log": ["last"]}

graph.sequence(START, "first", "wait", "last", END)
'''


def test_a_run_whose_output_reader_goes_away_runs_to_its_end(tmp_path: Path) -> None:
    """``workbench run ... | head -2``: the progress line printed after ``head`` had gone made
    Rich raise SystemExit(1), which went past the run: it was left interrupted midway, exit 1,
    nothing said. The rest of the output now goes nowhere and the run ends as it would."""
    import os
    import subprocess

    from conftest import workbench_cmd

    (tmp_path / "piped.py").write_text(PIPED)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    db = str(tmp_path / "t.duckdb")
    proc = subprocess.Popen([*workbench_cmd(), "run", str(tmp_path / "piped.py"), "--db", db], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(PIPED_FIFO=str(fifo)))
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"running piped")
    proc.stdout.close()  # the reader goes away, as head does
    # Now let the run go on (its next progress line meets a closed pipe): opening the FIFO waits
    # for the node to open it. A process that died before (what the old code did) never does:
    # then the wait is ended by opening it here, and the assertions below say what happened.
    opener = threading.Thread(target=lambda: open(fifo, "w").close())
    opener.start()
    opener.join(timeout=60)
    if opener.is_alive():
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        opener.join()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b"", err
    with TraceStore(db) as store:
        [run] = store.list_runs()
        assert run["status"] == "completed" and run["steps"] == 3


def test_ctrl_c_during_a_run_leaves_it_interrupted_and_resumable(proj: Path) -> None:
    (proj / "stop-here").write_text("")
    res = run_cli("run", "stops", "--input", '{"n": 0}', "--json", cwd=proj)
    assert res.returncode == 130
    assert " interrupted " in run_cli("runs", cwd=proj).stdout
    (run_id,) = [r["run_id"] for r in json.loads(run_cli("runs", "--json", cwd=proj).stdout)]
    # The message names the run (it said RUN_ID), with --json too.
    assert res.stderr.strip() == (f"workbench: interrupted: run {run_id} is marked interrupted; continue it with: "
                                  f"workbench resume {run_id}")
    status, error = status_of(proj, run_id)  # what docs/sql.md says a run whose process died has
    assert status == "running" and error is not None and error.startswith("interrupted:")
    # `show` and `replay` call it what `runs` does (they said "running").
    assert f"run {run_id}  graph stops  status interrupted" in run_cli("show", run_id, cwd=proj).stdout
    assert "ends interrupted, no live calls" in run_cli("replay", run_id, cwd=proj).stdout

    (proj / "stop-here").unlink()
    res = run_cli("resume", run_id, "--json", cwd=proj)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == {"n": 11}
    assert status_of(proj, run_id) == ("completed", None)


def test_closing_the_store_under_a_live_run_marks_it_interrupted(tmp_path: Path) -> None:
    """What quitting the workbench during a run does: the store closes while the run's thread
    is still inside a node."""
    db = str(tmp_path / "t.duckdb")
    inside, release = threading.Event(), threading.Event()
    graph = Graph("held", Counter)

    @graph.node
    def wait(state: Counter) -> dict[str, Any]:
        inside.set()
        release.wait(30)
        return {"n": state["n"] + 1}

    graph.sequence(START, "wait", END)
    store = TraceStore(db)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_run_catching(graph, store)), daemon=True)
    thread.start()
    assert inside.wait(30)
    store.close()
    release.set()
    thread.join(30)
    with TraceStore(db) as again:
        (run,) = again.list_runs()
        assert run["status"] == "running" and str(run["error"]).startswith("interrupted:")
        result = Runner(graph, again).resume(run["run_id"])
        assert result.status == "completed" and result.state == {"n": 1}
    # The run's thread could not record the node's end: the store had closed under it.
    assert outcome and isinstance(outcome[0], Exception) and "closed" in str(outcome[0])


def _run_catching(graph: Graph, store: TraceStore) -> Any:
    try:
        return Runner(graph, store).run({"n": 0})
    except Exception as exc:  # the store closed under it: it cannot record the end
        return exc


def test_a_finished_run_is_not_touched_at_close(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    with TraceStore(db) as store:
        done = Runner(counter_graph(), store).run({"n": 0})
    with TraceStore(db) as store:
        run = store.get_run(done.run_id)
    assert run["status"] == "completed" and run["error"] is None


# --------------------------------------------------------------------------- code changed since


def test_resume_and_fork_refuse_a_node_the_graph_no_longer_has_and_change_nothing(proj: Path) -> None:
    graph_file = proj / "graphs" / "stops.py"
    res = run_cli("run", "stops", "--input", '{"n": 0}', "--break-before", "second", "--json", cwd=proj)
    assert res.returncode == 3, res.stderr  # paused before `second`
    run_id = json.loads(res.stdout)["run_id"]
    graph_file.write_text(STOPS.replace("def second(", "def renamed(").replace('"second"', '"renamed"'))

    res = run_cli("resume", run_id, cwd=proj)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "internal error" not in res.stderr
    assert "'second'" in res.stderr and "no longer has" in res.stderr
    assert status_of(proj, run_id)[0] == "paused"

    res = run_cli("fork", run_id, "--at", "2", cwd=proj)
    assert res.returncode == 2 and "'second'" in res.stderr and "internal error" not in res.stderr
    listed = json.loads(run_cli("runs", "--json", cwd=proj).stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "paused")]  # no fork left behind

    graph_file.write_text(STOPS)  # the node is back: the run goes on
    res = run_cli("resume", run_id, "--json", cwd=proj)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == {"n": 11}


# --------------------------------------------------------------------------- one line, nothing left


def test_export_to_a_folder_or_a_missing_folder_is_one_line_and_leaves_nothing(proj: Path) -> None:
    assert run_cli("run", "stops", "--input", '{"n": 0}', cwd=proj).returncode == 0
    before = sorted(p.name for p in proj.iterdir())
    for target, words in ((proj, "is a folder"), (proj / "missing" / "x.jsonl", "does not exist")):
        res = run_cli("export", "last", "--to", str(target), cwd=proj)
        assert res.returncode == 2 and words in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "internal error" not in res.stderr
    assert sorted(p.name for p in proj.iterdir()) == before
    assert not list(proj.parent.glob(f"{proj.name}*.tmp"))


def test_a_bad_limit_is_a_usage_error(proj: Path) -> None:
    for bad in ("-1", "0", "x"):
        res = run_cli("runs", "--limit", bad, cwd=proj)
        assert res.returncode == 2 and "--limit" in res.stderr and "internal error" not in res.stderr


def test_a_bad_value_limit_setting_is_one_line_for_every_command(proj: Path) -> None:
    for command in (["--help"], ["runs"]):
        res = run_cli(*command, cwd=proj, env=cli_env(WORKBENCH_MAX_VALUE_MB="abc"))
        assert res.returncode == 2
        assert res.stderr == "workbench: error: WORKBENCH_MAX_VALUE_MB must be a number of megabytes above 0 " \
                             "(not 'abc')\n"


def test_debug_shows_the_traceback_of_an_internal_error(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The traceback is printed by the command itself: under the console script's crash guard,
    which ends the process with os._exit, an exception left to propagate was never shown."""
    from workbench.store import TraceStore, reader

    TraceStore(str(proj / "traces" / "workbench.duckdb")).close()
    monkeypatch.setattr(reader.StoreReader, "list_runs", lambda self, limit=50: 1 / 0)
    res = run_cli("runs", cwd=proj, env=cli_env(WORKBENCH_DEBUG="1"))
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr and "ZeroDivisionError" in res.stderr
    res = run_cli("runs", cwd=proj)
    assert res.returncode == 1 and res.stderr.startswith("workbench: internal error: ZeroDivisionError")


def test_two_exports_in_the_same_second_get_files_of_their_own(tmp_path: Path) -> None:
    from workbench.sqlquery import new_export_path

    first = new_export_path(str(tmp_path / "exports"), "csv", "20261205-054211")
    second = new_export_path(str(tmp_path / "exports"), "csv", "20261205-054211")
    assert first != second and Path(first).exists() and Path(second).exists()
    assert Path(second).name == "query-20261205-054211-2.csv"


# --------------------------------------------------------------------------- machine output


NOISY = '''
print("noise from import")
from typing import TypedDict
from workbench import END, START, Graph


class S(TypedDict):
    a: str


graph = Graph("noisy", S)


@graph.node
def n(state: S) -> dict:
    print("noise from node")
    return {"a": "x"}


graph.sequence(START, "n", END)
'''


def test_json_output_stays_one_document_when_graph_code_prints(proj: Path) -> None:
    (proj / "graphs" / "noisy.py").write_text(NOISY)
    res = run_cli("run", "noisy", "--json", cwd=proj)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == {"a": "x"}
    assert "noise from import" in res.stderr and "noise from node" in res.stderr
    res = run_cli("graphs", "--json", cwd=proj)
    assert "noisy" in {g["graph"] for g in json.loads(res.stdout)}
    res = run_cli("run", "noisy", cwd=proj)  # without --json the prints stay where they were
    assert "noise from node" in res.stdout


def test_sql_json_writes_nan_and_infinities_as_null(proj: Path) -> None:
    res = run_cli("sql", "SELECT 'nan'::DOUBLE AS x, '-inf'::DOUBLE AS y, [1.5, 'inf'::DOUBLE] AS z", "--format",
                  "json", cwd=proj)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) == \
        [{"x": None, "y": None, "z": [1.5, None]}]


# --------------------------------------------------------------------------- totals


def test_diff_totals_count_the_model_calls_made_inside_subgraphs(proj: Path) -> None:
    """warranty's model calls: ``review/assess`` inside its subgraph, then ``reply``. The totals
    counted only the root run's own calls (1 of 2, 72 of its tokens), against what ``runs``
    lists."""
    import shutil

    shutil.copy(Path(__file__).resolve().parents[1] / "graphs" / "warranty.py", proj / "graphs")
    res = run_cli("run", "warranty", "--input", json.dumps({"message": "Please refund $120 for the kettle"}),
                  "--json", cwd=proj)
    run_id = json.loads(res.stdout)["run_id"]
    assert run_cli("resume", run_id, "--input", '"yes"', cwd=proj).returncode == 0
    (listed,) = [r for r in json.loads(run_cli("runs", "--json", cwd=proj).stdout) if r["run_id"] == run_id]
    totals = json.loads(run_cli("diff", run_id, run_id, "--json", cwd=proj).stdout)["totals"]["a"]
    assert totals["llm_calls"] == 2 and totals["tokens"] == listed["tokens"] > 0

    # A fork at the subgraph's step 2 shares its step 1 (the assessment) and waits for the human.
    res = run_cli("fork", run_id, "--at", "2/review/2", "--json", cwd=proj)
    fork = json.loads(res.stdout)["run_id"]
    totals = json.loads(run_cli("diff", run_id, fork, "--json", cwd=proj).stdout)["totals"]
    assert totals["b"]["llm_calls"] == 1 and 0 < totals["b"]["tokens"] < totals["a"]["tokens"]


def test_a_run_whose_process_stopped_shows_as_interrupted_everywhere() -> None:
    """One rule for the runs list, the lineage tree, the timeline heading and the CLI."""
    from workbench.store.reader import shown_status

    assert shown_status({"status": "running", "error": "interrupted: the process that recorded it ..."}) \
        == "interrupted"
    assert shown_status({"status": "running", "error": None}) == "running"
    assert shown_status({"status": "failed", "error": "interrupted: no"}) == "failed"


def test_an_import_file_missing_a_steps_plan_is_refused_and_nothing_is_imported(proj: Path) -> None:
    assert run_cli("run", "stops", "--input", '{"n": 0}', cwd=proj).returncode == 0
    assert run_cli("export", "last", "--to", str(proj / "whole.jsonl"), cwd=proj).returncode == 0
    lines = (proj / "whole.jsonl").read_text().splitlines()
    cut = [ln for ln in lines if json.loads(ln).get("table") != "supersteps"]
    assert len(cut) < len(lines)
    (proj / "cut.jsonl").write_text("\n".join(cut) + "\n")
    other = str(proj / "other.duckdb")
    res = run_cli("import", str(proj / "cut.jsonl"), "--db", other, cwd=proj)
    assert res.returncode == 2 and "no plan for that step" in res.stderr, res.stderr
    assert json.loads(run_cli("runs", "--db", other, "--json", cwd=proj).stdout) == []
    res = run_cli("import", str(proj / "whole.jsonl"), "--db", other, cwd=proj)
    assert res.returncode == 0, res.stderr


def test_graphs_says_when_there_is_no_graphs_folder(tmp_path: Path) -> None:
    res = run_cli("graphs", cwd=tmp_path, env=cli_env(WORKBENCH_GRAPHS=str(tmp_path / "nowhere")))
    assert res.returncode == 0 and res.stdout == ""
    assert f"no graphs folder at {tmp_path / 'nowhere'}" in res.stderr


def test_checkpoint_is_refused_by_name(proj: Path) -> None:
    res = run_cli("sql", "CHECKPOINT", cwd=proj)
    assert res.returncode == 2 and "CHECKPOINT statements are refused" in res.stderr


# --------------------------------------------------------------------------- sys.exit in a node

EXITS = '''
import sys
from typing import Annotated, TypedDict
from workbench import END, START, Graph, RetryPolicy, Send, append

class S(TypedDict):
    log: Annotated[list[str], append]

graph = Graph("exits", S)

@graph.node
def first(state: S) -> dict:
    return {"log": ["first"]}

@graph.node(retry=RetryPolicy(attempts=3, initial_delay=0.0))
def leaves(state: S) -> dict:
    sys.exit("bye from node leaves")

graph.sequence(START, "first", "leaves", END)
'''


def test_sys_exit_in_a_node_fails_the_node_with_its_message(tmp_path: Path) -> None:
    """``sys.exit()`` in a node's body (sync or async, alone or beside siblings) fails the node,
    once (no retry), with what it said; the run is failed, not left running, and the CLI says
    so in one line, exit 1 (it ended with exit 2 and no word, the run still 'running')."""
    class S(TypedDict):
        log: Annotated[list[str], append]

    def sync_exit(value: Any) -> dict[str, Any]:
        sys.exit(3)

    async def async_exit(value: Any) -> dict[str, Any]:
        sys.exit()

    for name, body, fan in (("alone", sync_exit, False), ("beside", sync_exit, True), ("async", async_exit, False)):
        g = Graph(f"exit-{name}", S)
        g.node(name="leave")(body)
        if fan:
            g.route(START, lambda state: [Send("leave", i) for i in range(3)], targets=["leave"])
            g.edge("leave", END)
        else:
            g.sequence(START, "leave", END)
        with TraceStore(str(tmp_path / "lib.duckdb")) as store:
            result = Runner(g, store).run({})
            assert result.status == "failed", name
            code = "3" if body is sync_exit else ""
            assert f"node 'leave' called sys.exit({code})" in (result.error or ""), (name, result.error)
            assert store.get_run(result.run_id)["status"] == "failed"

    (tmp_path / "exits.py").write_text(EXITS)
    res = run_cli("run", str(tmp_path / "exits.py"), "--db", str(tmp_path / "cli.duckdb"), cwd=tmp_path,
                  env=cli_env())
    assert res.returncode == 1, (res.stdout, res.stderr)
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "node 'leaves' called sys.exit('bye from node leaves')" in errors[0], res.stderr
    with TraceStore(str(tmp_path / "cli.duckdb")) as store:
        [run] = store.list_runs()
        assert run["status"] == "failed"
        tries = store.query("SELECT count(*) FROM steps WHERE run_id = ? AND node = 'leaves'", [run["run_id"]])
        assert tries == [(1,)]


class _OwnBase(BaseException):
    pass


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise ValueError("str() fails")


def test_a_base_exception_or_an_unprintable_error_from_a_node_is_the_nodes_failure(tmp_path: Path) -> None:
    """A node raising ``GeneratorExit``, a ``CancelledError`` of its own (a library leaking a
    cancel) or a ``BaseException`` class of its own went past the runner: a raw traceback, the
    run left interrupted, every resume failing the same way. An exception whose ``str()`` fails
    crashed the runner ("internal error"). Each is now the node's failure, recorded, once (no
    retry); a sibling it fails is cancelled as before, and a real cancellation (a timeout) is
    still a timeout."""
    import asyncio

    class S(TypedDict):
        log: Annotated[list[str], append]

    raised: list[BaseException] = [GeneratorExit(), asyncio.CancelledError(), _OwnBase("mine"), _UnprintableError()]
    expected = ["node 'leave' raised GeneratorExit: a BaseException",
                "node 'leave' raised CancelledError of its own (the run did not cancel it)",
                "node 'leave' raised _OwnBase: mine: a BaseException",
                "_UnprintableError: <str() of the exception failed>"]
    for exc, words in zip(raised, expected, strict=True):
        def sync_body(value: Any, exc: BaseException = exc) -> dict[str, Any]:
            raise exc

        async def async_body(value: Any, exc: BaseException = exc) -> dict[str, Any]:
            raise exc

        for name, body, fan in (("alone", sync_body, False), ("beside", sync_body, True),
                                ("async", async_body, False), ("async-beside", async_body, True)):
            g = Graph(f"escape-{name}", S)
            g.node(name="leave", retry=RetryPolicy(attempts=3, initial_delay=0.0))(body)
            if fan:
                g.route(START, lambda state: [Send("leave", i) for i in range(3)], targets=["leave"])
                g.edge("leave", END)
            else:
                g.sequence(START, "leave", END)
            with TraceStore(str(tmp_path / "lib.duckdb")) as store:
                result = Runner(g, store).run({})
                assert result.status == "failed", (name, exc)
                assert words in (result.error or ""), (name, result.error)
                assert store.get_run(result.run_id)["status"] == "failed"
                tries = store.query("SELECT max(attempt) FROM steps WHERE run_id = ?", [result.run_id])
                assert tries == [(1,)] or isinstance(exc, _UnprintableError), (name, tries)

    slow = Graph("slow", S)

    @slow.node(timeout=0.05)
    async def wait(state: S) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    slow.sequence(START, "wait", END)
    with TraceStore(str(tmp_path / "lib.duckdb")) as store:
        result = Runner(slow, store).run({})
    assert result.status == "failed" and "timed out after 0.05s" in (result.error or ""), result.error


def test_a_run_id_a_user_gives_is_one_any_run_could_have(tmp_path: Path) -> None:
    """'/' names subgraph runs, 'last' is the CLI's newest run, and an id is printed everywhere."""
    from workbench.errors import InputError

    class S(TypedDict):
        log: Annotated[list[str], append]

    g = Graph("ids", S)
    g.add_node("a", lambda state: {"log": ["a"]})
    g.sequence(START, "a", END)
    with TraceStore(str(tmp_path / "ids.duckdb")) as store:
        runner = Runner(g, store)
        for bad in ("last", "a/1.0.0", "", "x\x1b[2J", " padded"):
            with pytest.raises(InputError, match="run id"):
                runner.run({}, run_id=bad)
            with pytest.raises(InputError, match="run id"):
                runner.continue_run(runner.run({}).run_id, {}, new_run_id=bad)
        assert runner.run({}, run_id="order-42").run_id == "order-42"


def test_a_run_interrupted_after_a_resume_lists_the_steps_it_committed(tmp_path: Path) -> None:
    """A run waited at step 1 (``last_step`` 0 recorded at that stop), was answered (step 1
    committed) and its process died in step 2: ``runs`` listed it with 0 steps, the stop before's
    figure. A run that is running, or died running, counts what it has committed."""
    from workbench import interrupt

    class S(TypedDict):
        log: Annotated[list[str], append]

    def ask(state: Any) -> dict[str, Any]:
        return {"log": [str(interrupt("go on?"))]}

    def dies(state: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # the process stops in step 2

    g = Graph("asks", S)
    g.node(name="ask")(ask)
    g.node(name="dies")(dies)
    g.sequence(START, "ask", "dies", END)
    db = str(tmp_path / "t.duckdb")
    with TraceStore(db) as store:
        first = Runner(g, store).run({})
        assert first.status == "waiting" and store.list_runs()[0]["steps"] == 0
        with pytest.raises(KeyboardInterrupt):
            Runner(g, store).resume(first.run_id, "yes")
    with TraceStore(db) as store:
        [run] = store.list_runs()
        assert run["steps"] == 1 and store.last_committed_step(first.run_id) == 1
        res = run_cli("runs", "--db", db, "--json", cwd=tmp_path)
        assert json.loads(res.stdout)[0]["steps"] == 1


class _Text(TypedDict, total=False):
    s: str


def test_text_with_an_unpaired_surrogate_fails_the_node_not_the_run(store: TraceStore) -> None:
    """A file name decoded with ``surrogateescape`` in a node's error could not be encoded for
    the record: the runner died with "cannot record", the run was left interrupted for good. A
    prompt holding one reached the model, then its record failed the same way."""
    name = b"/data/caf\xe9.txt".decode("utf-8", "surrogateescape")
    g = Graph("surrogate_error", _Text)

    @g.node
    def read(state: _Text) -> dict[str, Any]:
        raise FileNotFoundError(name)

    g.sequence(START, "read", END)
    result = Runner(g, store).run({})
    assert result.status == "failed" and result.error is not None
    assert "FileNotFoundError: /data/caf\\udce9.txt" in result.error
    [row] = store.query_dicts("SELECT status, error, traceback FROM steps WHERE run_id = ?", [result.run_id])
    assert row["status"] == "failed" and "caf\\udce9" in row["error"] and "caf\\udce9" in row["traceback"]
    assert store.get_run(result.run_id)["status"] == "failed"

    asked: list[Any] = []
    g2 = Graph("surrogate_prompt", _Text)

    @g2.node
    def ask(state: _Text, ctx: Any) -> dict[str, Any]:
        asked.append(1)
        return {"s": ctx.llm(f"summarise {name}", model="workbench-demo/echo").text}

    g2.sequence(START, "ask", END)
    failed = Runner(g2, store).run({})
    assert failed.status == "failed" and asked == [1]
    assert "SerializationError: ctx.llm messages" in (failed.error or "") and "surrogate" in (failed.error or "")
    assert store.query("SELECT count(*) FROM llm_calls WHERE run_id = ?", [failed.run_id]) == [(0,)]


def test_a_retry_on_function_that_raises_fails_the_node_not_the_runner(store: TraceStore,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """``retry_on=lambda e: e.status_code == 429`` on an error without ``status_code``: the
    AttributeError escaped the runner (an internal error, the run left interrupted). It counts
    as no match now: the node's own error fails the run, and a warning says why."""
    tries: list[int] = []
    g = Graph("retry_on_raises", _Text)

    @g.node(retry=RetryPolicy(attempts=3, initial_delay=0, retry_on=lambda e: e.status_code == 429))
    def call(state: _Text) -> dict[str, Any]:
        tries.append(1)
        raise ValueError("bad input")

    g.sequence(START, "call", END)
    with caplog.at_level("WARNING", logger="workbench.runtime"):
        result = Runner(g, store).run({})
    assert result.status == "failed" and tries == [1]
    assert "ValueError: bad input" in (result.error or "")
    assert store.get_run(result.run_id)["status"] == "failed"
    assert any("retry_on <lambda> raised AttributeError" in r.getMessage() and "not retried" in r.getMessage()
               for r in caplog.records)


def test_runner_options_of_the_wrong_kind_are_one_clear_error(store: TraceStore) -> None:
    """``Runner(max_concurrency=0)`` hung the first fan-out for good, ``-1`` and ``"2"`` were raw
    ValueError/TypeError with the run left interrupted; ``break_before="inc"`` was read as the
    breakpoints ``i``, ``n`` and ``c``."""
    from workbench.errors import InputError

    g = Graph("options_kinds", _Text)

    @g.node
    def inc(state: _Text) -> dict[str, Any]:
        return {"s": "done"}

    g.sequence(START, "inc", END)
    for bad in (0, -1, "2", 2.5, True):
        with pytest.raises(InputError, match=r"^max_concurrency must be a whole number of 1 or more, got"):
            Runner(g, store, max_concurrency=bad)
    paused = Runner(g, store, max_concurrency=1).run({}, break_before="inc")
    assert paused.status == "paused" and paused.step == 1
    assert store.query("SELECT count(*) FROM wb_runs WHERE status = 'interrupted'") == [(0,)]


def test_an_async_node_that_keeps_its_deadline_from_firing_still_times_out(store: TraceStore) -> None:
    """``timeout=0.2`` on an async node that swallowed the cancellation and returned after
    0.7 s, or that blocked the event loop for a second: both were recorded completed. An
    attempt that took longer than its timeout fails with NodeTimeoutError, as documented."""
    import asyncio
    import time as clock

    for how in ("swallow", "block"):
        g = Graph(f"deadline_{how}", _Text)

        @g.node(timeout=0.2)
        async def slow(state: _Text, how: str = how) -> dict[str, Any]:
            if how == "swallow":
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    await asyncio.sleep(0.5)
            else:
                clock.sleep(0.5)
            return {"s": "late"}

        g.sequence(START, "slow", END)
        result = Runner(g, store).run({})
        assert result.status == "failed", how
        assert "NodeTimeoutError: node 'slow' timed out after 0.2s" in (result.error or ""), how
        assert result.state.get("s") != "late"
        [row] = store.query_dicts("SELECT status, error FROM steps WHERE run_id = ?", [result.run_id])
        assert row["status"] == "failed" and "without giving way to its deadline" in row["error"]


def test_a_huge_exception_message_fails_the_node_with_its_text_cut(store: TraceStore) -> None:
    """A node raising an exception whose message is megabytes long: over the store's value
    limit its step could not be recorded (the command failed, the run stuck interrupted). The
    recorded error keeps the first 2,000 characters and says how many were left out; the
    traceback keeps its start and its end."""
    g = Graph("huge_error", _Text)

    @g.node
    def boom(state: _Text) -> dict[str, Any]:
        raise RuntimeError("start " + "z" * 1_500_000 + " end")

    g.sequence(START, "boom", END)
    result = Runner(g, store).run({})
    assert result.status == "failed"
    [row] = store.query_dicts("SELECT error, traceback FROM steps WHERE run_id = ?", [result.run_id])
    assert row["error"].startswith("RuntimeError: start zzz") and row["error"].endswith("(1,498,010 more characters)")
    assert len(row["error"]) < 2_100 and len(result.error or "") < 2_200
    assert len(row["traceback"]) < 65_000 and "characters left out" in row["traceback"]
    assert row["traceback"].rstrip().endswith("z end")

"""Shared helpers of the fault, hostile-input and property tests (tests/reliability/).

Not a conftest.py on purpose: another test module lives in this directory, and helpers are
imported explicitly (``from faults_helpers import ...``).

The main piece is :class:`CliFarm`: it runs the ``workbench`` command many times quickly. A helper
process imports workbench (and DuckDB, rich) once, then *forks* a fresh child for each command:
the child sets ``sys.argv``, points its stdout/stderr at files and calls the console script's
entry point, exactly as the installed ``workbench`` script does — only without paying half a
second of imports each time. A child that dies of a signal (an engine crash) kills nothing else,
and is reported as such. That makes matrices of thousands of real CLI invocations affordable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:  # tests/conftest.py's helpers (cli_env, workbench_cmd)
    sys.path.insert(0, str(TESTS))

from conftest import cli_env, run_cli, workbench_cmd  # noqa: E402, F401  (re-exported for the tests)

TIMEOUT = 120  # a safety net against a hung subprocess, never used to synchronise


# --------------------------------------------------------------------------- small helpers


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stderr_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def one_clean_line(stderr: str, stdout: str = "") -> str:
    """Exactly one non-empty stderr line, and no traceback anywhere."""
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    lines = stderr_lines(stderr)
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{stderr}"
    return lines[0]


def wb(*args: str, cwd: str | Path, env: dict[str, str] | None = None, stdin: str | None = None,
       timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The installed ``workbench`` console script, in a real subprocess."""
    return subprocess.run([*workbench_cmd(), *args], cwd=cwd, env=env or cli_env(), capture_output=True,
                          text=True, timeout=timeout, input=stdin)


# --------------------------------------------------------------------------- entry points


def declared_entry_point() -> str:
    """``module:function`` of the ``workbench`` console script, as pyproject.toml declares it."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return str(data["project"]["scripts"]["workbench"])


def installed_script_is_guarded() -> bool:
    """Whether the installed ``workbench`` script goes through the crash guard (guard.py)."""
    exe = Path(sys.executable).parent / "workbench"
    try:
        return "workbench.guard" in exe.read_text(errors="replace")
    except OSError:
        return False


GUARD_ENTRY = "workbench.guard:main"
GUARD_WIRED = declared_entry_point() == GUARD_ENTRY


# --------------------------------------------------------------------------- the CLI farm

_FARM = textwrap.dedent(r'''
    import gc, importlib, json, os, signal, sys, time, traceback

    # What the commands under test import lazily: import it once, before any fork.
    import duckdb  # noqa: F401
    import rich.console, rich.table  # noqa: F401
    import workbench.cli, workbench.guard, workbench.store, workbench.sqlquery, workbench.history  # noqa: F401

    # Out of the collector's sight: a child's collections would otherwise write to every imported
    # object and copy the shared heap page by page (crash_driver._freeze_heap says more).
    gc.collect()
    gc.freeze()

    def child(job, out_path, err_path):
        os.chdir(job["cwd"])
        fd_in = os.open(os.devnull, os.O_RDONLY)
        fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd_in, 0)
        os.dup2(fd_out, 1)
        os.dup2(fd_err, 2)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        module, _, func = job["entry"].partition(":")
        sys.argv = ["workbench", *job["argv"]]
        code = 0
        try:
            result = getattr(importlib.import_module(module), func)()
            code = 0 if result is None else int(result)
        except SystemExit as exc:  # what the console script's sys.exit(main()) does
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

    def run_batch(batch):
        jobs, parallel, tmp, timeout = batch["jobs"], batch["parallel"], batch["tmp"], batch["timeout"]
        results = [None] * len(jobs)
        running = {}
        todo = list(range(len(jobs)))
        while todo or running:
            while todo and len(running) < parallel:
                i = todo.pop(0)
                out_path, err_path = os.path.join(tmp, f"{i}.out"), os.path.join(tmp, f"{i}.err")
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    child(jobs[i], out_path, err_path)
                running[pid] = (i, time.monotonic(), out_path, err_path)
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                now = time.monotonic()
                for p, (i, started, _o, _e) in list(running.items()):
                    if now - started > timeout:
                        os.kill(p, signal.SIGKILL)
                        results[i] = {"timeout": True}
                time.sleep(0.002)
                continue
            i, _started, out_path, err_path = running.pop(pid)
            with open(out_path, encoding="utf-8", errors="replace") as fh:
                out = fh.read()
            with open(err_path, encoding="utf-8", errors="replace") as fh:
                err = fh.read()
            os.unlink(out_path)
            os.unlink(err_path)
            res = {"stdout": out, "stderr": err, "timeout": bool(results[i] and results[i].get("timeout"))}
            if os.WIFSIGNALED(status):
                res["returncode"] = -os.WTERMSIG(status)
            else:
                res["returncode"] = os.WEXITSTATUS(status)
            results[i] = res
        return results

    for line in sys.stdin:
        batch = json.loads(line)
        out = json.dumps(run_batch(batch))
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
''')


@dataclass
class Job:
    argv: list[str]
    cwd: str
    entry: str = GUARD_ENTRY


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    timeout: bool = False


class CliFarm:
    """Runs batches of ``workbench`` commands in forked children of one pre-imported process."""

    def __init__(self, tmp: str | Path, parallel: int | None = None, env: dict[str, str] | None = None) -> None:
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.parallel = parallel or max(2, min(8, (os.cpu_count() or 2)))
        self.proc = subprocess.Popen([sys.executable, "-c", _FARM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env or cli_env(), cwd=self.tmp)

    def run(self, jobs: list[Job], timeout: float = 60.0) -> list[Result]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        batch = {"jobs": [vars(j) for j in jobs], "parallel": self.parallel, "tmp": self.tmp, "timeout": timeout}
        self.proc.stdin.write(json.dumps(batch) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI farm died (exit {self.proc.wait()})")
        return [Result(r.get("returncode", -9), r.get("stdout", ""), r.get("stderr", ""), r.get("timeout", False))
                for r in json.loads(line)]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- crashing recorder

# A subprocess that records through the store and then SIGKILLs itself, without closing anything
# (the pattern of tests/test_store.py). "hold_writer" replaces the store's batch loader with one
# that blocks forever, so what follows stays in the journal only.
CRASHER = textwrap.dedent("""
    import json, os, signal, sys, threading
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    db, graph_ref, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    store = TraceStore(db)
    graph = load_graph(graph_ref)
    gate = threading.Event()  # never set: a held-back writer never reaches DuckDB

    def held_back(batch):
        gate.wait()

    out = []
    for action in plan:
        if action == "hold_writer":
            store.flush()
            store._load_own = held_back
        elif action == "flush":
            store.flush()
        else:
            r = Runner(graph, store).run(action)
            out.append({"run_id": r.run_id, "status": r.status, "state": r.state})
    print(json.dumps(out), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def crash_record(db: str, graph_ref: str, plan: list[Any], cwd: str | Path) -> list[dict[str, Any]]:
    """Run ``plan`` in a subprocess that SIGKILLs itself at the end; return its runs."""
    res = subprocess.run([sys.executable, "-c", CRASHER, db, graph_ref, json.dumps(plan)], capture_output=True,
                         text=True, env=cli_env(), timeout=TIMEOUT, cwd=cwd)
    assert res.returncode == -9, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def copy_store(db: str | Path, dest_dir: str | Path) -> str:
    """Copy a store file and its spool into ``dest_dir``; return the new database path."""
    src = Path(db)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest / src.name)
    for extra in (".wal",):
        if Path(str(src) + extra).exists():
            shutil.copy2(str(src) + extra, str(dest / src.name) + extra)
    spool = Path(str(src) + ".spool")
    if spool.exists():
        shutil.copytree(spool, str(dest / src.name) + ".spool", ignore=shutil.ignore_patterns("holders", "waiters"))
    return str(dest / src.name)


# --------------------------------------------------------------------------- a graph for the fault tests

# Deterministic and model-free: every step appends one item (of a chosen size) and adds to a
# counter, and every 5th tick fans out to two parallel branches that append too; so a lost or
# repeated step shows as a missing or duplicate item.
LEDGER_GRAPH = textwrap.dedent('''
    """A ledger: __STEPS__ ticks, each appending an item of __SIZE__ bytes; fan-outs every 5th tick."""

    from __future__ import annotations

    import hashlib
    from typing import Annotated, Any, TypedDict

    from workbench import END, START, Graph, Send, add, append

    STEPS = __STEPS__
    SIZE = __SIZE__


    class Ledger(TypedDict):
        n: int
        items: Annotated[list[str], append]
        side: Annotated[list[str], append]
        total: Annotated[int, add]


    def blob(label: str) -> str:
        h = hashlib.sha256(label.encode()).hexdigest()
        return (h * (SIZE // 64 + 1))[:SIZE]


    graph = Graph("ledger", Ledger, max_steps=10000, description="ticks that append, with fan-outs")


    @graph.node
    def tick(state: Ledger) -> dict[str, Any]:
        n = state["n"] + 1
        return {"n": n, "items": [f"{n}:{blob(str(n))}"], "total": n}


    def after_tick(state: Ledger) -> Any:
        n = state["n"]
        if n >= STEPS:
            return END
        if n % 5 == 0:
            return [Send("branch", {"n": n, "k": k}) for k in range(2)]
        return "tick"


    @graph.node
    def branch(arg: dict[str, Any]) -> dict[str, Any]:
        return {"side": [f"{arg['n']}.{arg['k']}"], "total": 100 * arg["k"]}


    graph.edge(START, "tick")
    graph.route("tick", after_tick, targets=["tick", "branch", END])
    graph.edge("branch", "tick")
''')


def make_project(root: str | Path, *, steps: int = 12, size: int = 64) -> Path:
    """A project directory whose ``graphs/`` holds the ledger graph (resume finds it by name)."""
    proj = Path(root)
    (proj / "graphs").mkdir(parents=True, exist_ok=True)
    text = LEDGER_GRAPH.replace("__STEPS__", str(steps)).replace("__SIZE__", str(size))
    (proj / "graphs" / "ledger.py").write_text(text)
    return proj


def ledger_reference(steps: int = 12, size: int = 64) -> dict[str, Any]:
    """The final state of an uninterrupted ledger run (computed from the graph's rules)."""

    def blob(label: str) -> str:
        h = hashlib.sha256(label.encode()).hexdigest()
        return (h * (size // 64 + 1))[:size]

    items = [f"{n}:{blob(str(n))}" for n in range(1, steps + 1)]
    side = [f"{n}.{k}" for n in range(5, steps, 5) for k in range(2)]
    total = sum(range(1, steps + 1)) + 100 * len(range(5, steps, 5))
    return {"n": steps, "items": items, "side": side, "total": total}

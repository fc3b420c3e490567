"""The child side of the crash matrix (test_crash_matrix.py): one process that runs, resumes,
answers or imports through workbench, with a kill point armed.

A *kill point* is a named site and an occurrence number: ``{"site": "frame", "nth": 7, "how":
"torn"}`` kills the process with SIGKILL at the 7th journal frame, after writing part of it. The
process kills itself, synchronously, at that exact point of its progress: no timer is involved,
so a trial replays the same way from its seed. The sites (counted in every process, so that a
trial can choose its kill point from what an uninterrupted process did):

``py``, ``py.thread``
    a call of a function defined in the workbench package or a graph file, on the main thread or
    on another thread (the store's writer, parallel tasks), seen through ``sys.setprofile``: a
    kill at an arbitrary point of the Python code. Counted in processes whose spec says
    ``count_py`` (the default): the matrix leaves it off only in processes with no kill point
    whose counts choose none (the profiler costs a Python call per function call).
``frame``
    a journal frame (``Journal.append``); ``how`` = ``before`` (nothing written), ``after`` (the
    whole frame written) or ``torn`` (the first ``cut`` fraction of its bytes written, as a kill
    during a large ``write`` can leave it).
``sql``, ``sql.main``, ``sql.writer``
    a statement sent to DuckDB (any thread, the main thread, another thread); killed before it runs.
``commit``, ``commit.main``, ``commit.writer``, ``commit.load``, ``commit.claim``, ``commit.other``
    a ``COMMIT`` (``how`` = ``before`` or ``after`` it); ``load`` is a transaction that moves a
    journal's load position (the writer, or recovery of a dead process's journal), ``claim`` one
    that takes a run over (resume, answer).
``writer.load``, ``writer.roll``
    the background writer starting to load a batch (``TraceStore._load_own``), or considering a
    fresh journal after one (``TraceStore._maybe_roll``), when the store has them. A spec's
    ``roll_bytes`` lowers the size at which the store starts a fresh journal, so that rolling
    happens under the kills too.
``llm.before``, ``llm.after``
    inside the demo model's answer, before and after it is computed.
``node.enter``, ``node.exit``, ``tool.before``, ``tool.after``
    inside the matrix graphs' nodes and their recorded tool (tests/reliability/graphs/).

Graphs reach this module as ``sys.modules["crash_driver"]`` (and work without it). Side effects
are logged to ``$CRASH_EFFECTS``, outside the store, one JSON line per event with one ``write``:
``{"kind": "effect", "key", "nonce", "pid"}`` for a tool's or the model's effect (the nonce is what
the tool returns, so the recording says which effect it recorded) and ``{"kind": "exec", ...}``
for a node body starting.

Progress goes to the file ``spec["progress"]`` (``KILL site n``, ``RESULT {...}``, ``COUNTS {...}``).
``serve()`` is the fork server: it imports workbench, DuckDB (its default instance brought down
to no worker thread) and litellm (on request) once and forks a child per process the matrix
needs; ``child_main`` is what each child, or a fresh interpreter, runs.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import re
import secrets
import signal
import sys
import threading
import traceback
from typing import Any

PACKAGE_DIR = ""  # set by install(): the workbench package's directory
GRAPHS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graphs")

_counts: dict[str, int] = {}
_kill: dict[str, Any] | None = None
_lock = threading.Lock()
_progress_fd = -1
_effects_path = ""
_nonces = 0
_installed = False


# --------------------------------------------------------------------------- kill points


def say(line: str) -> None:
    """One line to the progress file (one ``write``: a kill cannot split it)."""
    if _progress_fd >= 0:
        os.write(_progress_fd, (line.rstrip("\n") + "\n").encode())


def hit(*sites: str) -> bool:
    """Count one occurrence of each site; True when the armed kill point is one of them."""
    armed = False
    with _lock:
        for site in sites:
            n = _counts[site] = _counts.get(site, 0) + 1
            if _kill is not None and _kill["site"] == site and _kill["nth"] == n:
                armed = True
    return armed


def die() -> None:
    """SIGKILL this process now (nothing is flushed, closed or unlocked)."""
    assert _kill is not None
    say(f"KILL {_kill['site']} {_kill['nth']} {_kill.get('how', '')}".rstrip())
    while True:
        os.kill(os.getpid(), signal.SIGKILL)


def point(*sites: str) -> None:
    if hit(*sites):
        die()


def how() -> str:
    return str((_kill or {}).get("how") or "before")


# --------------------------------------------------------------------------- side effects


def _log(entry: dict[str, Any]) -> None:
    if not _effects_path:
        return
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(_effects_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def new_nonce() -> str:
    global _nonces
    with _lock:
        _nonces += 1
        n = _nonces
    return f"fx-{os.getpid()}-{n}-{secrets.token_hex(3)}"


def effect(key: str) -> str:
    """A tool's side effect: one line in the effect log; returns its nonce."""
    point("tool.before")
    nonce = new_nonce()
    _log({"kind": "effect", "key": key, "nonce": nonce, "pid": os.getpid()})
    point("tool.after")
    return nonce


def node_point(site: str, ctx: Any) -> None:
    """Called by the matrix graphs' nodes: ``node.enter`` also logs the execution."""
    if site == "node.enter" and ctx is not None:
        _log({"kind": "exec", "run": ctx.run_id, "step": ctx.step, "task": ctx.task,
              "attempt": ctx.attempt, "node": ctx.node, "pid": os.getpid()})
    point(site)


NONCE = re.compile(r"fx-\d+-\d+-[0-9a-f]+")


# --------------------------------------------------------------------------- hooks


class _Connection:
    """A DuckDB connection that reports each statement (and each COMMIT) as a kill point."""

    def __init__(self, real: Any) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_tx", [])

    def _where(self) -> str:
        return "main" if threading.current_thread() is threading.main_thread() else "writer"

    def execute(self, sql: Any, *args: Any, **kwargs: Any) -> Any:
        real = self._real
        text = sql.strip().upper() if isinstance(sql, str) else ""
        where = self._where()
        point("sql", f"sql.{where}")
        if text.startswith("BEGIN"):
            self._tx.clear()
        self._tx.append(text)
        if text.startswith("COMMIT"):
            tx = " ".join(self._tx)
            claim = ("SET STATUS = 'RUNNING'" in tx and "OWNER = ?" in tx) or "SET RESPONSE" in tx
            tag = "load" if "WB_JOURNALS" in tx else "claim" if claim else "other"
            armed = hit("commit", f"commit.{where}", f"commit.{tag}")
            if armed and how() == "before":
                die()
            out = real.execute(sql, *args, **kwargs)
            if armed:
                die()
            self._tx.clear()
        else:
            out = real.execute(sql, *args, **kwargs)
        return self if out is real else out

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return _Connection(self._real.cursor(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real, name, value)

    def __enter__(self) -> Any:
        self._real.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._real.__exit__(*exc)


_MAIN = threading.get_ident()


def _profiler(frame: Any, event: str, arg: Any, _cache: dict[Any, bool] = {}) -> None:  # noqa: B006
    if event != "call":
        return
    code = frame.f_code
    mine = _cache.get(code)
    if mine is None:
        name = code.co_filename
        mine = _cache[code] = name.startswith(PACKAGE_DIR) or name.startswith(GRAPHS_DIR)
    if mine:
        point("py" if threading.get_ident() == _MAIN else "py.thread")


def install(spec: dict[str, Any]) -> None:
    """Arm the kill point and wrap the seams it is counted at."""
    global _kill, _progress_fd, _effects_path, _installed, _MAIN, PACKAGE_DIR
    _kill = spec.get("kill")
    _effects_path = spec.get("effects") or ""
    if spec.get("progress"):
        _progress_fd = os.open(spec["progress"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    say(f"PID {os.getpid()}")
    if _installed:
        return
    _installed = True

    import duckdb

    import workbench
    import workbench.llm.demo as demo
    from workbench.store import journal as journal_module
    from workbench.store.store import TraceStore

    PACKAGE_DIR = os.path.dirname(os.path.abspath(workbench.__file__)) + os.sep

    real_connect = duckdb.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        return _Connection(real_connect(*args, **kwargs))

    duckdb.connect = connect

    Journal = journal_module.Journal
    real_append = Journal.append

    def append(self: Any, records: Any) -> Any:
        armed = hit("frame")
        if armed and how() == "before":
            die()
        if armed and how() == "torn" and isinstance(getattr(self, "_fd", None), int):
            data = journal_module.encode_frame(self.frames + 1, list(records))
            cut = int(len(data) * float((_kill or {}).get("cut", 0.5)))
            os.write(self._fd, data[:max(1, min(len(data) - 1, cut))])
            die()
        out = real_append(self, records)
        if armed:
            die()
        return out

    Journal.append = append  # type: ignore[method-assign]

    if spec.get("roll_bytes"):  # roll journals often (the store's default is 32 MiB)
        import workbench.store.store as store_module

        if hasattr(store_module, "_JOURNAL_ROLL_BYTES"):
            store_module._JOURNAL_ROLL_BYTES = int(spec["roll_bytes"])  # type: ignore[attr-defined]
    real_roll = getattr(TraceStore, "_maybe_roll", None)
    if real_roll is not None:
        def maybe_roll(self: Any, *args: Any, **kwargs: Any) -> Any:
            point("writer.roll")
            return real_roll(self, *args, **kwargs)

        TraceStore._maybe_roll = maybe_roll  # type: ignore[method-assign]

    real_load = getattr(TraceStore, "_load_own", None)
    if real_load is not None:
        def load_own(self: Any, batch: Any) -> Any:
            point("writer.load")
            return real_load(self, batch)

        TraceStore._load_own = load_own  # type: ignore[method-assign]

    real_reply = demo.demo_reply

    def demo_reply(model: str, messages: list[dict[str, Any]]) -> str:
        point("llm.before")
        text = real_reply(model, messages)
        key = "llm:" + json.dumps(messages, sort_keys=True)
        nonce = new_nonce()
        _log({"kind": "effect", "key": key, "nonce": nonce, "pid": os.getpid()})
        point("llm.after")
        return f"{text} #{nonce}"

    demo.demo_reply = demo_reply

    _MAIN = threading.get_ident()
    # The ``py`` sites cost a Python call per function call: counted only where they are used (a
    # process armed with a kill point, or one whose counts choose a kill point).
    if spec.get("count_py", True):
        threading.setprofile(_profiler)
        sys.setprofile(_profiler)


# --------------------------------------------------------------------------- operations


def _execute(spec: dict[str, Any]) -> int:
    op = spec["op"]
    if op == "cli":
        from workbench.cli import main as cli_main

        return int(cli_main(spec["argv"]) or 0)

    from workbench.errors import WorkbenchError
    from workbench.loader import load_graph
    from workbench.runtime import Runner
    from workbench.store import TraceStore

    graph = load_graph(spec["graph"])
    try:
        with TraceStore(spec["db"]) as store:
            runner = Runner(graph, store)
            if op == "run":
                result = runner.run(spec.get("input"))
            elif op == "resume":
                if "value" in spec:
                    result = runner.resume(spec["run_id"], spec["value"])
                else:
                    result = runner.resume(spec["run_id"])
            else:
                raise ValueError(f"unknown op {op!r}")
    except WorkbenchError as exc:  # what the CLI would print as one line
        say("RESULT " + json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    say("RESULT " + json.dumps(result.to_json(), default=str))
    return 0


def child_main(spec: dict[str, Any]) -> int:
    """Run one operation with its kill point armed; returns the exit code."""
    os.environ.update(spec.get("env") or {})
    install(spec)
    try:
        code = _execute(spec)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    say("COUNTS " + json.dumps(_counts, sort_keys=True))
    return code


# --------------------------------------------------------------------------- fork server


def _child(job: dict[str, Any]) -> None:
    """In a freshly forked child: become the process the job describes, run it, exit."""
    code = 1
    try:
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        fd_in = os.open(os.devnull, os.O_RDONLY)
        fd_out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fd_err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd_in, 0)
        os.dup2(fd_out, 1)
        os.dup2(fd_err, 2)
        for fd in (fd_in, fd_out, fd_err):
            os.close(fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        try:
            code = child_main(job["spec"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        # What the interpreter does at exit: wait for non-daemon threads, run atexit handlers.
        threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _os_threads() -> int:
    """The process's threads, native ones included (a process with threads must not fork)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # no procfs: what Python knows of
        return threading.active_count()


def _freeze_heap() -> None:
    """Take everything the server imported out of the collector's sight before forking.

    A child shares the server's memory until it writes to it, and the cyclic collector writes to
    every object it examines: a child's first full collection walked all of litellm, workbench
    and DuckDB's Python side and copied most of the server's heap, page by page — about two
    thirds of each child's CPU. Frozen objects are never examined; they stay alive in the child
    exactly as they would have anyway (module-level state)."""
    gc.collect()
    gc.freeze()


def serve() -> None:
    """The fork server: one JSON job per stdin line; replies ``{"pid"}`` then ``{"returncode"}``."""
    # What every child needs, imported once. Not DuckDB: importing it starts a native thread, and
    # a process with threads must not fork.
    import rich.console
    import rich.table  # noqa: F401

    import workbench.cli
    import workbench.history
    import workbench.loader
    import workbench.runtime
    import workbench.store
    import workbench.transfer  # noqa: F401

    # DuckDB too, once: importing the ``duckdb`` package parses a type name through the engine's
    # default in-memory instance, which starts it with a worker thread (about 15 ms of CPU in
    # every child, when each child imported it). A process with threads must not fork: that
    # instance, which workbench never uses (every store is an instance of its own, with the
    # engine's defaults), is set to one thread, which stops its worker before the first fork.
    duckdb = importlib.import_module("duckdb")
    duckdb.default_connection().execute("SET threads = 1")

    assert _os_threads() == 1, "the fork server must not have a thread when it forks"
    out = sys.stdout
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("warm") == "litellm":
            from workbench.llm.client import litellm_module

            litellm_module()
            assert _os_threads() == 1
            out.write(json.dumps({"warm": True}) + "\n")
            out.flush()
            continue
        out.flush()
        sys.stderr.flush()
        _freeze_heap()
        pid = os.fork()
        if pid == 0:
            _child(job)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        out.write(json.dumps({"pid": pid, "returncode": code}) + "\n")
        out.flush()


if __name__ == "__main__":  # a fresh interpreter: python crash_driver.py SPEC.json
    sys.modules.setdefault("crash_driver", sys.modules[__name__])
    with open(sys.argv[1], encoding="utf-8") as fh:
        sys.exit(child_main(json.load(fh)))

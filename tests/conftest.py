"""Shared fixtures: an isolated trace store and an isolated copy of the demo project."""

from __future__ import annotations

import gc
import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# DuckDB instances of the suite (in-process and in its real processes, cli_env()) run each query
# on one thread: with more, the asking thread polls for the others' work at full CPU, and the
# suite's queries are small. A quarter of the lake tests' CPU, a tenth of the CLI tests'.
DB_THREADS = "1"

# Compiled bytecode is cached (in __pycache__/, ignored by git), PYTHONDONTWRITEBYTECODE or not.
# With it set (this machine sets it), every worker and every real `workbench` process of the suite
# compiled each workbench module, and pytest rewrote each test module's asserts, afresh: about a
# fifth of a subprocess-heavy test's CPU. Subprocesses get the same through cli_env().
sys.dont_write_bytecode = False

from workbench.store import TraceStore  # noqa: E402  (after the bytecode setting: cached too)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's model, database or graphs settings."""
    for var in ("WORKBENCH_MODEL", "WORKBENCH_FALLBACKS", "WORKBENCH_DB", "WORKBENCH_GRAPHS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("WORKBENCH_DB_THREADS", DB_THREADS)
    # The CLI's main() makes the "workbench" logger keep its records to itself (its warnings are
    # printed as one line each at the end): a test calling main() directly must not leave it so
    # for the next test of the process, whose caplog would then see nothing.
    import logging

    logger = logging.getLogger("workbench")
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "handlers", [h for h in logger.handlers if type(h).__name__ != "_Warnings"])


@pytest.fixture
def short_foreign_wait(monkeypatch: pytest.MonkeyPatch) -> float:
    """Stores opened in this process give up on a file held by a foreign (non-workbench) process
    after 0.2 s instead of the default 2 s: the same refusal, without idling. A test about the
    default wait itself opens one store before asking for this (test_faults.py)."""
    from workbench.store import database

    monkeypatch.setattr(database, "FOREIGN_TIMEOUT_S", 0.2)
    return 0.2


@pytest.fixture(scope="session")
def _empty_store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace store file as a new store leaves it, made once per test process."""
    path = tmp_path_factory.mktemp("empty-store") / "trace.duckdb"
    TraceStore(str(path)).close()
    assert not Path(f"{path}.wal").exists()
    return path


@pytest.fixture
def store(tmp_path: Path, _empty_store_file: Path) -> Iterator[TraceStore]:
    """A fresh trace store in a temporary directory, closed after the test: a copy of an empty
    store's file (creating the schema cost a third more than opening it), with a spool of its
    own made as for any store. Tests of creating a store open one themselves."""
    path = tmp_path / "trace.duckdb"
    shutil.copyfile(_empty_store_file, path)
    st = TraceStore(str(path))
    yield st
    st.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo project (graphs/) as the working directory."""
    proj = demo_project(tmp_path / "project")
    monkeypatch.chdir(proj)
    return proj


def copy_store(src: str | Path, dest: str | Path) -> str:
    """Copy a closed trace store (the DuckDB file and its spool directory, if any) to ``dest``.

    Shared fixtures record once into a template and hand each test a private copy: cheaper than
    recording again, and the same bytes every time.
    """
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    assert not Path(f"{src}.wal").exists(), f"{src} was not closed"
    shutil.copy(src, dest)
    spool = Path(f"{src}.spool")
    if spool.is_dir():
        shutil.copytree(spool, f"{dest}.spool")
    return str(dest)


def demo_project(root: Path) -> Path:
    """A copy of the demo project (graphs/, traces/) at ``root``."""
    shutil.copytree(REPO / "graphs", root / "graphs", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "traces").mkdir()
    return root


def workbench_cmd() -> list[str]:
    """The command that runs the real CLI in a subprocess (this interpreter's venv)."""
    exe = Path(sys.executable).parent / "workbench"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI call in a test: none of the caller's WORKBENCH_* settings, one
    DuckDB thread per query (``DB_THREADS``), the bundled price list, no background import of
    litellm at start-up (``WORKBENCH_PREWARM``: a real process would spend 1–2 s of CPU on it; a
    model call still imports it when it needs it; tests/test_startup.py checks the start-up
    import itself), and the suite's bytecode cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["WORKBENCH_PREWARM"] = "0"
    env["WORKBENCH_DB_THREADS"] = DB_THREADS
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (see sys.dont_write_bytecode above)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the CLI, in-process

# Environment variables whose effect an in-process call cannot reproduce: they act at interpreter
# start or are read once at import (module constants, tempfile's cached directory). A call that
# sets one of them runs in a real process instead.
_PROCESS_ONLY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "TMPDIR", "TEMP", "TMP", "WORKBENCH_MAX_VALUE_MB",
                     "WORKBENCH_NO_GUARD")
_cli_lock = threading.Lock()


def _needs_process(env: Mapping[str, str]) -> bool:
    current = os.environ
    return any(env.get(k) != current.get(k) for k in _PROCESS_ONLY_ENV)


def run_cli(*args: str, cwd: str | Path, env: Mapping[str, str] | None = None, stdin: str | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``workbench ARGS`` and return what a subprocess would: exit code, stdout, stderr.

    In-process (``workbench.cli.main`` with ``argv``): the environment is replaced by ``env``
    (default :func:`cli_env`), the working directory by ``cwd`` and stdin/stdout/stderr by
    buffers for the call, and restored after it; logging and remembered secrets are reset as a
    fresh process would have them, and a call that leaves a store open fails the test. A call
    whose ``env`` changes what only a new interpreter sees (``PYTHONPATH``, ``TMPDIR``, ...) runs
    the real command instead. What needs a real process on purpose (signals, kills, crashes, the
    crash guard, a graph that calls ``os._exit``) uses :func:`workbench_cmd` directly.
    """
    env = dict(cli_env() if env is None else env)
    if _needs_process(env):
        return process_cli(*args, cwd=cwd, env=env, stdin=stdin, timeout=timeout)
    with _cli_lock:
        return _run_in_process(list(args), Path(cwd), env, stdin)


def process_cli(*args: str, cwd: str | Path, env: Mapping[str, str] | None = None, stdin: str | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``workbench`` command in a real process (under its crash guard)."""
    return subprocess.run([*workbench_cmd(), *args], cwd=cwd, env=dict(cli_env() if env is None else env),
                          capture_output=True, text=True, timeout=timeout or 300, input=stdin)


def _text_buffer() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", write_through=True)


def _read(buf: io.TextIOWrapper) -> str:
    buf.flush()
    raw = buf.buffer
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue().decode("utf-8", errors="replace")


def _run_in_process(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None
                    ) -> subprocess.CompletedProcess[str]:
    import logging
    import traceback

    from workbench import redact
    from workbench.cli import main as cli_main
    from workbench.store import database

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    logger = logging.getLogger("workbench")
    saved_logging = list(logger.handlers), logger.propagate, logger.level
    open_before = set(database._registry)
    out, err = _text_buffer(), _text_buffer()
    code: int = 1
    redact.forget_secrets()  # a fresh process knows no secrets
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.stdin = io.StringIO(stdin or "")
        sys.stdout, sys.stderr = out, err
        try:
            code = cli_main(args)
        except SystemExit as exc:  # argparse's --help and usage errors, as the guard maps them
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:  # what an uncaught exception does to a process (WORKBENCH_DEBUG=1)
            traceback.print_exc(file=err)
            code = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logger.handlers[:], logger.propagate, logger.level = saved_logging
        redact.forget_secrets()
    leaked = set(database._registry) - open_before
    for key in leaked:  # close them, so the next test is not affected, then fail this one
        db = database._registry.get(key)
        if db is not None:
            while db._refs > 0:
                database.close_database(db)
    assert not leaked, f"workbench {' '.join(args)} left trace stores open: {sorted(leaked)}"
    return subprocess.CompletedProcess(["workbench", *args], code, _read(out), _read(err))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, and one more. A quarter of the suite's time is spent
    waiting (real processes, the tmux terminals, a lock held by another process on purpose); a
    spare worker runs tests in those waits. Measured on 2 cores: 2 workers 333 s, 3 workers 278 s,
    4 workers 302 s (docs/performance.md)."""
    return (os.cpu_count() or 1) + 1


def pytest_unconfigure(config: pytest.Config) -> None:
    """Collect once, then take what survives out of the collector's way before pytest's own
    clean-up runs five full collections to surface unraisable exceptions.

    By then each process holds every library the suite loaded (litellm, Textual, DuckDB...):
    each of those collections walked them all again, about 3 CPU-s a worker. The one collection
    here runs the same finalizers a first pass of pytest's would; what survives is alive until
    exit anyway.
    """
    gc.collect()
    gc.freeze()

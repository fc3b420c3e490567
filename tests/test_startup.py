"""The first second of a command: commands that never call a model never import the model
library (litellm takes seconds to import), and ``run`` starts importing it at once, in the
background (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env

from workbench import END, START, Graph, Runner
from workbench.store.store import TraceStore

# Runs each command in this one process and reports, after each, whether litellm was imported.
_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys
    from workbench.cli import main
    seen = []
    for argv in json.loads(sys.argv[1]):
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        seen.append([argv[0], code, sorted(m for m in sys.modules if m.split(".")[0] == "litellm")[:3]])
    print(json.dumps(seen))
""")


def _plain_graph_file(tmp_path: Path) -> None:
    """graphs/plain.py: a graph with no model call."""
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "plain.py").write_text(textwrap.dedent("""
        from workbench import END, START, Graph
        graph = Graph("plain")
        graph.add_node("a", lambda s: {"x": 1})
        graph.sequence(START, "a", END)
    """))


def _commands(tmp_path: Path) -> list[list[str]]:
    db = str(tmp_path / "t.duckdb")
    _plain_graph_file(tmp_path)
    g = Graph("plain")
    g.add_node("a", lambda s: {"x": 1})
    g.sequence(START, "a", END)
    with TraceStore(db) as store:
        first = Runner(g, store).run({}).run_id
        second = Runner(g, store).run({"y": 2}).run_id
    return [["runs", "--db", db], ["show", first, "--db", db], ["show", first, "--step", "1", "--db", db],
            ["sql", "SELECT count(*) FROM runs", "--db", db], ["graph", "plain"], ["graphs"],
            ["diff", first, second, "--db", db], ["export", first, "--to", str(tmp_path / "out.jsonl"), "--db", db]]


def test_commands_that_never_call_a_model_never_import_litellm(tmp_path: Path) -> None:
    commands = _commands(tmp_path)
    res = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(commands)], cwd=tmp_path, env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    seen: list[Any] = json.loads(res.stdout.strip().splitlines()[-1])
    assert [code for _, code, _ in seen] == [0] * len(commands), (seen, res.stderr)
    assert [(cmd, mods) for cmd, _, mods in seen if mods] == []


_PREWARM_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, threading
    started = []
    start = threading.Thread.start
    def record(self):
        started.append(self.name)
        start(self)
    threading.Thread.start = record
    from workbench.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(json.loads(sys.argv[1]))
    print(json.dumps([code, "workbench-litellm-import" in started]))
""")


def test_run_starts_importing_litellm_at_once_unless_told_not_to(tmp_path: Path) -> None:
    """``run`` (and resume, fork, demo) start the import in the background as the command
    starts; ``WORKBENCH_PREWARM=0`` (what the other tests' real processes use) turns it off."""
    _plain_graph_file(tmp_path)
    argv = json.dumps(["run", "plain", "--db", str(tmp_path / "p.duckdb")])
    seen = []
    for prewarm in ("1", "0"):
        res = subprocess.run([sys.executable, "-c", _PREWARM_DRIVER, argv], cwd=tmp_path,
                             env=cli_env(WORKBENCH_PREWARM=prewarm), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        seen.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert seen == [[0, True], [0, False]]


def _run_python(code: str, tmp_path: Path, **env: str) -> Any:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=cli_env(**env),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_neither_the_runtime_nor_the_store(tmp_path: Path) -> None:
    """``import workbench`` is lazy (PEP 562): the CLI's modules load without the runtime or
    DuckDB, so ``run`` starts importing the model library before anything else."""
    loaded = _run_python("""
        import json, sys
        import workbench.cli
        print(json.dumps(sorted(m for m in sys.modules if m in ("duckdb", "litellm", "rich", "workbench.runtime",
                                                                  "workbench.store", "workbench.graph"))))
    """, tmp_path)
    assert loaded == []


def test_every_public_name_still_imports_from_the_package(tmp_path: Path) -> None:
    import workbench

    for name in workbench.__all__:
        assert getattr(workbench, name) is not None
    assert set(workbench.__all__) <= set(dir(workbench))
    assert workbench.Graph is Graph and workbench.Runner is Runner and workbench.TraceStore is TraceStore
    names = _run_python("""
        import json
        from workbench import *
        import workbench
        print(json.dumps([n for n in workbench.__all__ if n not in globals()]))
    """, tmp_path)
    assert names == []
    try:
        workbench.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


# litellm is imported once; each configuration then runs in a child forked from that process,
# as a fresh interpreter would after its ``import litellm`` (workbench, its configuration and the
# deferral are all imported or decided after the fork). Prints one JSON line per configuration.
_TOKENIZER = textwrap.dedent("""
    import json, os, sys, threading
    import litellm
    print(json.dumps(["litellm's import", [t.name for t in threading.enumerate()]]), flush=True)
    failed = 0
    for name, env in json.loads(sys.argv[1]).items():
        pid = os.fork()
        if pid == 0:
            try:
                os.environ.update(env)
                from workbench.llm.client import call_llm, litellm_module
                from workbench.llm.config import DEMO_MODEL
                lm = litellm_module()
                threads = [t.name for t in threading.enumerate()]
                deferred = type(lm.main._encoding_cache).__name__ == "_DeferredTokenizer"
                before = set(sys.modules)
                call_llm(None, "hello", model=DEMO_MODEL)
                first_call_imported = sorted(set(sys.modules) - before)
                still = type(lm.main._encoding_cache).__name__ == "_DeferredTokenizer"
                tokens = lm.main._encoding_cache.encode("hello world") if still else None
                print(json.dumps([name, [deferred, still, tokens, type(lm.main._encoding_cache).__name__,
                                         threads, first_call_imported]]), flush=True)
            except BaseException:
                import traceback
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            os._exit(0)
        failed += os.waitpid(pid, 0)[1] != 0
    sys.exit(1 if failed else 0)
""")

_CONFIGURATIONS = {"demo only": {}, "a real model": {"WORKBENCH_MODEL": "openai/gpt-4o-mini"},
                   "a real fallback": {"WORKBENCH_FALLBACKS": "openai/gpt-4o-mini"}}


# The three tests that read it share one worker: on several, each would import litellm again.
TOKENIZER_GROUP = pytest.mark.xdist_group("tokenizer")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What litellm's tokenizer was under each model configuration (see _TOKENIZER)."""
    res = subprocess.run([sys.executable, "-c", _TOKENIZER, json.dumps(_CONFIGURATIONS)],
                         cwd=tmp_path_factory.mktemp("tokenizer"), env=cli_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return dict(json.loads(line) for line in res.stdout.splitlines() if line.startswith("["))


@TOKENIZER_GROUP
def test_the_demo_model_never_loads_the_tokenizer_and_its_first_call_imports_nothing(
        tokenizer: dict[str, Any]) -> None:
    """litellm passes its tokenizer to every provider; loading it costs more CPU than the rest of
    the first call. With only the demo model configured it is loaded only when something uses it
    — and then it is the real one.

    And litellm imports much of itself on its first call: workbench makes that call (a throwaway
    one to the offline demo model) as part of the import, so that no recorded step pays for it,
    without starting a thread (a process may fork after importing: the crash tests do)."""
    deferred, still, tokens, after, threads, first_call_imported = tokenizer["demo only"]
    assert (deferred, still) == (True, True)
    assert isinstance(tokens, list) and tokens and all(isinstance(t, int) for t in tokens)
    assert after != "_DeferredTokenizer"  # used once: litellm now holds the real tokenizer
    assert tokenizer["litellm's import"] == ["MainThread"] and threads == ["MainThread"]
    assert first_call_imported == []


@TOKENIZER_GROUP
def test_a_real_model_configured_loads_the_tokenizer_with_the_import(tokenizer: dict[str, Any]) -> None:
    """A real provider may use the tokenizer on its first call: then it is loaded as part of the
    import (in the background), never inside a recorded step."""
    deferred, *_ = tokenizer["a real model"]
    assert deferred is False


@TOKENIZER_GROUP
def test_a_real_fallback_configured_loads_the_tokenizer_with_the_import(tokenizer: dict[str, Any]) -> None:
    deferred, *_ = tokenizer["a real fallback"]
    assert deferred is False

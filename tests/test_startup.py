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


def _commands(tmp_path: Path) -> list[list[str]]:
    db = str(tmp_path / "t.duckdb")
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "plain.py").write_text(textwrap.dedent("""
        from workbench import END, START, Graph
        graph = Graph("plain")
        graph.add_node("a", lambda s: {"x": 1})
        graph.sequence(START, "a", END)
    """))
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


def test_the_first_model_call_imports_nothing_the_import_did_not(tmp_path: Path) -> None:
    """litellm imports much of itself on its first call; workbench makes that call (a throwaway
    one to the offline demo model) as part of the import, so that no recorded step pays for it."""
    driver = textwrap.dedent("""
        import json, sys, threading
        from workbench.llm.client import call_llm, litellm_module
        from workbench.llm.config import DEMO_MODEL
        litellm_module()
        # The warm-up starts no thread: a process may fork after importing (the crash tests do).
        assert threading.active_count() == 1, [t.name for t in threading.enumerate()]
        before = set(sys.modules)
        call_llm(None, "hello", model=DEMO_MODEL)
        print(json.dumps(sorted(set(sys.modules) - before)))
    """)
    res = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=cli_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []

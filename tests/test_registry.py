"""The project's graphs as the workbench lists them (workbench/registry.py): a graph name is
defined by one file; a second file defining it is shown with an error, never in its place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_env, run_cli

from workbench.registry import GraphRegistry

GRAPH = '''
from typing import TypedDict
from workbench import END, START, Graph


class S(TypedDict):
    n: int


graph = Graph("{name}", S)


@graph.node
def {node}(state: S) -> dict:
    return {{"n": state["n"] + 1}}


graph.sequence(START, "{node}", END)
'''


def write(path: Path, name: str, node: str = "step") -> None:
    path.write_text(GRAPH.format(name=name, node=node))


def test_a_second_file_with_a_graphs_name_is_an_error_and_deleting_it_keeps_the_first(tmp_path: Path) -> None:
    write(tmp_path / "chat.py", "chat")
    write(tmp_path / "other.py", "other")
    reg = GraphRegistry(str(tmp_path))
    reg.load_all()
    write(tmp_path / "dup.py", "chat", node="impostor")
    result = reg.reload_file(str(tmp_path / "dup.py"))
    assert result.error is not None and "'chat'" in result.error and "chat.py" in result.error
    assert reg.names() == ["chat", "other"]
    assert list(reg.get("chat").nodes) == ["step"]  # type: ignore[union-attr]

    (tmp_path / "dup.py").unlink()
    gone = reg.reload_file(str(tmp_path / "dup.py"))
    assert gone.removed and gone.graphs == []
    assert reg.names() == ["chat", "other"] and not reg.errors


def test_the_file_named_after_the_graph_keeps_it_whatever_the_order(tmp_path: Path) -> None:
    write(tmp_path / "a_copy.py", "chat", node="impostor")  # listed first
    write(tmp_path / "chat.py", "chat")
    reg = GraphRegistry(str(tmp_path))
    reg.load_all()
    assert list(reg.get("chat").nodes) == ["step"]  # type: ignore[union-attr]
    assert str(tmp_path / "a_copy.py") in reg.errors

    (tmp_path / "chat.py").unlink()  # the name is free: the other file takes it
    reg.reload_file(str(tmp_path / "chat.py"))
    assert list(reg.get("chat").nodes) == ["impostor"]  # type: ignore[union-attr]
    assert not reg.errors


def test_a_graph_renamed_in_its_file_leaves_the_list(tmp_path: Path) -> None:
    write(tmp_path / "g.py", "first")
    reg = GraphRegistry(str(tmp_path))
    reg.load_all()
    write(tmp_path / "g.py", "second")
    result = reg.reload_file(str(tmp_path / "g.py"))
    assert reg.names() == ["second"] and result.added == ["second"]


def test_graphs_warns_about_a_name_two_files_define(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    write(tmp_path / "graphs" / "chat.py", "chat")
    write(tmp_path / "graphs" / "dup.py", "chat")
    res = run_cli("graphs", "--json", cwd=tmp_path)
    assert res.returncode == 0
    assert [r["graph"] for r in json.loads(res.stdout)] == ["chat", "chat"]
    assert "graph 'chat' is defined by graphs/chat.py and graphs/dup.py" in res.stderr


def test_a_run_recorded_from_another_file_of_the_same_name_says_which_file_replays_it(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    write(tmp_path / "graphs" / "chat.py", "chat")
    write(tmp_path / "graphs" / "dup.py", "chat", node="impostor")
    assert run_cli("run", "graphs/dup.py", "--input", '{"n": 0}', cwd=tmp_path).returncode == 0
    res = run_cli("replay", "last", cwd=tmp_path)
    assert res.returncode == 4  # graphs/chat.py is not the code that ran
    assert "run " in res.stderr and "was recorded from graphs/dup.py; this uses graphs/chat.py" in res.stderr
    res = run_cli("replay", "last", "--graph", "graphs/dup.py", cwd=tmp_path)
    assert res.returncode == 0 and "note:" not in res.stderr


SECRET = "sk-test-SUPERSECRETvalue1234567890"
LEAKS = 'import os\nraise RuntimeError("cannot start with " + os.environ["OPENAI_API_KEY"])\n'


def test_a_load_error_echoing_a_secret_is_recorded_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the workbench's graph list and its notices show comes from here."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    (tmp_path / "bad.py").write_text(LEAKS)
    write(tmp_path / "chat.py", "chat")
    reg = GraphRegistry(str(tmp_path))
    [bad] = [r for r in reg.load_all() if r.error]
    assert bad.error is not None and bad.error.endswith("RuntimeError: cannot start with [redacted]")
    assert reg.errors == {str(tmp_path / "bad.py"): bad.error} and reg.names() == ["chat"]
    reloaded = reg.reload_file(str(tmp_path / "bad.py"))  # a save that still fails
    assert reloaded.error == bad.error and SECRET not in repr(reg.errors)


def test_graphs_prints_no_secret_of_a_file_that_fails_to_load(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "bad.py").write_text(LEAKS)
    env = cli_env(OPENAI_API_KEY=SECRET)
    res = run_cli("graphs", cwd=tmp_path, env=env)
    assert res.returncode == 0 and SECRET not in res.stdout + res.stderr
    assert "RuntimeError: cannot start with [redacted]" in res.stdout
    res = run_cli("graphs", "--json", cwd=tmp_path, env=env)
    assert res.returncode == 0 and SECRET not in res.stdout + res.stderr
    [row] = json.loads(res.stdout)
    assert row["graph"] is None and row["error"].endswith("RuntimeError: cannot start with [redacted]")

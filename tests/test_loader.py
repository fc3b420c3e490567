"""Graph files are loaded from their source as it is now (workbench/loader.py)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.loader import load_module_graphs
from workbench.runtime import Runner

GRAPH = textwrap.dedent("""
    from workbench import END, START, Graph
    graph = Graph("edited")
    graph.add_node("a", lambda s: {"x": "d"})
    graph.sequence(START, "a", END)
""")


def test_an_edit_of_the_same_size_within_the_same_second_is_loaded(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's bytecode cache trusts a file whose size and whole-second modification time match:
    a save of ``"d"`` as ``"D"`` right after a load ran the old code (the watcher's reload in the
    workbench, a second ``workbench run``). Graph files are compiled from their source instead."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # a cache is written, as by default
    path = tmp_path / "edited.py"
    path.write_text(GRAPH)
    stamp = os.stat(path).st_mtime_ns
    assert Runner(load_module_graphs(str(path))["graph"]).run({}).state["x"] == "d"
    path.write_text(GRAPH.replace('"d"', '"D"'))
    os.utime(path, ns=(stamp, stamp))  # the same second, the same size: what the cache checks
    assert Runner(load_module_graphs(str(path))["graph"]).run({}).state["x"] == "D"

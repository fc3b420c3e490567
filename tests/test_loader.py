"""Graph files are loaded from their source as it is now (workbench/loader.py)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.loader import load_graph, load_module_graphs
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


def test_a_graph_file_imports_its_projects_code_and_a_helper_beside_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the ``workbench`` command a graph file could import neither the project's own
    package (``from myapp import …``: only ``python -m workbench`` had the current directory on
    the path) nor a ``graphs/_common.py`` helper beside it. Both are found now, nothing installed
    is shadowed, and a reload sees an edited helper."""
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("CATS = ['a', 'b']\n")
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "_common.py").write_text("GREETING = 'hello'\n")
    (graphs / "json.py").write_text("raise RuntimeError('a graph folder module shadowed the json module')\n")
    (graphs / "g.py").write_text(
        "from typing import TypedDict\n"
        "import json\n"
        "from workbench import END, START, Graph\n"
        "from myapp import CATS\n"
        "from _common import GREETING\n"
        "class S(TypedDict, total=False):\n    out: str\n"
        "graph = Graph('g', S)\n"
        "@graph.node\n"
        "def n(state):\n    return {'out': GREETING + json.dumps(CATS)}\n"
        "graph.sequence(START, 'n', END)\n")
    from workbench import Runner

    assert Runner(load_graph(str(graphs / "g.py"))).run({}).state == {"out": 'hello["a", "b"]'}
    # Two graph files of the folder share the helper (one module, one set of its classes).
    (graphs / "h.py").write_text((graphs / "g.py").read_text().replace("Graph('g'", "Graph('h'"))
    shared = sys.modules["_common"]
    load_graph(str(graphs / "h.py"))
    load_graph(str(graphs / "g.py"))
    assert sys.modules["_common"] is shared
    (graphs / "_common.py").write_text("GREETING = 'bye'\n")
    stamp = (graphs / "_common.py").stat().st_mtime_ns + 1_000_000_000
    os.utime(graphs / "_common.py", ns=(stamp, stamp))  # edited later than it was imported
    assert Runner(load_graph(str(graphs / "g.py"))).run({}).state == {"out": 'bye["a", "b"]'}
    monkeypatch.delitem(sys.modules, "_common", raising=False)
    monkeypatch.delitem(sys.modules, "myapp", raising=False)

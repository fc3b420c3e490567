"""Find and import graph files: ``support`` (a name in ./graphs) or ``path/to/file.py[:variable]``.

Graph files are the user's own code; importing one runs it, as running any script does. Nothing
read from a trace is ever imported or executed: a run records its graph's *name* and file path,
and resuming, replaying or forking it (:func:`load_for_run`) looks the graph up by that name in
the project's graphs directory, or imports a file the user names (``--graph FILE[:VAR]``). The
recorded file path is only ever shown, never imported: a trace file from elsewhere must not
choose which local Python file runs.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from types import CodeType, ModuleType

from workbench.errors import GraphDefinitionError, GraphLoadError
from workbench.graph import Graph, display_path

GRAPHS_DIR = "graphs"


@dataclass
class GraphSource:
    """Where a graph came from."""

    path: str
    variable: str | None


def graphs_dir() -> str:
    """``$WORKBENCH_GRAPHS`` or ./graphs."""
    return os.environ.get("WORKBENCH_GRAPHS") or GRAPHS_DIR


def list_graph_files(directory: str | None = None) -> list[str]:
    """The ``*.py`` files of the graphs directory (not starting with ``_``), sorted."""
    d = directory or graphs_dir()
    if not os.path.isdir(d):
        return []
    return sorted(
        os.path.join(d, f) for f in os.listdir(d) if f.endswith(".py") and not f.startswith("_")
    )


def is_path_ref(ref: str) -> bool:
    """Whether a graph reference names a file (``path/to/file.py[:variable]``) rather than a graph
    name to look up in the graphs directory."""
    path = ref.partition(":")[0]
    return path.endswith(".py") or os.sep in path or "/" in path


def resolve(ref: str) -> GraphSource:
    """Turn a graph reference into a file path and optional variable name."""
    path, _, variable = ref.partition(":")
    if not is_path_ref(ref):
        candidate = os.path.join(graphs_dir(), f"{path}.py")
        if os.path.exists(candidate):
            return GraphSource(candidate, variable or None)
        # A graph whose name differs from its file's: look inside every graph file.
        for file in list_graph_files():
            try:
                graphs = load_module_graphs(file)
            except GraphLoadError:
                continue
            if any(g.name == path for g in graphs.values()):
                var = next(v for v, g in graphs.items() if g.name == path)
                return GraphSource(file, var)
        known = [os.path.splitext(os.path.basename(f))[0] for f in list_graph_files()]
        hint = f" (graphs in {graphs_dir()}/: {', '.join(known)})" if known else f" (no graphs in {graphs_dir()}/)"
        raise GraphLoadError(f"unknown graph {path!r}{hint}")
    if not os.path.exists(path):
        raise GraphLoadError(f"graph file {path} does not exist")
    return GraphSource(path, variable or None)


def _module_name(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = abs(hash(os.path.abspath(path))) % 10**8
    return f"workbench_graphs.{stem}_{digest}"


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles a graph file from its source on every load, never from cached bytecode.

    Python's bytecode cache (``__pycache__``) trusts a file whose size and modification time, in
    whole seconds, match the cache's: an edit of the same length saved within a second of the last
    load (``"d"`` to ``"D"``, then the watcher's reload) ran the old code while the record said the
    node had changed. Graph files are small; compiling them costs little.
    """

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def import_file(path: str) -> ModuleType:
    """Import a graph file afresh (dropping any cached copy, compiled from its source, so edits
    are seen).

    Errors become one-line GraphLoadErrors naming the file and line.
    """
    name = _module_name(path)
    sys.modules.pop(name, None)
    added = _make_importable(os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location(name, path, loader=_SourceLoader(name, path))
    if spec is None or spec.loader is None:
        raise GraphLoadError(f"{display_path(path)}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        try:
            spec.loader.exec_module(module)
        finally:
            for entry in added:  # for the file's own imports only: a long sys.path slows every import
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)
            for _, where in _helpers(os.path.dirname(os.path.abspath(path))):
                _helper_stamps.setdefault(where, _stamp(where))  # as imported now
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise GraphLoadError(
            f"{display_path(exc.filename or path)}:{exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except GraphDefinitionError:
        sys.modules.pop(name, None)
        raise
    except SystemExit as exc:  # the file's exit code must not become the command's
        sys.modules.pop(name, None)
        raise GraphLoadError(f"{display_path(path)}: called exit({exc.code!r}) while loading; a graph file must "
                             "define graphs, not end the program") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) ==
                  os.path.abspath(path)]
        line = f":{frames[-1].lineno}" if frames else ""
        raise GraphLoadError(
            f"{display_path(path)}{line}: error while loading: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _make_importable(folder: str) -> list[str]:
    """What a graph file imports is found as when the file runs as a script (``python FILE``)
    or with ``python -m workbench``: modules beside it (a ``graphs/_common.py`` helper) and the
    project's own packages (the current directory). Both go at the end of ``sys.path`` while
    the file is imported (returned: the entries added), so that nothing installed is shadowed.
    A helper beside the graph that was edited since it was imported is imported afresh, so
    that a reload sees its edits (only plain modules lying in that very folder); one that was
    not stays the one module every graph file of the folder shares."""
    added = []
    for entry in (folder, os.getcwd()):
        if entry not in sys.path:
            sys.path.append(entry)
            added.append(entry)
    for mod_name, where in _helpers(folder):
        if where in _helper_stamps and _helper_stamps[where] != _stamp(where):
            del _helper_stamps[where]
            sys.modules.pop(mod_name, None)
    return added


_helper_stamps: dict[str, int | None] = {}  # a helper module's file -> its mtime when imported


def _helpers(folder: str) -> list[tuple[str, str]]:
    """``(module name, file)`` of the plain modules imported from ``folder``."""
    out = []
    for mod_name, mod in list(sys.modules.items()):
        where = getattr(mod, "__file__", None)
        if "." not in mod_name and isinstance(where, str) and os.path.dirname(where) == folder:
            out.append((mod_name, where))
    return out


def _stamp(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def load_module_graphs(path: str) -> dict[str, Graph]:
    """Every module-level Graph of a file, by variable name."""
    module = import_file(path)
    return {k: v for k, v in vars(module).items() if isinstance(v, Graph) and not k.startswith("_")}


def load_graph(ref: str) -> Graph:
    """Load and validate the graph a reference names (see the module docstring)."""
    src = resolve(ref)
    graphs = load_module_graphs(src.path)
    if src.variable:
        if src.variable not in graphs:
            raise GraphLoadError(
                f"{display_path(src.path)}: no Graph named {src.variable!r} "
                f"(found: {', '.join(graphs) or 'none'})"
            )
        graph = graphs[src.variable]
    elif "graph" in graphs:
        graph = graphs["graph"]
    elif len(graphs) == 1:
        graph = next(iter(graphs.values()))
    elif not graphs:
        raise GraphLoadError(f"{display_path(src.path)}: defines no workbench Graph at module level")
    else:
        raise GraphLoadError(
            f"{display_path(src.path)}: defines several graphs ({', '.join(graphs)}); "
            f"name one as {display_path(src.path)}:VARIABLE"
        )
    return graph.validate()


def load_for_run(graph_name: str, graph_file: str | None = None, graph: str | None = None, *,
                 how: str = "--graph FILE[:VARIABLE]") -> Graph:
    """The graph a recorded run belongs to, by the graph name the run recorded.

    ``graph`` is a graph reference the user gave (``path/to/file.py[:variable]`` or a name, as
    ``workbench run`` takes): that file is imported and must define a graph of the recorded name.
    Without it, the graph is looked up by name in the project's graphs directory
    (``$WORKBENCH_GRAPHS`` or ./graphs), and nowhere else. ``graph_file`` (the path the trace
    recorded) is only quoted in the error message: a trace never chooses which file is imported.
    ``how`` is how the caller's user names a graph file, for that message.
    """
    if graph is not None:
        return _load_named(graph_name, graph)
    found = _project_graph(graph_name)
    if found is not None:
        return found
    where = f" (recorded from {graph_file!r})" if graph_file else ""
    raise GraphLoadError(
        f"the run's graph {graph_name!r}{where} is not in {graphs_dir()}/ here; run workbench from the "
        f"project directory, set WORKBENCH_GRAPHS, or name the graph's file with {how}"
    )


def _load_named(graph_name: str, ref: str) -> Graph:
    """The graph named ``graph_name`` in the file (and variable) ``ref`` names."""
    src = resolve(ref)
    graphs = load_module_graphs(src.path)
    if src.variable:
        if src.variable not in graphs:
            raise GraphLoadError(
                f"{display_path(src.path)}: no Graph named {src.variable!r} "
                f"(found: {', '.join(graphs) or 'none'})"
            )
        graphs = {src.variable: graphs[src.variable]}
    for g in graphs.values():
        if g.name == graph_name:
            return g.validate()
    names = ", ".join(repr(g.name) for g in graphs.values()) or "no graph"
    raise GraphLoadError(
        f"{display_path(src.path)}{':' + src.variable if src.variable else ''} defines {names}, not the run's "
        f"graph {graph_name!r}; name the file that defines {graph_name!r}"
    )


def _project_graph(graph_name: str) -> Graph | None:
    """The graph called ``graph_name`` in the graphs directory, or None.

    The name comes from a trace, so it is never used as a path: it is only compared with the
    names of the directory's files and of the graphs they define.
    """
    files = list_graph_files()
    preferred = [f for f in files if os.path.splitext(os.path.basename(f))[0] == graph_name]
    for file in preferred + [f for f in files if f not in preferred]:
        try:
            graphs = load_module_graphs(file)
        except (GraphLoadError, GraphDefinitionError):
            if file in preferred:
                raise  # graphs/NAME.py is broken: say so rather than "not found"
            continue
        for g in graphs.values():
            if g.name == graph_name:
                return g.validate()
    return None
